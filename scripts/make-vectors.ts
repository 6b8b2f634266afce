// Regenerates tests/vectors/envelopes.json (run: npm run vectors).
// The file is the published, language-neutral test vector set of
// docs/protocol.md §12. Keys and certificates are made fresh each run; the
// envelopes are reproducible from what the file records.
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64u, fromB64u } from '../src/core/base64url.js';
import { parseBundle, verifyBundle } from '../src/core/bundle.js';
import { lp, utf8 } from '../src/core/bytes.js';
import { encodeCanonical } from '../src/core/canonical-json.js';
import { ENVELOPE_SHAPE, HEADER_SHAPE, sealEnvelope, type EnvelopeHeader } from '../src/core/envelope.js';
import { DEFAULT_ROLE_POLICY } from '../src/core/role-policy.js';
import { signWith } from '../src/core/signature.js';
import { SUITE_NAMES, type SuiteName } from '../src/core/suites.js';
import { RevocationState, pemToDer, trustPolicyFromCaPem } from '../src/core/x509/index.js';
import { initCaDir, revokeWithCaDir, signCsrWithCaDir } from '../src/keystore/ca-dir.js';
import { initIdentity, installCert, loadIdentity } from '../src/keystore/identity-dir.js';
import type { Role } from '../src/core/roles.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const nowSec = NOW / 1000;
const work = mkdtempSync(join(tmpdir(), 'evseal-vectors-'));
const det = (label: string, n: number) => {
  const out = Buffer.alloc(n);
  for (let i = 0; i * 32 < n; i++) createHash('sha256').update(`${label}/${i}`).digest().copy(out, i * 32);
  return new Uint8Array(out);
};

