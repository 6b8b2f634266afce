// Interop tests for evseal-lite, an implementation of docs/protocol.md written
// without reading evseal's code (tests/interop/independent/evseal-lite.mjs).
//
//  a. evseal-lite opens every `valid` and `p256` vector;
//  b. evseal-lite refuses every `invalid` vector with the labelled reason;
//  c. evseal-lite reproduces every `valid` vector byte for byte;
//  d. evseal-lite and the real evseal CLI (dist/cli/main.js) interoperate both ways.
//
// Run: cd /work/main && node scripts/run-tests.mjs tests/interop/independent.test.ts
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as lite from './independent/evseal-lite.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');

interface Identity {
  role: string;
  operator: string;
  cert: string;
  key: string;
  suites: string[];
  bundle?: unknown;
  prekeys?: { kid: string; kem: string; pub: string; sk: string }[];
}
interface Vectors {
  now: number;
  settings: { maxLifetimeSec: number; skewSec: number };
  ca: { cert: string; crl: string };
  identities: Record<string, Identity>;
  valid: {
    name: string;
    suite: string;
    sender: string;
    recipient: string;
    kind: string;
    cty: string;
    created: number;
    lifetime: number;
    msgId: string;
    randomness: string;
    plaintext: string;
    envelope: string;
  }[];
  p256: { name: string; sender: string; recipient: string; plaintext: string; envelope: string }[];
  invalid: { name: string; reason: string; recipient: string; envelope: string }[];
}

const V: Vectors = JSON.parse(readFileSync(join(ROOT, 'tests', 'vectors', 'envelopes.json'), 'utf8'));

const b64u = (s: string): Uint8Array => lite.b64uDecode(s);
const recipientOf = (name: string): lite.RecipientInput => {
  const id = V.identities[name]!;
  return { cert: id.cert, suites: id.suites, prekeys: id.prekeys ?? [] };
};
const vectorOpts = (extra: lite.OpenOptions = {}): lite.OpenOptions => ({
  trust: V.ca.cert,
  crls: [V.ca.crl],
  now: V.now,
  skew: V.settings.skewSec,
  maxLifetime: V.settings.maxLifetimeSec,
  ...extra,
});
function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof lite.EvsealLiteError) return e.reason;
    throw e;
  }
  return 'OPENED';
}

// ---------------------------------------------------------------------------
// a, b, c: vectors

test('a. evseal-lite opens every valid and p256 vector', () => {
  for (const v of [...V.valid, ...V.p256]) {
    const replay = new Set<string>();
    const pt = lite.openEnvelope(v.envelope, recipientOf(v.recipient), vectorOpts({ replay }));
    assert.deepEqual(pt, b64u(v.plaintext), v.name);
    assert.equal(replay.size, 1, `${v.name}: (fromCert, id) recorded`);
  }
});

test('b. evseal-lite refuses every invalid vector with the labelled reason', () => {
  const mismatches: string[] = [];
  for (const v of V.invalid) {
    const got = reasonOf(() => lite.openEnvelope(v.envelope, recipientOf(v.recipient), vectorOpts()));
    if (got !== v.reason) mismatches.push(`${v.name}: label ${v.reason}, evseal-lite ${got}`);
  }
  assert.deepEqual(mismatches, []);
});

test('c. evseal-lite reproduces every valid vector byte for byte', () => {
  for (const v of V.valid) {
    const s = V.identities[v.sender]!;
    const r = V.identities[v.recipient]!;
    const env = lite.sealEnvelope({ cert: s.cert, key: s.key, suites: s.suites }, r.bundle, b64u(v.plaintext), {
      trust: V.ca.cert,
      crls: [V.ca.crl],
      now: v.created,
      // The vectors use suites the sender identity does not list (prov-1 accepts only XWING and
      // X25519-AES), so §6 "Choosing" cannot produce them: the suite has to be forced.
      suite: v.suite,
      kind: v.kind,
      cty: v.cty,
      lifetime: v.lifetime,
      msgId: v.msgId,
      randomness: v.randomness,
    });
    assert.equal(env, v.envelope, v.name);
  }
});

