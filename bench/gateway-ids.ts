// Child process of bench/gateway.ts: makes the endpoint identities of the
// relay benchmark and pre-seals their 1 KiB envelopes, so that neither
// identity creation nor sealing (endpoint costs, measured by bench/core.ts)
// is inside a timed gateway run. Several of these run in parallel.
//
// Pair i is a provisioning service `bs-<i>` (the sender) and a charger
// `br-<i>` (the recipient, which will connect to /endpoint and publish its
// bundle); the sender seals `counts[i]` envelopes of kind "credentials" to it
// with the classical suite. Identities are made with the keystore functions
// the CLI uses (initIdentity, plaintext keystore, no one-time prekeys;
// installCert), certified by the bench CA with the core signCsr (the CA
// directory's issuance bookkeeping is skipped).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64u } from '../src/core/base64url.js';
import { parseBundle, verifyBundle } from '../src/core/bundle.js';
import { sealEnvelope } from '../src/core/envelope.js';
import { DEFAULT_ROLE_POLICY } from '../src/core/role-policy.js';
import type { SuiteName } from '../src/core/suites.js';
import { signCsr } from '../src/core/x509/ca.js';
import { RevocationState, trustPolicyFromCaPem } from '../src/core/x509/index.js';
import { initIdentity, installCert, loadIdentity } from '../src/keystore/identity-dir.js';

export interface IdsConfig {
  work: string;
  caDir: string;
  /** pair indexes this worker makes */
  pairs: number[];
  /** envelopes to seal for pair i: counts[i] (indexed by pair number) */
  counts: number[];
  /** all pairs of this worker, with at most `smallCount` envelopes each */
  out: string;
  smallCount: number;
  /** pair 0 with all its envelopes (the 1-pair run), if this worker makes it */
  out0: string;
  plaintextBytes: number;
}

export interface Party {
  id: string;
  /** certificate chain, leaf first, base64url DER */
  chain: string[];
  /** PKCS#8 PEM */
  key: string;
}

export interface PairData {
  i: number;
  sender: Party;
  recipient: Party & { bundle: string };
  envs: string[];
}

const SUITE: SuiteName = 'X25519-SHA256-AES256GCM';
const cfg = JSON.parse(process.argv[2] ?? '{}') as IdsConfig;
const caCertPem = readFileSync(join(cfg.caDir, 'ca.pem'), 'utf8');
const caKeyPem = readFileSync(join(cfg.caDir, 'ca.key'), 'utf8');
const policy = trustPolicyFromCaPem(caCertPem);
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(readFileSync(join(cfg.caDir, 'crl.pem'), 'utf8'), policy);
const now = new Date();

async function make(role: 'charger' | 'provisioning', id: string): Promise<string> {
  const dir = join(cfg.work, id);
  const { csrPem } = await initIdentity(dir, { role, id, operator: 'Bench', alg: 'ecdsa-p256', suites: [SUITE], plaintext: true, settings: { oneTimePrekeys: 0 } });
  const { certPem } = await signCsr({ caCertPem, caKeyPem, csrPem, notBefore: new Date(now.getTime() - 60_000) });
  installCert(dir, certPem, Math.floor(now.getTime() / 1000));
  return dir;
}

const out: PairData[] = [];
const t0 = Date.now();
// Progress to the parent, which restarts a worker that stops making any (see bench/gateway.ts).
const progress = () => void process.send?.({ type: 'progress', made: out.length });
progress();
for (const i of cfg.pairs) {
  const sDir = await make('provisioning', `bs-${i}`);
  const rDir = await make('charger', `br-${i}`);
  const s = loadIdentity(sDir);
  const r = loadIdentity(rDir);
  const bundleText = readFileSync(join(rDir, 'bundle.json'), 'utf8');
  const bundle = verifyBundle(parseBundle(bundleText), { policy, revocation, now });
  const pt = new Uint8Array(randomBytes(cfg.plaintextBytes));
  const sender = { chain: s.chain, info: s.file, privateKey: s.privateKey, suites: [SUITE], certHash: s.certHash };
  const envs: string[] = [];
  for (let k = 0; k < (cfg.counts[i] ?? 0); k++) {
    envs.push(sealEnvelope(sender, bundle, pt, { kind: 'credentials', now: new Date(), lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY }));
    if (k % 1000 === 999) progress();
  }
  const pem = (k: typeof s.privateKey) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
  out.push({
    i,
    sender: { id: s.file.id, chain: s.chain.map(b64u), key: pem(s.privateKey) },
    recipient: { id: r.file.id, chain: r.chain.map(b64u), key: pem(r.privateKey), bundle: bundleText },
    envs,
  });
  progress();
}
writeFileSync(cfg.out, JSON.stringify(out.map((p) => ({ ...p, envs: p.envs.slice(0, cfg.smallCount) }))));
const p0 = out.find((p) => p.i === 0);
if (p0) writeFileSync(cfg.out0, JSON.stringify([p0]));
process.stderr.write(`gateway bench: worker ${process.pid} made ${cfg.pairs.length} pairs and ${out.reduce((n, p) => n + p.envs.length, 0)} envelopes in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
// Everything is written (synchronously): exit now, without waiting for the IPC channel or any handle left open.
process.exit(0);