try {
  const ca = join(work, 'ca');
  const other = join(work, 'other-ca');
  await initCaDir(ca, { name: 'Vector Root', alg: 'ed25519', now: new Date(NOW - 86400_000), crlDays: 3650 });
  await initCaDir(other, { name: 'Other Root', alg: 'ed25519', now: new Date(NOW - 86400_000), crlDays: 3650 });

  async function make(caDir: string, role: Role, id: string, alg: 'ed25519' | 'ecdsa-p256', suites?: SuiteName[]) {
    const dir = join(work, id);
    const { csrPem } = await initIdentity(dir, { role, id, operator: 'Vector Org', alg, suites, plaintext: true });
    const { certPem } = await signCsrWithCaDir(caDir, csrPem, { now: new Date(NOW - 3600_000), validityDays: 3650 });
    installCert(dir, certPem, nowSec - 60);
    return dir;
  }
  const charger = await make(ca, 'charger', 'CP-001', 'ed25519', [...SUITE_NAMES]);
  const pqCharger = await make(ca, 'charger', 'CP-002', 'ed25519', ['XWING-SHA256-AES256GCM']);
  const prov = await make(ca, 'provisioning', 'prov-1', 'ed25519');
  const provP256 = await make(ca, 'provisioning', 'prov-p256', 'ecdsa-p256');
  const revoked = await make(ca, 'provisioning', 'prov-revoked', 'ed25519');
  const stranger = await make(other, 'provisioning', 'prov-stranger', 'ed25519');
  await revokeWithCaDir(ca, readFileSync(join(revoked, 'cert.pem'), 'utf8'), { now: new Date(NOW - 1800_000) });

  const caPem = readFileSync(join(ca, 'ca.pem'), 'utf8');
  const crlPem = readFileSync(join(ca, 'crl.pem'), 'utf8');
  const policy = trustPolicyFromCaPem(caPem);
  const revocation = RevocationState.fromJSON(null);
  revocation.addCrl(crlPem, policy);

  const identities: Record<string, unknown> = {};
  for (const dir of [charger, pqCharger, prov, provP256, revoked, stranger]) {
    const id = loadIdentity(dir);
    identities[id.file.id] = {
      role: id.file.role,
      operator: id.file.operator,
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'identity.key'), 'utf8'),
      suites: id.file.suites,
      ...(dir === charger || dir === pqCharger
        ? {
            bundle: JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8')),
            prekeys: [...id.prekeys.values()].map((k) => ({ kid: k.kid, kem: k.kem, pub: b64u(k.pub), sk: b64u(k.sk) })),
          }
        : {}),
    };
  }

  const bundle = verifyBundle(parseBundle(readFileSync(join(charger, 'bundle.json'), 'utf8')), { policy, revocation, now: new Date(NOW) });
  const pqKid = (JSON.parse(readFileSync(join(pqCharger, 'bundle.json'), 'utf8')) as { prekeys: { kid: string }[] }).prekeys[0]?.kid;
  const senderOf = (dir: string, suites: readonly SuiteName[]) => {
    const id = loadIdentity(dir);
    return { chain: id.chain, info: id.file, privateKey: id.privateKey, suites };
  };

  const plaintext = utf8('{"ssid":"depot-7","psk":"correct horse battery staple"}');
  const valid = SUITE_NAMES.map((suite, i) => {
    const msgId = det(`msgId/${suite}`, 16);
    const randomness = det(`eseed/${suite}`, suite.startsWith('XWING') ? 64 : 32);
    const envelope = sealEnvelope(senderOf(prov, [suite]), bundle, plaintext, {
      kind: 'credentials', contentType: 'application/json', now: new Date(NOW + i * 1000), lifetimeSec: 86400, rolePolicy: DEFAULT_ROLE_POLICY, msgId, randomness,
    });
    return {
      name: `valid ${suite}`, suite, sender: 'prov-1', recipient: 'CP-001', kind: 'credentials', cty: 'application/json',
      created: nowSec + i, lifetime: 86400, msgId: b64u(msgId), randomness: b64u(randomness), plaintext: b64u(plaintext), envelope,
    };
  });
  const p256 = [
    {
      name: 'ECDSA P-256 sender, X-Wing', sender: 'prov-p256', recipient: 'CP-001', plaintext: b64u(plaintext),
      envelope: sealEnvelope(senderOf(provP256, ['XWING-SHA256-AES256GCM']), bundle, plaintext, {
        kind: 'config', contentType: 'application/json', now: new Date(NOW), lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY,
      }),
    },
    {
      name: 'ECDSA P-256 sender, DHKEM(P-256)', sender: 'prov-p256', recipient: 'CP-001', plaintext: b64u(plaintext),
      envelope: sealEnvelope(senderOf(provP256, ['P256-SHA256-AES256GCM']), bundle, plaintext, {
        kind: 'config', contentType: 'application/json', now: new Date(NOW), lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY,
      }),
    },
  ];

  // Invalid vectors: start from a valid envelope and change one thing. Where
  // the change is under the signature, the envelope is re-signed with a key
  // from the file, so the failure is the labelled later check, not the signature.
  const base = valid[0]?.envelope as string;
  const outer = JSON.parse(base) as Record<string, string | string[] | number>;
  const hdr = JSON.parse(Buffer.from(fromB64u(outer.hdr)).toString()) as EnvelopeHeader;
  const keyOf = (dir: string): KeyObject => createPrivateKey(readFileSync(join(dir, 'identity.key'), 'utf8'));
  const chainOf = (dir: string) => [b64u(pemToDer(readFileSync(join(dir, 'cert.pem'), 'utf8'), 'CERTIFICATE'))];
  function resign(h: Record<string, unknown>, o: { key?: KeyObject; chain?: string[]; ct?: Uint8Array } = {}): string {
    const hdrBytes = utf8(encodeCanonical(h, HEADER_SHAPE));
    const enc = fromB64u(outer.enc);
    const ct = o.ct ?? fromB64u(outer.ct);
    const sig = signWith('envelope', o.key ?? keyOf(prov), lp(hdrBytes, enc, ct));
    return encodeCanonical({ v: 1, hdr: b64u(hdrBytes), chain: o.chain ?? (outer.chain as string[]), enc: b64u(enc), ct: b64u(ct), sig: b64u(sig) }, ENVELOPE_SHAPE);
  }
  function resignRaw(hdrText: string): string {
    const hdrBytes = utf8(hdrText);
    const enc = fromB64u(outer.enc);
    const ct = fromB64u(outer.ct);
    const sig = signWith('envelope', keyOf(prov), lp(hdrBytes, enc, ct));
    return encodeCanonical({ v: 1, hdr: b64u(hdrBytes), chain: outer.chain as string[], enc: b64u(enc), ct: b64u(ct), sig: b64u(sig) }, ENVELOPE_SHAPE);
  }
  const sealedBy = (dir: string, kind = 'credentials', lifetime = 86400, at = NOW, rolePolicy = DEFAULT_ROLE_POLICY) =>
    sealEnvelope(senderOf(dir, ['XWING-SHA256-AES256GCM']), bundle, plaintext, { kind, contentType: 'application/json', now: new Date(at), lifetimeSec: lifetime, rolePolicy });
  const flippedCt = fromB64u(outer.ct);
  flippedCt[0] = (flippedCt[0] as number) ^ 1;
  const provCertHash = b64u(new Uint8Array(createHash('sha256').update(pemToDer(readFileSync(join(provP256, 'cert.pem'), 'utf8'), 'CERTIFICATE')).digest()));

  const invalid = [
    { name: 'whitespace (not canonical JSON)', reason: 'malformed', envelope: JSON.stringify(outer, null, 1) },
    { name: 'duplicate key', reason: 'malformed', envelope: base.replace('{"v":1,', '{"v":1,"v":1,') },
    { name: 'unknown key', reason: 'malformed', envelope: base.slice(0, -1) + ',"x":"y"}' },
    { name: 'padded base64url', reason: 'malformed', envelope: base.replace(/"sig":"([^"]+)"/, '"sig":"$1=="') },
    { name: 'signature byte flipped', reason: 'bad-signature', envelope: base.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`) },
    { name: 'ciphertext byte flipped', reason: 'bad-signature', envelope: encodeCanonical({ ...outer, ct: b64u(flippedCt) }, ENVELOPE_SHAPE) },
    { name: 'ciphertext flipped and re-signed by the sender', reason: 'decrypt-failed', envelope: resign({ ...hdr }, { ct: flippedCt }) },
    {
      name: 're-signed by another sender (fromCert/from/chain swapped; header bound into HPKE)', reason: 'decrypt-failed',
      envelope: resign({ ...hdr, from: 'prov-p256', fromCert: provCertHash }, { key: keyOf(provP256), chain: chainOf(provP256) }),
    },
    { name: 'wrong recipient', reason: 'wrong-recipient', envelope: resign({ ...hdr, to: 'CP-002' }) },
    { name: 'suite changed to another the recipient accepts (no prekey of that kid for it)', reason: 'unknown-prekey', envelope: resign({ ...hdr, suite: 'X25519-SHA256-AES256GCM' }) },
    { name: 'unknown prekey id', reason: 'unknown-prekey', envelope: resign({ ...hdr, kid: b64u(new Uint8Array(16)) }) },
    { name: 'fromCert does not match the chain', reason: 'cert-hash-mismatch', envelope: resign({ ...hdr, fromCert: b64u(new Uint8Array(32)) }) },
    { name: 'from does not match the certificate', reason: 'identity-mismatch', envelope: resign({ ...hdr, from: 'prov-2' }) },
    { name: 'expired', reason: 'expired', envelope: sealedBy(prov, 'credentials', 3600, NOW - 7200_000) },
    { name: 'created in the future', reason: 'not-yet-valid', envelope: sealedBy(prov, 'credentials', 3600, NOW + 3600_000) },
    { name: 'lifetime over the maximum', reason: 'lifetime-too-long', envelope: resign({ ...hdr, expires: hdr.created + 4 * 86400 }) },
    {
      name: 'kind not allowed for provisioning -> charger', reason: 'policy-denied',
      envelope: sealedBy(prov, 'diagnostics', 3600, NOW, { rules: [{ kind: 'diagnostics', from: ['provisioning'], to: ['charger'] }] }),
    },
    { name: 'revoked sender', reason: 'cert-revoked', envelope: sealedBy(revoked) },
    { name: 'sender from another CA', reason: 'chain-invalid', envelope: sealedBy(stranger) },
    { name: 'suite the recipient does not accept (downgrade)', reason: 'suite-not-accepted', recipient: 'CP-002', envelope: resign({ ...hdr, suite: 'X25519-SHA256-AES256GCM', to: 'CP-002', kid: pqKid }) },
    { name: 'expires before created', reason: 'malformed', envelope: resign({ ...hdr, expires: hdr.created - 1 }) },
    { name: 'header with whitespace', reason: 'malformed', envelope: resignRaw(JSON.stringify(hdr, null, 1)) },
    { name: 'header keys reordered', reason: 'malformed', envelope: resignRaw(JSON.stringify(Object.fromEntries(Object.entries(hdr).reverse()))) },
    { name: 'header with a duplicate key', reason: 'malformed', envelope: resignRaw(encodeCanonical({ ...hdr }, HEADER_SHAPE).replace('{"v":1,', '{"v":1,"v":1,')) },
    { name: 'header with an unknown key', reason: 'malformed', envelope: resignRaw(encodeCanonical({ ...hdr }, HEADER_SHAPE).slice(0, -1) + ',"x":"y"}') },
  ].map((v) => ({ recipient: 'CP-001', ...v }));

  const file = {
    description: 'evseal envelope test vectors, protocol version 1 (docs/protocol.md §12)',
    now: nowSec,
    settings: { maxLifetimeSec: 259200, skewSec: 300 },
    ca: { cert: caPem, crl: crlPem },
    identities,
    valid,
    p256,
    invalid,
  };
  writeFileSync(new URL('../tests/vectors/envelopes.json', import.meta.url), JSON.stringify(file, null, 2) + '\n');
  console.log(`wrote ${valid.length} valid, ${p256.length} p256, ${invalid.length} invalid vectors`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