test('extra: reasons the vectors do not cover, derived from the spec', () => {
  const xw = V.valid.find((v) => v.suite === 'XWING-SHA256-AES256GCM')!;
  const x25519 = V.valid.find((v) => v.suite === 'X25519-SHA256-AES256GCM')!;
  const rcp = recipientOf('CP-001');
  const caPem = V.ca.cert;
  // §9 step 1
  assert.equal(
    reasonOf(() => lite.openEnvelope(x25519.envelope, { ...rcp, suites: ['XWING-SHA256-AES256GCM'] }, vectorOpts())),
    'suite-not-accepted',
  );
  // §9 step 5
  const replay = new Set<string>();
  lite.openEnvelope(xw.envelope, rcp, vectorOpts({ replay }));
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ replay }))), 'replay');
  // §3.4 / A.9 step 11a, and the explicit waiver
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ crls: [] }))), 'crl-missing');
  const revoked = V.invalid.find((v) => v.reason === 'cert-revoked')!;
  assert.equal(reasonOf(() => lite.openEnvelope(revoked.envelope, rcp, vectorOpts({ revocation: 'skip' }))), 'OPENED');
  // A.9 steps 8 and 9
  const scoped = { anchors: [{ name: 'vector', cert: caPem, roles: ['charger'] }] };
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ trust: scoped }))), 'anchor-not-allowed');
  const pinned = { anchors: [{ name: 'vector', cert: caPem, roles: '*' as const, pins: ['sha256:' + '0'.repeat(64)] }] };
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ trust: pinned }))), 'pin-mismatch');
  const prov1 = lite.pemToDer(V.identities['prov-1']!.cert, 'CERTIFICATE');
  const pinnedOk = { anchors: [{ name: 'vector', cert: caPem, roles: '*' as const, pins: [lite.fingerprint(prov1)] }] };
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ trust: pinnedOk }))), 'OPENED');
  // A.9 steps 6/7: after the CA's notAfter (2036-05-28) the anchor vouches for nothing
  assert.equal(reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ now: Date.UTC(2036, 4, 29) / 1000 }))), 'cert-expired');
  // A.9 step 7: before the leaf's notBefore (2026-05-31T23:00Z), revocation waived so the
  // CRL's thisUpdate (23:30Z) does not raise trusted time (§11)
  assert.equal(
    reasonOf(() => lite.openEnvelope(xw.envelope, rcp, vectorOpts({ now: Date.UTC(2026, 4, 31, 12) / 1000, revocation: 'skip' }))),
    'not-yet-valid',
  );
  // A.9 step 4: a second certificate must be the anchor itself
  const env = JSON.parse(xw.envelope) as { chain: string[] };
  const withOther = xw.envelope.replace(
    JSON.stringify(env.chain),
    JSON.stringify([env.chain[0], lite.b64uEncode(lite.pemToDer(V.identities['CP-001']!.cert, 'CERTIFICATE'))]),
  );
  assert.equal(reasonOf(() => lite.openEnvelope(withOther, rcp, vectorOpts())), 'chain-invalid');
});

