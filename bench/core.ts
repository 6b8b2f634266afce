// npm run bench — envelope seal/open against the raw node:crypto primitives
// it is made of, @hpke/core and jose JWE, all in this one process and run.
// Writes bench/results/core.json and the results table in docs/performance.md.
import {
  createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman,
  generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify, type JsonWebKey, type KeyObject,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, Aes256Gcm } from '@hpke/core';
import * as jose from 'jose';
import { parseBundle, verifyBundle } from '../src/core/bundle.js';
import { openEnvelope, sealEnvelope } from '../src/core/envelope.js';
import { ReplayWindow } from '../src/core/replay.js';
import { DEFAULT_ROLE_POLICY } from '../src/core/role-policy.js';
import { lp } from '../src/core/bytes.js';
import type { SuiteName } from '../src/core/suites.js';
import { RevocationState, trustPolicyFromCaPem, validationCacheStats } from '../src/core/x509/index.js';
import { initCaDir, signCsrWithCaDir } from '../src/keystore/ca-dir.js';
import { initIdentity, installCert, loadIdentity } from '../src/keystore/identity-dir.js';
import { bench, benchAsync, fmtSize, interleavedRatio, RUN_MS, RUNS, type Row } from './harness.js';

const SIZES = [64, 1024, 16384, 1048576];
const SUITES: SuiteName[] = ['X25519-SHA256-AES256GCM', 'XWING-SHA256-AES256GCM'];
const started = Date.now();
const loadAtStart = loadavg().map((x) => x.toFixed(2)).join(' ');
const work = mkdtempSync(join(tmpdir(), 'evseal-bench-'));
const rows: Row[] = [];

// --- identities: ECDSA P-256, the CLI default -------------------------------------------
const now = new Date();
await initCaDir(join(work, 'ca'), { name: 'Bench Root', now: new Date(now.getTime() - 3600_000) });
async function make(role: 'charger' | 'provisioning', id: string): Promise<string> {
  const dir = join(work, id);
  const { csrPem } = await initIdentity(dir, { role, id, operator: 'Bench', alg: 'ecdsa-p256', suites: [...SUITES], plaintext: true });
  const { certPem } = await signCsrWithCaDir(join(work, 'ca'), csrPem, { now: new Date(now.getTime() - 60_000) });
  installCert(dir, certPem, Math.floor(now.getTime() / 1000));
  return dir;
}
const cpDir = await make('charger', 'CP-1');
const provDir = await make('provisioning', 'prov-1');
const policy = trustPolicyFromCaPem(readFileSync(join(work, 'ca', 'ca.pem'), 'utf8'));
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(readFileSync(join(work, 'ca', 'crl.pem'), 'utf8'), policy);
const prov = loadIdentity(provDir);
const cp = loadIdentity(cpDir);
const bundle = verifyBundle(parseBundle(readFileSync(join(cpDir, 'bundle.json'), 'utf8')), { policy, revocation, now });
const me = { info: cp.file, prekeys: cp.prekeys, suites: cp.file.suites };
const openCtx = (replay: ReplayWindow) => ({ policy, revocation, now, replay, rolePolicy: DEFAULT_ROLE_POLICY, maxLifetimeSec: 259200, skewSec: 300 });
const sealWith = (suite: SuiteName, pt: Uint8Array) =>
  sealEnvelope({ chain: prov.chain, info: prov.file, privateKey: prov.privateKey, suites: [suite], certHash: prov.certHash }, bundle, pt, {
    kind: 'credentials', now, lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY,
  });

// --- evseal envelopes --------------------------------------------------------------------
const NOTE = 'core API; sender bundle pre-verified; chain validation cached by (chain hash, anchor, CRL number)';
const envRows = new Map<string, Row>();
for (const suite of SUITES) {
  for (const size of SIZES) {
    const pt = new Uint8Array(randomBytes(size));
    const sealed = sealWith(suite, pt);
    const r1 = bench(`evseal ${suite}`, 'seal', size, () => void sealWith(suite, pt), NOTE);
    const r2 = bench(`evseal ${suite}`, 'open', size, () => void openEnvelope(sealed, me, openCtx(new ReplayWindow())), NOTE);
    const replay = new ReplayWindow();
    const r3 = bench(`evseal ${suite}`, 'seal+open', size, () => void openEnvelope(sealWith(suite, pt), me, openCtx(replay)), NOTE);
    rows.push(r1, r2, r3);
    envRows.set(`${suite}/${size}`, r3);
  }
}

