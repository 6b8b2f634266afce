// npm run bench (second part) — session handshake and Double Ratchet messages,
// in memory and persisted in the encrypted keystore, against the raw
// node:crypto primitives they are made of, in this one process and run.
// Writes bench/results/sessions.json and its table in docs/performance.md.
import { createCipheriv, createDecipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBundle, verifyBundle } from '../src/core/bundle.js';
import { DEFAULT_ROLE_POLICY } from '../src/core/role-policy.js';
import { Ratchet } from '../src/core/session/ratchet.js';
import { acceptSession, initiateSession } from '../src/core/session/handshake.js';
import type { SuiteName } from '../src/core/suites.js';
import { RevocationState, trustPolicyFromCaPem } from '../src/core/x509/index.js';
import { initCaDir, signCsrWithCaDir } from '../src/keystore/ca-dir.js';
import { Endpoint } from '../src/keystore/endpoint.js';
import { initIdentity, installCert, loadIdentity } from '../src/keystore/identity-dir.js';
import { bench, fmtSize, interleavedRatio, RUN_MS, RUNS, type Row } from './harness.js';

const PASS = 'bench passphrase';
const work = mkdtempSync(join(tmpdir(), 'evseal-bench-s-'));
const started = Date.now();
const rows: Row[] = [];
const now = new Date();
const SUITES: SuiteName[] = ['XWING-SHA256-AES256GCM', 'X25519-SHA256-AES256GCM'];

await initCaDir(join(work, 'ca'), { name: 'Bench Root', now: new Date(now.getTime() - 3600_000) });
async function make(role: 'charger' | 'service-tool', id: string, suites: SuiteName[]): Promise<string> {
  const dir = join(work, id);
  const { csrPem } = await initIdentity(dir, { role, id, operator: 'Bench', alg: 'ecdsa-p256', suites, passphrase: PASS });
  const { certPem } = await signCsrWithCaDir(join(work, 'ca'), csrPem, { now: new Date(now.getTime() - 60_000) });
  installCert(dir, certPem, Math.floor(now.getTime() / 1000), PASS);
  return dir;
}
const policy = trustPolicyFromCaPem(readFileSync(join(work, 'ca', 'ca.pem'), 'utf8'));
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(readFileSync(join(work, 'ca', 'crl.pem'), 'utf8'), policy);

// --- handshake (core API, in memory) ------------------------------------------------------
const hsRows = new Map<SuiteName, Row>();
for (const suite of SUITES) {
  const tag = suite.startsWith('XWING') ? 'xw' : 'x';
  const tool = loadIdentity(await make('service-tool', `tool-${tag}`, [suite]), PASS);
  const cp = loadIdentity(await make('charger', `cp-${tag}`, [suite]), PASS);
  const bundle = verifyBundle(parseBundle(readFileSync(join(cp.dir, 'bundle.json'), 'utf8')), { policy, revocation, now });
  const me = { chain: tool.chain, info: tool.file, privateKey: tool.privateKey, suites: tool.file.suites };
  const r = bench('handshake (core, in memory)', `${suite}: initiate + accept + first 1 KiB payload`, 1024, () => {
    const i = initiateSession(me, bundle, new Uint8Array(1024), { kind: 'command', now, lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY });
    acceptSession(i.message, { info: cp.file, prekeys: cp.prekeys, suites: cp.file.suites, certHash: cp.certHash }, {
      policy, revocation, now, replay: 'skip', rolePolicy: DEFAULT_ROLE_POLICY, maxLifetimeSec: 259200, skewSec: 300,
    });
  }, 'sender bundle pre-verified; chain validation cached; replay window skipped');
  rows.push(r);
  hsRows.set(suite, r);
}