// ---------------------------------------------------------------------------
// d: interop with the real evseal CLI

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function cli(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
async function cliOk(args: string[], cwd: string): Promise<Run> {
  const r = await cli(args, cwd);
  assert.equal(r.code, 0, `evseal ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}
const lastSecurityReason = (idDir: string): string | undefined => {
  const p = join(idDir, 'security.log');
  if (!existsSync(p)) return undefined;
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]!) as { reason?: string }).reason;
};

const ALL_SUITES = Object.keys(lite.SUITES);
const cliSkip = existsSync(CLI) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

test('d1. envelopes evseal-lite seals to the vector recipient parse with `evseal inspect`', { skip: cliSkip }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'evseal-lite-d1-'));
  try {
    const cp = V.identities['CP-001']!;
    const senders = ['prov-1', 'prov-p256'];
    await Promise.all(
      cp.suites.map(async (suite, i) => {
        const s = V.identities[senders[i % senders.length]!]!;
        const pt = randomBytes(57);
        const env = lite.sealEnvelope({ cert: s.cert, key: s.key, suites: ALL_SUITES }, cp.bundle, pt, {
          trust: V.ca.cert,
          crls: [V.ca.crl],
          now: V.now, // the vector prekeys are live only around the vectors' `now`
          suite,
          kind: 'config',
          cty: 'application/json',
          lifetime: 3600,
        });
        // evseal-lite opens its own envelope ...
        const opened = lite.openEnvelopeDetailed(env, recipientOf('CP-001'), vectorOpts());
        assert.deepEqual(opened.plaintext, new Uint8Array(pt));
        // ... and evseal's `inspect` reads the same clear metadata
        const file = join(tmp, `env-${i}.json`);
        writeFileSync(file, env);
        const r = await cliOk(['inspect', '--in', file], tmp);
        const shown = JSON.parse(r.stdout) as Record<string, unknown>;
        for (const [k, v] of Object.entries(opened.header)) assert.deepEqual(shown[k], v, `${suite}: header ${k}`);
        assert.equal(shown['suite'], suite);
        assert.equal(shown['chainLength'], 1);
      }),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
});

test('d2. evseal-lite <-> evseal CLI, both directions, every suite', { skip: cliSkip }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'evseal-lite-d2-'));
  try {
    // --- a fresh CA and a recipient accepting every suite, made by the CLI
    await cliOk(['pki', 'init', '--dir', 'ca', '--name', 'Interop CA'], tmp);
    // Two recipients with the same suites in opposite preference order, and two CLI senders
    // accepting two suites each: the four (sender, recipient) pairs make the CLI's §6 choice
    // land on each of the four suites once.
    const [XW, XA, XC, PA] = ALL_SUITES as [string, string, string, string];
    const identities = [
      { dir: 'rcp', role: 'charger', id: 'CP-LITE', alg: 'ecdsa-p256', suites: [XW, XA, XC, PA] },
      { dir: 'rcp2', role: 'charger', id: 'CP-LITE-2', alg: 'ed25519', suites: [PA, XC, XA, XW] },
      { dir: 'snd0', role: 'provisioning', id: 'prov-cli-0', alg: 'ed25519', suites: [XW, PA] },
      { dir: 'snd1', role: 'provisioning', id: 'prov-cli-1', alg: 'ecdsa-p256', suites: [XA, XC] },
    ];
    const cliSeals = [
      { sender: identities[2]!, rcp: identities[0]!, suite: XW },
      { sender: identities[3]!, rcp: identities[0]!, suite: XA },
      { sender: identities[3]!, rcp: identities[1]!, suite: XC },
      { sender: identities[2]!, rcp: identities[1]!, suite: PA },
    ];
    // keys init on every endpoint (plaintext keystores, so this test can read the private
    // prekeys as operations.md documents them), pki sign one at a time, then keys install
    await Promise.all(
      identities.map((x) =>
        cliOk(['keys', 'init', '--role', x.role, '--id', x.id, '--operator', 'Interop Org', '--out', x.dir, '--alg', x.alg, '--suites', x.suites.join(','), '--plaintext-keystore'], tmp),
      ),
    );
    for (const x of identities) await cliOk(['pki', 'sign', '--ca', 'ca', '--csr', join(x.dir, 'csr.pem'), '--out', `${x.dir}-cert.pem`], tmp);
    await Promise.all(identities.map((x) => cliOk(['keys', 'install', '--as', x.dir, '--cert', `${x.dir}-cert.pem`], tmp)));

    // trust: the CLI CA (by path) and the vector CA (inline PEM), each with its CRL
    writeFileSync(join(tmp, 'vector-crl.pem'), V.ca.crl);
    writeFileSync(
      join(tmp, 'policy.json'),
      JSON.stringify({
        version: 1,
        anchors: [
          { name: 'interop', cert: 'ca/ca.pem', roles: '*' },
          { name: 'vector', cert: V.ca.cert, roles: '*' },
        ],
      }),
    );
    const caPem = readFileSync(join(tmp, 'ca', 'ca.pem'), 'utf8');
    const caCrl = readFileSync(join(tmp, 'ca', 'crl.pem'), 'utf8');
    const liteTrust = {
      trust: { anchors: [{ name: 'interop', cert: caPem, roles: '*' as const }, { name: 'vector', cert: V.ca.cert, roles: '*' as const }] },
      crls: [caCrl, V.ca.crl],
    };
    const openArgs = ['open', '--as', 'rcp', '--trust', 'policy.json', '--crl', 'ca/crl.pem', '--crl', 'vector-crl.pem'];
    const rcpBundle = JSON.parse(readFileSync(join(tmp, 'rcp', 'bundle.json'), 'utf8')) as unknown;

    await t.test('evseal-lite validates the CLI bundle (§6)', () => {
      const policy = lite.makeTrustPolicy(liteTrust.trust);
      const rev = new lite.RevocationState(policy);
      for (const c of liteTrust.crls) rev.addCrl(c);
      const vb = lite.verifyBundle(rcpBundle, { policy, revocation: rev, now: Math.floor(Date.now() / 1000) });
      assert.equal(vb.identity.id, 'CP-LITE');
      assert.equal(vb.identity.role, 'charger');
      assert.deepEqual(vb.suites, ALL_SUITES);
      assert.deepEqual(new Set(vb.livePrekeys.map((p) => p.kem)), new Set(['XWING', 'X25519', 'P256']));
    });

    await t.test('evseal opens what evseal-lite seals (vector senders, every suite)', async () => {
      for (const [i, suite] of ALL_SUITES.entries()) {
        const sender = i % 2 ? 'prov-p256' : 'prov-1';
        const s = V.identities[sender]!;
        const pt = randomBytes(100 + i);
        // i = 0: no forced suite and no kind: §6 "Choosing" (prov-1 accepts XWING first) and
        // §10 (first rule for provisioning -> charger is `credentials`) must give XWING/credentials
        const env = lite.sealEnvelope({ cert: s.cert, key: s.key, suites: s.suites }, rcpBundle, pt, {
          ...liteTrust,
          ...(i === 0 ? {} : { suite, kind: 'credentials' }),
          cty: 'application/octet-stream',
        });
        writeFileSync(join(tmp, `l2c-${i}.json`), env);
        const r = await cliOk([...openArgs, '--in', `l2c-${i}.json`, '--out', `l2c-${i}.bin`, '--json'], tmp);
        assert.deepEqual(readFileSync(join(tmp, `l2c-${i}.bin`)), pt, `${suite} from ${sender}`);
        const out = JSON.parse(r.stdout) as { header: { suite: string; from: string; kind: string } };
        assert.equal(out.header.suite, suite);
        assert.equal(out.header.from, sender);
        assert.equal(out.header.kind, 'credentials');
      }
      // a second open is a replay; the reason goes to ID_DIR/security.log
      const again = await cli([...openArgs, '--in', 'l2c-0.json', '--out', 'replayed.bin'], tmp);
      assert.equal(again.code, 1);
      assert.equal(existsSync(join(tmp, 'replayed.bin')), false);
      assert.equal(lastSecurityReason(join(tmp, 'rcp')), 'replay');
    });

    await t.test('evseal-lite opens what evseal seals (CLI senders, every suite)', async () => {
      // the recipients' private side, read from their identity directories (docs/operations.md
      // lists the files; their JSON layout is not documented and was read off files the CLI made)
      const loadRecipient = (dir: string) => {
        const idJson = JSON.parse(readFileSync(join(tmp, dir, 'identity.json'), 'utf8')) as {
          id: string;
          suites: string[];
          settings: { maxLifetimeSec: number; skewSec: number };
        };
        const prekeyDir = join(tmp, dir, 'prekeys');
        const prekeys = readdirSync(prekeyDir)
          .filter((f) => f.endsWith('.key.json'))
          .map((f) => JSON.parse(readFileSync(join(prekeyDir, f), 'utf8')) as { kid: string; kem: string; sk: string });
        const recipient: lite.RecipientInput = { cert: readFileSync(join(tmp, dir, 'cert.pem'), 'utf8'), suites: idJson.suites, prekeys };
        return { idJson, recipient };
      };
      const pts = cliSeals.map((_, i) => randomBytes(80 + i));
      // seals by the same sender run one after the other: each updates the sender's state.json,
      // and a concurrent process finds state.lock held and fails (ERR_STATE) instead of waiting
      const seal = async (i: number) => {
        const c = cliSeals[i]!;
        writeFileSync(join(tmp, `c2l-${i}.bin`), pts[i]!);
        await cliOk(
          ['seal', '--as', c.sender.dir, '--trust', 'ca/ca.pem', '--crl', 'ca/crl.pem', '--to', join(c.rcp.dir, 'bundle.json'), '--in', `c2l-${i}.bin`, '--out', `c2l-${i}.json`],
          tmp,
        );
      };
      await Promise.all(
        identities.slice(2).map(async (snd) => {
          for (const [i, c] of cliSeals.entries()) if (c.sender === snd) await seal(i);
        }),
      );
      const replay = new Set<string>();
      for (const [i, c] of cliSeals.entries()) {
        const { idJson, recipient } = loadRecipient(c.rcp.dir);
        assert.equal(idJson.id, c.rcp.id);
        // The CLI writes the envelope followed by "\n". §7 makes the envelope canonical JSON
        // with no whitespace, so evseal-lite treats the newline as file framing and drops it.
        const file = readFileSync(join(tmp, `c2l-${i}.json`), 'utf8');
        const env = file.endsWith('\n') ? file.slice(0, -1) : file;
        const opts: lite.OpenOptions = { trust: caPem, crls: [caCrl], replay, skew: idJson.settings.skewSec, maxLifetime: idJson.settings.maxLifetimeSec };
        const opened = lite.openEnvelopeDetailed(env, recipient, opts);
        assert.deepEqual(opened.plaintext, new Uint8Array(pts[i]!), c.suite);
        assert.equal(opened.header.suite, c.suite, 'the CLI chose the suite §6 prescribes');
        assert.equal(opened.header.from, c.sender.id);
        assert.equal(opened.header.to, c.rcp.id);
        assert.equal(opened.sender.alg, c.sender.alg);
        assert.equal(opened.header.kind, 'credentials');
        assert.equal(opened.header.cty, 'application/octet-stream');
        assert.equal(reasonOf(() => lite.openEnvelope(env, recipient, opts)), 'replay');
      }
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
});