// --- the raw node:crypto primitives one classical seal+open is made of -------------------
// Exactly the calls one message necessarily makes (docs/protocol.md §7-§9), with the same
// input sizes, and nothing else: the 16-byte message id; DHKEM(X25519)'s ephemeral key
// pair and the sender's DH; the recipient's import of `enc` and its DH; the 12 HMACs of
// HKDF-SHA256 (6 per side); AES-256-GCM; the ECDSA P-256 envelope signature and its
// check; SHA-256 of the sender's certificate (the fromCert check). Long-lived keys (the
// recipient's prekey pair, the signing key, the sender's certified public key) are held
// as imported KeyObjects on both sides, as the envelope code holds them: importing them
// is per key, not per message.
const HDR_LEN = Buffer.from(JSON.parse(sealWith('X25519-SHA256-AES256GCM', new Uint8Array(1))).hdr, 'base64url').length;
const certDer = prov.certDer;
const prekeyX = [...cp.prekeys.values()].find((k) => k.kem === 'X25519');
if (!prekeyX) throw new Error('no X25519 prekey');
const pkRjwk = { kty: 'OKP', crv: 'X25519', x: Buffer.from(prekeyX.pub).toString('base64url') } as const;
const skRjwk = { ...pkRjwk, d: Buffer.from(prekeyX.sk).toString('base64url') } as const;
const signKey = prov.privateKey;
const verifyKey: KeyObject = createPublicKey(prov.privateKey);
const key32 = randomBytes(32);
const nonce = randomBytes(12);
const hdr = randomBytes(HDR_LEN);
const info = Buffer.concat([Buffer.from('evseal/v1 envelope\0'), hdr]);
const hmacs = (n: number) => {
  for (let i = 0; i < n; i++) createHmac('sha256', key32).update(i === 2 ? info : key32).digest();
};
const messageId = () => void randomBytes(16);
const x25519Keygen = () => void generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } });
const ephemeral = generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } }) as unknown as { privateKey: KeyObject; publicKey: JsonWebKey };
const encJwk = ephemeral.publicKey;
const pkR = createPublicKey({ key: pkRjwk, format: 'jwk' });
const skR = createPrivateKey({ key: skRjwk, format: 'jwk' });
// Sender side: derive with the ephemeral key and the (held) recipient prekey.
const x25519EncapDh = () => diffieHellman({ privateKey: ephemeral.privateKey, publicKey: pkR });
// Recipient side: import the sender's enc (JWK: the cheapest raw import in Node 20), derive with the held prekey.
const x25519DecapDh = () => diffieHellman({ privateKey: skR, publicKey: createPublicKey({ key: encJwk, format: 'jwk' }) });
const aesEncDec = (pt: Uint8Array) => {
  const c = createCipheriv('aes-256-gcm', key32, nonce);
  const out = Buffer.concat([c.update(pt), c.final()]);
  const tag = c.getAuthTag();
  const d = createDecipheriv('aes-256-gcm', key32, nonce);
  d.setAuthTag(tag);
  Buffer.concat([d.update(out), d.final()]);
};
const ecdsaSign = (m: Uint8Array) => nodeSign('sha256', m, { key: signKey, dsaEncoding: 'ieee-p1363' });
const primRows: Row[] = [];
const P = 'node:crypto primitives';
primRows.push(bench(P, '16 random bytes (message id)', undefined, messageId));
primRows.push(bench(P, 'X25519 keygen, public key as JWK', undefined, x25519Keygen));
primRows.push(bench(P, 'X25519 derive (sender)', undefined, x25519EncapDh));
primRows.push(bench(P, 'X25519 import enc (JWK) + derive (recipient)', undefined, x25519DecapDh));
primRows.push(bench(P, 'HMAC-SHA256 x12 (HKDF steps of both sides)', undefined, () => hmacs(12)));
primRows.push(bench(P, 'SHA-256 of the sender certificate (recipient side)', undefined, () => void createHash('sha256').update(certDer).digest()));
const primSum = new Map<number, number>();
for (const size of SIZES) {
  const pt = randomBytes(size);
  const ct = Buffer.concat([createCipheriv('aes-256-gcm', key32, nonce).update(pt), Buffer.alloc(16)]);
  const msg = lp(hdr, randomBytes(32), ct);
  const sig = ecdsaSign(msg);
  const aead = bench(P, 'AES-256-GCM encrypt + decrypt', size, () => aesEncDec(pt));
  const sv = bench(P, 'ECDSA P-256 sign + verify over header, enc, ct', size, () => {
    ecdsaSign(msg);
    nodeVerify('sha256', msg, { key: verifyKey, dsaEncoding: 'ieee-p1363' }, sig);
  });
  primRows.push(aead, sv);
  const fixed = primRows.slice(0, 6);
  // seal+open = message id + keygen + sender DH + recipient DH + 12 HMAC + SHA-256 + AEAD enc/dec + sign/verify
  primSum.set(size, fixed.reduce((sum, r) => sum + r.usPerOp, 0) + aead.usPerOp + sv.usPerOp);
}
rows.push(...primRows);