// --- ratchet messages, in memory -------------------------------------------------------------
const sk = new Uint8Array(randomBytes(32));
const ad = new Uint8Array(randomBytes(64));
const pt = new Uint8Array(randomBytes(1024));
function pair(): { a: Ratchet; b: Ratchet } {
  const a = Ratchet.initInitiator(sk, ad);
  const b = Ratchet.initResponder(sk, ad, a.ratchetPublicKey as Uint8Array);
  b.decrypt(a.encrypt(pt));
  a.decrypt(b.encrypt(pt)); // both sides have taken a DH step
  return { a, b };
}
const sym = pair();
const symRow = bench('ratchet (in memory)', 'symmetric step: A encrypts, B decrypts', 1024, () => void sym.b.decrypt(sym.a.encrypt(pt)));
const dh = pair();
let turn = 0;
const dhRow = bench('ratchet (in memory)', 'DH step: direction changes every message', 1024, () => {
  if (turn++ % 2 === 0) dh.b.decrypt(dh.a.encrypt(pt));
  else dh.a.decrypt(dh.b.encrypt(pt));
});
rows.push(symRow, dhRow);

// --- ratchet messages, persisted (Endpoint: encrypted keystore, atomic write + fsync, lock) -------
const toolEp = Endpoint.load(join(work, 'tool-x'), { trust: policy, crls: [join(work, 'ca', 'crl.pem')], passphrase: PASS });
const cpEp = Endpoint.load(join(work, 'cp-x'), { trust: policy, crls: [join(work, 'ca', 'crl.pem')], passphrase: PASS });
const { handle, message } = toolEp.startSession(readFileSync(join(work, 'cp-x', 'bundle.json'), 'utf8'), pt, { kind: 'command' });
cpEp.acceptSession(message);
toolEp.sessionDecrypt(handle, cpEp.sessionEncrypt(handle, pt));
const persistedSym = bench('ratchet (persisted keystore)', 'symmetric step: encrypt + save, decrypt + save', 1024, () => void cpEp.sessionDecrypt(handle, toolEp.sessionEncrypt(handle, pt)));
let pturn = 0;
const persistedDh = bench('ratchet (persisted keystore)', 'DH step: direction changes every message', 1024, () => {
  if (pturn++ % 2 === 0) cpEp.sessionDecrypt(handle, toolEp.sessionEncrypt(handle, pt));
  else toolEp.sessionDecrypt(handle, cpEp.sessionEncrypt(handle, pt));
});
rows.push(persistedSym, persistedDh);

// --- raw node:crypto primitives -------------------------------------------------------------
const P = 'node:crypto primitives';
const key = randomBytes(32);
const nonce = randomBytes(12);
const aad = Buffer.concat([ad, randomBytes(48)]);
const aes1k = () => {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const out = Buffer.concat([c.update(pt), c.final()]);
  const tag = c.getAuthTag();
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(aad);
  d.setAuthTag(tag);
  Buffer.concat([d.update(out), d.final()]);
};
const aesRow = bench(P, 'AES-256-GCM encrypt + decrypt (with AAD)', 1024, aes1k);
const peer = generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } }) as unknown as { privateKey: KeyObject; publicKey: JsonWebKey };
const peerJwk = peer.publicKey;
// the public key encoded by the key generation: exporting it from the KeyObject afterwards can deadlock Node 20 (src/core/hpke/groups.ts)
const x25519Keygen = () => void generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } });
const keygenRow = bench(P, 'X25519 keygen, public key as JWK', undefined, x25519Keygen);
const dhRowP = bench(P, 'X25519 import public (JWK) + derive', undefined, () => void diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey({ key: peerJwk, format: 'jwk' }) }));
const hkdfRowP = bench(P, 'HKDF-SHA256 -> 64 B (KDF_RK)', undefined, () => void hkdfSync('sha256', key, nonce, 'evseal/v1 ratchet root', 64));
const hkdf44 = bench(P, 'HKDF-SHA256 -> 44 B (message key, nonce)', undefined, () => void hkdfSync('sha256', key, Buffer.alloc(32), 'evseal/v1 ratchet message', 44));
const hmacRow = bench(P, 'HMAC-SHA256 x2 (KDF_CK)', undefined, () => {
  createHmac('sha256', key).update(Buffer.from([1])).digest();
  createHmac('sha256', key).update(Buffer.from([2])).digest();
});
rows.push(aesRow, keygenRow, dhRowP, hkdfRowP, hkdf44, hmacRow);
// One DH-step message: the sender's step (keygen, DH, KDF_RK) and the receiver's step (DH, KDF_RK),
// one KDF_CK on each side, one message-key derivation on each side, AES-GCM encrypt + decrypt.
const dhPrimSum = keygenRow.usPerOp + 2 * dhRowP.usPerOp + 2 * hkdfRowP.usPerOp + 2 * hmacRow.usPerOp + 2 * hkdf44.usPerOp + aesRow.usPerOp;

// Headline ratios, measured in alternation (robust to load changing during the run).
const dhPrimitiveChain = () => {
  x25519Keygen();
  for (let i = 0; i < 2; i++) {
    diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey({ key: peerJwk, format: 'jwk' }) });
    hkdfSync('sha256', key, nonce, 'evseal/v1 ratchet root', 64);
    createHmac('sha256', key).update(Buffer.from([1])).digest();
    createHmac('sha256', key).update(Buffer.from([2])).digest();
    hkdfSync('sha256', key, Buffer.alloc(32), 'evseal/v1 ratchet message', 44);
  }
  aes1k();
};
const sym2 = pair();
const dh2 = pair();
let turn2 = 0;
process.stderr.write('interleaved: symmetric step vs AES-GCM, DH step vs its primitives\n');
const symVsAes = await interleavedRatio(aes1k, () => void sym2.b.decrypt(sym2.a.encrypt(pt)));
const dhVsPrims = await interleavedRatio(dhPrimitiveChain, () => {
  if (turn2++ % 2 === 0) dh2.b.decrypt(dh2.a.encrypt(pt));
  else dh2.a.decrypt(dh2.b.encrypt(pt));
});

const ratios = {
  'symmetric-step message (1 KiB, in memory) / raw AES-256-GCM enc+dec, run in alternation (criterion ≤ 5)': symVsAes.ratio,
  'DH-step message (1 KiB, in memory) / its primitives, run in alternation (criterion ≤ 1.3)': dhVsPrims.ratio,
  'symmetric-step message / AES-256-GCM, separate rows': symRow.usPerOp / aesRow.usPerOp,
  'DH-step message / sum of separately measured primitives': dhRow.usPerOp / dhPrimSum,
  'persisted symmetric-step message / in-memory': persistedSym.usPerOp / symRow.usPerOp,
  'persisted DH-step message / in-memory': persistedDh.usPerOp / dhRow.usPerOp,
  'handshake X-Wing / classical': (hsRows.get('XWING-SHA256-AES256GCM') as Row).usPerOp / (hsRows.get('X25519-SHA256-AES256GCM') as Row).usPerOp,
};
const machine = { node: process.version, openssl: process.versions.openssl, cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`, memGiB: Math.round(totalmem() / 2 ** 30) };
const result = { command: 'npm run bench', date: new Date().toISOString(), machine, method: { runMs: RUN_MS, runs: RUNS }, dhStepPrimitivesUs: dhPrimSum, interleaved: { symVsAes, dhVsPrims }, ratios, rows, wallSeconds: (Date.now() - started) / 1000 };
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/sessions.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const lines = [
  `Measured ${result.date.slice(0, 10)} with \`npm run bench\` on ${machine.cpus}, ${machine.memGiB} GiB, Node ${machine.node}; ${RUNS} runs of ≥ ${RUN_MS} ms each, median.`,
  '',
  '| ratio (same run) | value |',
  '| --- | --: |',
  ...Object.entries(ratios).map(([k, v]) => `| ${k} | ${v.toFixed(2)} |`),
  '',
  '| group | benchmark | size | µs/op | ops/s |',
  '| --- | --- | --: | --: | --: |',
  ...rows.map((r) => `| ${r.group} | ${r.name} | ${fmtSize(r.size)} | ${f(r.usPerOp)} | ${r.opsPerSec.toFixed(0)} |`),
];
const perfPath = new URL('../docs/performance.md', import.meta.url);
let doc = readFileSync(perfPath, 'utf8');
const start = '<!-- bench:sessions:start -->';
const end = '<!-- bench:sessions:end -->';
doc = doc.slice(0, doc.indexOf(start) + start.length) + '\n' + lines.join('\n') + '\n' + doc.slice(doc.indexOf(end));
writeFileSync(perfPath, doc);
console.log(JSON.stringify({ ratios, wallSeconds: result.wallSeconds }, null, 2));
rmSync(work, { recursive: true, force: true });