// --- X-Wing's extra primitive: ML-KEM-768 (noble) -----------------------------------------
const mk = ml_kem768.keygen();
const mkCt = ml_kem768.encapsulate(mk.publicKey).cipherText;
rows.push(bench('@noble/post-quantum', 'ML-KEM-768 encapsulate', undefined, () => void ml_kem768.encapsulate(mk.publicKey)));
rows.push(bench('@noble/post-quantum', 'ML-KEM-768 decapsulate', undefined, () => void ml_kem768.decapsulate(mkCt, mk.secretKey)));

// --- peers ---------------------------------------------------------------------------------
const hpke = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
const rkp = await hpke.kem.generateKeyPair();
const pt1k = new Uint8Array(randomBytes(1024)).buffer;
const hpkeRow = await benchAsync('@hpke/core', 'seal+open base mode, X25519 (WebCrypto) / HKDF-SHA256 / AES-256-GCM', 1024, async () => {
  const { ct, enc } = await hpke.seal({ recipientPublicKey: rkp.publicKey }, pt1k);
  await hpke.open({ recipientKey: rkp.privateKey, enc }, ct);
});
rows.push(hpkeRow);
const jkp = await jose.generateKeyPair('ECDH-ES+A256KW', { crv: 'X25519' });
const jpt = new Uint8Array(randomBytes(1024));
const joseRow = await benchAsync('jose', 'JWE compact ECDH-ES+A256KW / A256GCM, X25519, encrypt + decrypt', 1024, async () => {
  const jwe = await new jose.CompactEncrypt(jpt).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(jkp.publicKey);
  await jose.compactDecrypt(jwe, jkp.privateKey);
});
rows.push(joseRow);

// --- headline ratios, measured in alternation (robust to load changing during the run) -------
const pt1kB = new Uint8Array(randomBytes(1024));
const ct1k = Buffer.concat([createCipheriv('aes-256-gcm', key32, nonce).update(pt1kB), Buffer.alloc(16)]);
const msg1k = lp(hdr, randomBytes(32), ct1k);
const sig1k = ecdsaSign(msg1k);
const primitiveChain1k = () => {
  messageId();
  x25519Keygen();
  x25519EncapDh();
  x25519DecapDh();
  hmacs(12);
  createHash('sha256').update(certDer).digest();
  aesEncDec(pt1kB);
  ecdsaSign(msg1k);
  nodeVerify('sha256', msg1k, { key: verifyKey, dsaEncoding: 'ieee-p1363' }, sig1k);
};
const sharedReplay = new ReplayWindow();
const envelope1k = () => void openEnvelope(sealWith('X25519-SHA256-AES256GCM', pt1kB), me, openCtx(sharedReplay));
const hpke1k = async () => {
  const { ct, enc } = await hpke.seal({ recipientPublicKey: rkp.publicKey }, pt1k);
  await hpke.open({ recipientKey: rkp.privateKey, enc }, ct);
};
process.stderr.write('interleaved: envelope vs primitive chain, envelope vs @hpke/core (1 KiB)\n');
const vsPrimitives = await interleavedRatio(primitiveChain1k, envelope1k);
const vsHpke = await interleavedRatio(envelope1k, hpke1k);
// The same measurement of the envelope against its primitives, repeated: how far the headline figure moves between
// measurements in one process on this machine (the headline stays the first one).
process.stderr.write('interleaved: envelope vs primitive chain, 4 more times\n');
const repeats: number[] = [];
for (let i = 0; i < 4; i++) repeats.push((await interleavedRatio(primitiveChain1k, envelope1k)).ratio);

// --- ratios ------------------------------------------------------------------------------
const classical1k = envRows.get('X25519-SHA256-AES256GCM/1024') as Row;
const xwing1k = envRows.get('XWING-SHA256-AES256GCM/1024') as Row;
const ratios = {
  'classical 1 KiB seal+open / its primitives, run in alternation (criterion ≤ 1.3)': vsPrimitives.ratio,
  '@hpke/core seal+open / classical 1 KiB seal+open, run in alternation (criterion ≥ 4)': vsHpke.ratio,
  'classical 1 KiB seal+open / sum of separately measured primitives': classical1k.usPerOp / (primSum.get(1024) as number),
  '@hpke/core seal+open / classical 1 KiB seal+open, separate rows': hpkeRow.usPerOp / classical1k.usPerOp,
  'jose JWE / classical 1 KiB seal+open (speed-up)': joseRow.usPerOp / classical1k.usPerOp,
  'X-Wing 1 KiB seal+open / classical 1 KiB seal+open': xwing1k.usPerOp / classical1k.usPerOp,
  '@hpke/core seal+open / X-Wing 1 KiB seal+open (speed-up)': hpkeRow.usPerOp / xwing1k.usPerOp,
};
const perSize = SIZES.map((s) => ({ size: s, primitivesUs: primSum.get(s) as number, envelopeUs: (envRows.get(`X25519-SHA256-AES256GCM/${s}`) as Row).usPerOp }));
const machine = {
  node: process.version, openssl: process.versions.openssl, cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
  memGiB: Math.round(totalmem() / 2 ** 30), loadavgStart: loadAtStart, loadavgEnd: loadavg().map((x) => x.toFixed(2)).join(' '),
};
const result = {
  command: 'npm run bench', date: new Date().toISOString(), machine, method: { runMs: RUN_MS, runs: RUNS, statistic: 'median of runs' },
  cache: { note: 'chain validation is cached by (SHA-256 of chain, anchor, CRL number); role, time and revocation checks still run per message', stats: validationCacheStats() },
  interleaved: { envelopeVsPrimitives: vsPrimitives, hpkeVsEnvelope: vsHpke, envelopeVsPrimitivesRepeated: repeats },
  ratios, perSize, rows, wallSeconds: (Date.now() - started) / 1000,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/core.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

// --- docs/performance.md: the table between the markers is regenerated ---------------------
const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const lines = [
  `Measured ${result.date.slice(0, 10)} with \`npm run bench\` on ${machine.cpus}, ${machine.memGiB} GiB, Node ${machine.node}, OpenSSL ${machine.openssl}; ${RUNS} runs of ≥ ${RUN_MS} ms each, median.`,
  `Load average ${machine.loadavgStart} at the start, ${machine.loadavgEnd} at the end (a shared machine: the ratios run in alternation keep both sides under the same load).`,
  '',
  'Primitives of one classical seal+open (docs/protocol.md §7–§9), the floor the envelope is compared with: 16 random bytes (message id);',
  'an X25519 key generation with its public key as JWK; the sender\'s X25519 derivation with the recipient prekey; the recipient\'s import',
  'of `enc` (JWK) and its derivation; 12 HMAC-SHA256 (6 HKDF steps per side); SHA-256 of the sender certificate; AES-256-GCM encryption',
  'and decryption; an ECDSA P-256 signature and its verification. Long-lived keys (prekeys, identity keys, the certified sender key) are',
  'imported once per key on both sides, as the envelope code keeps their handles.',
  '',
  '| ratio (same run) | value |',
  '| --- | --: |',
  ...Object.entries(ratios).map(([k, v]) => `| ${k} | ${v.toFixed(2)} |`),
  '',
  `The first ratio, measured 4 more times in the same process right after: ${repeats.map((x) => x.toFixed(2)).join(', ')} (each the median of ${RUNS * 2} alternating pairs of ≥ ${RUN_MS} ms runs).`,
  '',
  '| classical suite, seal+open | primitives sum (µs) | envelope (µs) | ratio |',
  '| --- | --: | --: | --: |',
  ...perSize.map((p) => `| ${fmtSize(p.size)} | ${f(p.primitivesUs)} | ${f(p.envelopeUs)} | ${(p.envelopeUs / p.primitivesUs).toFixed(2)} |`),
  '',
  '| group | benchmark | size | µs/op | ops/s | spread |',
  '| --- | --- | --: | --: | --: | --: |',
  ...rows.map((r) => `| ${r.group} | ${r.name} | ${fmtSize(r.size)} | ${f(r.usPerOp)} | ${r.opsPerSec.toFixed(0)} | ${(((r.max - r.min) / r.opsPerSec) * 100).toFixed(0)}% |`),
];
const perfPath = new URL('../docs/performance.md', import.meta.url);
let doc = readFileSync(perfPath, 'utf8');
const start = '<!-- bench:core:start -->';
const end = '<!-- bench:core:end -->';
doc = doc.slice(0, doc.indexOf(start) + start.length) + '\n' + lines.join('\n') + '\n' + doc.slice(doc.indexOf(end));
writeFileSync(perfPath, doc);
console.log(JSON.stringify({ ratios, wallSeconds: result.wallSeconds }, null, 2));
rmSync(work, { recursive: true, force: true });
