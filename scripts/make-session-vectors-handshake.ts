// Regenerates tests/vectors/handshake.json (run: npx tsx scripts/make-session-vectors-handshake.ts).
// The language-neutral test vectors of the session handshake (docs/protocol.md §13.9).
// Keys and certificates are made fresh each run, with core functions only (no
// keystore); every valid first message is reproducible byte for byte from what
// the file records: Ed25519 identities, fixed session ids, KEM randomness and
// ratchet keys.
import { createHash, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { b64u } from '../src/core/base64url.js';
import { bundleToJSON, parseBundle, signSuites, verifyBundle, type VerifiedBundle } from '../src/core/bundle.js';
import { utf8 } from '../src/core/bytes.js';
import { encodeCanonical } from '../src/core/canonical-json.js';
import type { Sender } from '../src/core/envelope.js';
import { kemByName } from '../src/core/kem-registry.js';
import { generatePrekey, prekeyToJSON, type PrekeyPrivate, type SignedPrekey } from '../src/core/prekey.js';
import { DEFAULT_ROLE_POLICY, type RolePolicy } from '../src/core/role-policy.js';
import type { Role } from '../src/core/roles.js';
import { SESSION_INIT_SHAPE, deriveSessionSecret, initiateSession, parseSessionInit, sessionAd } from '../src/core/session/handshake.js';
import { SUITE_NAMES, kemOfSuite, type KemName, type SuiteName } from '../src/core/suites.js';
import {
  RevocationState,
  createCrl,
  createCsr,
  createRootCa,
  generateSigningKey,
  loadPrivateKeyPem,
  pemToDer,
  privateKeyToPem,
  signCsr,
  trustPolicyFromCaPem,
} from '../src/core/x509/index.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const nowSec = NOW / 1000;
const DAY = 86400;
const settings = { maxLifetimeSec: 3 * DAY, skewSec: 300 };
const det = (label: string, n: number) => {
  const out = Buffer.alloc(n);
  for (let i = 0; i * 32 < n; i++) createHash('sha256').update(`evseal handshake vectors/${label}/${i}`).digest().copy(out, i * 32);
  return new Uint8Array(out);
};
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

// ---- CAs and identities (Ed25519 throughout, so every signature is deterministic).
const notBefore = new Date(NOW - DAY * 1000);
const root = await createRootCa({ name: 'Vector Root', alg: 'ed25519', notBefore });
const other = await createRootCa({ name: 'Other Root', alg: 'ed25519', notBefore });

interface Made {
  role: Role;
  operator: string;
  certPem: string;
  certDer: Uint8Array;
  keyPem: string;
  key: KeyObject;
  serialHex: string;
}
async function identity(ca: { certPem: string; privateKeyPem: string }, role: Role, id: string): Promise<Made> {
  const { privateKey, publicKey } = generateSigningKey('ed25519');
  const csrPem = await createCsr({ role, id, operator: 'Vector Org', privateKey, publicKey });
  const { certPem, serialHex } = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.privateKeyPem, csrPem, notBefore, validityDays: 3650 });
  return { role, operator: 'Vector Org', certPem, certDer: pemToDer(certPem, 'CERTIFICATE'), keyPem: privateKeyToPem(privateKey), key: privateKey, serialHex };
}
const ids: Record<string, Made> = {
  'tool-1': await identity(root, 'service-tool', 'tool-1'),
  'CP-001': await identity(root, 'charger', 'CP-001'),
  'fleet-1': await identity(root, 'fleet', 'fleet-1'),
  'tool-revoked': await identity(root, 'service-tool', 'tool-revoked'),
  'tool-stranger': await identity(other, 'service-tool', 'tool-stranger'),
};
const crlPem = await createCrl({
  caCertPem: root.certPem,
  caKeyPem: root.privateKeyPem,
  crlNumber: 1n,
  thisUpdate: notBefore,
  nextUpdate: new Date(NOW + 3650 * DAY * 1000),
  revoked: [{ serialHex: ids['tool-revoked']!.serialHex, date: notBefore }],
});
const policy = trustPolicyFromCaPem(root.certPem);
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(crlPem, policy);

// ---- The responder: signed prekeys for every KEM (in its bundle), one-time prekeys (not in it).
const cp = ids['CP-001']!;
const cpHash = sha256(cp.certDer);
const prekeyOpts = { validitySec: 9 * DAY, maxLifetimeSec: settings.maxLifetimeSec, ownerCertHash: cpHash, signingKey: cp.key };
const prekeys = (['XWING', 'X25519', 'P256'] as KemName[]).map((kem) => generatePrekey(kem, { ...prekeyOpts, now: nowSec - DAY }));
const otks = (['XWING', 'X25519'] as KemName[]).map((kem) => generatePrekey(kem, { ...prekeyOpts, now: nowSec - DAY, validitySec: 30 * DAY }));
const unheldOtk = generatePrekey('XWING', { ...prekeyOpts, now: nowSec - DAY, validitySec: 30 * DAY });
const cpSuites = [...SUITE_NAMES];
const bundleText = bundleToJSON({
  v: 1,
  chain: [cp.certDer],
  suites: cpSuites,
  suitesIssued: nowSec - DAY,
  suitesSig: signSuites(cpSuites, nowSec - DAY, cpHash, cp.key),
  prekeys: prekeys.map((p) => p.pub),
});
const bundle: VerifiedBundle = verifyBundle(parseBundle(bundleText), { policy, revocation, now: new Date(NOW) });
const privJSON = (k: PrekeyPrivate) => ({ kid: k.kid, kem: k.kem, pub: b64u(k.pub), sk: b64u(k.sk), created: k.created, expires: k.expires });

const sender = (id: string, suites: readonly SuiteName[], key?: KeyObject): Sender => {
  const m = ids[id]!;
  return { chain: [m.certDer], info: { role: m.role, id, operator: m.operator }, privateKey: key ?? m.key, suites };
};

// ---- Valid vectors: every suite without a one-time prekey, X-Wing and X25519 with one.
const payload = utf8('{"action":"UnlockConnector","evseId":1,"connectorId":1}');
const cases: { suite: SuiteName; otk?: { pub: SignedPrekey; priv: PrekeyPrivate } }[] = [
  ...SUITE_NAMES.map((suite) => ({ suite })),
  { suite: 'XWING-SHA256-AES256GCM', otk: otks[0] },
  { suite: 'X25519-SHA256-AES256GCM', otk: otks[1] },
];
const valid = cases.map(({ suite, otk }, i) => {
  const name = `${suite}${otk ? ' with one-time prekey' : ''}`;
  const eLen = kemOfSuite(suite) === 'XWING' ? 64 : 32;
  const sessionId = det(`${name}/id`, 16);
  const enc1 = det(`${name}/enc1`, eLen);
  const enc2 = otk ? det(`${name}/enc2`, eLen) : undefined;
  const ratchetKeys: Uint8Array[] = [];
  const keygen = () => {
    const k = det(`${name}/ratchet/${ratchetKeys.length}`, 32);
    ratchetKeys.push(k);
    return k;
  };
  const created = nowSec + i;
  const r = initiateSession(sender('tool-1', [suite]), bundle, payload, {
    kind: 'command', now: new Date(created * 1000), lifetimeSec: 600, rolePolicy: DEFAULT_ROLE_POLICY,
    ...(otk ? { oneTimePrekey: otk.pub } : {}),
    sessionId, randomness: { enc1, ...(enc2 ? { enc2 } : {}) }, ratchet: { keygen },
  });
  // Intermediate values, for implementers: decapsulate with the file's private keys.
  const p = parseSessionInit(r.message);
  const kem = kemByName(kemOfSuite(suite));
  const prekey = prekeys.find((k) => k.pub.kid === p.hdr.kid)!;
  const ss1 = kem.decap(p.enc1, prekey.priv.sk);
  const ss2 = otk ? kem.decap(p.enc2, otk.priv.sk) : new Uint8Array(0);
  return {
    name, suite, initiator: 'tool-1', responder: 'CP-001', kind: 'command', created, lifetime: 600,
    sessionId: b64u(sessionId),
    otk: otk ? otk.pub.kid : '',
    randomness: { enc1: b64u(enc1), enc2: enc2 ? b64u(enc2) : '' },
    ratchetKeys: ratchetKeys.map(b64u),
    payload: b64u(payload),
    intermediate: {
      transcriptHash: b64u(sha256(p.hdrBytes)),
      ss1: b64u(ss1),
      ss2: b64u(ss2),
      sk: b64u(deriveSessionSecret(ss1, ss2, p.hdrBytes)),
      ad: b64u(sessionAd(p.fromCert, p.toCert, p.id)),
      rpub: p.hdr.rpub,
    },
    message: r.message,
  };
});

// ---- Invalid vectors: each refused by CP-001 (holding the file's prekeys and one-time prekeys) with the labelled reason.
const initiated = (id: string, o: { key?: KeyObject; kind?: string; at?: number; lifetime?: number; rolePolicy?: RolePolicy; peer?: VerifiedBundle; otk?: SignedPrekey } = {}) =>
  initiateSession(sender(id, ['XWING-SHA256-AES256GCM'], o.key), o.peer ?? bundle, payload, {
    kind: o.kind ?? 'command', now: new Date((o.at ?? nowSec) * 1000), lifetimeSec: o.lifetime ?? 600, rolePolicy: o.rolePolicy ?? DEFAULT_ROLE_POLICY,
    ...(o.otk ? { oneTimePrekey: o.otk } : {}),
  }).message;
const base = JSON.parse(valid[0]!.message) as Record<string, unknown>;
const withOtk = JSON.parse(valid[SUITE_NAMES.length]!.message) as Record<string, unknown>;
const flipB64 = (s: string) => s.replace(/^(.)/, (_m, c: string) => (c === 'A' ? 'B' : 'A'));
const invalid = [
  {
    name: 'KCI: claims tool-1, made with the responder\'s own identity key (and its prekey)', reason: 'bad-signature',
    message: initiated('tool-1', { key: cp.key }),
  },
  { name: 'first ratchet message byte flipped', reason: 'bad-signature', message: encodeCanonical({ ...base, msg: flipB64(base.msg as string) }, SESSION_INIT_SHAPE) },
  { name: 'enc1 byte flipped', reason: 'bad-signature', message: encodeCanonical({ ...base, enc1: flipB64(base.enc1 as string) }, SESSION_INIT_SHAPE) },
  { name: 'enc2 removed while the header names a one-time prekey', reason: 'malformed', message: encodeCanonical({ ...withOtk, enc2: '' }, SESSION_INIT_SHAPE) },
  { name: 'not canonical JSON (whitespace)', reason: 'malformed', message: JSON.stringify(base, null, 1) },
  { name: 'initiator from another CA', reason: 'chain-invalid', message: initiated('tool-stranger') },
  { name: 'revoked initiator', reason: 'cert-revoked', message: initiated('tool-revoked') },
  {
    name: 'fleet initiator, kind command (role policy)', reason: 'policy-denied',
    message: initiated('fleet-1', { rolePolicy: { rules: [{ kind: 'command', from: ['fleet'], to: ['charger'] }] } }),
  },
  { name: 'addressed to another certificate of CP-001 (toCert)', reason: 'wrong-recipient', message: initiated('tool-1', { peer: { ...bundle, identity: { ...bundle.identity, certHash: new Uint8Array(32) } } }) },
  { name: 'one-time prekey the responder does not hold', reason: 'unknown-prekey', message: initiated('tool-1', { otk: unheldOtk.pub }) },
  { name: 'expired', reason: 'expired', message: initiated('tool-1', { at: nowSec - 3600 }) },
  { name: 'created in the future', reason: 'not-yet-valid', message: initiated('tool-1', { at: nowSec + 3600 }) },
  { name: 'lifetime over the maximum', reason: 'lifetime-too-long', message: initiated('tool-1', { lifetime: settings.maxLifetimeSec + 1 }) },
].map((v) => ({ responder: 'CP-001', ...v }));

const identities: Record<string, unknown> = {};
for (const [id, m] of Object.entries(ids)) {
  identities[id] = {
    role: m.role, operator: m.operator, cert: m.certPem, key: m.keyPem,
    ...(id === 'CP-001'
      ? { suites: cpSuites, bundle: JSON.parse(bundleText), prekeys: prekeys.map((p) => privJSON(p.priv)), oneTimePrekeys: otks.map((o) => ({ public: prekeyToJSON(o.pub), sk: b64u(o.priv.sk) })) }
      : {}),
  };
}
// Self-check: every key in the file loads.
for (const m of Object.values(ids)) loadPrivateKeyPem(m.keyPem);

const file = {
  description: 'evseal session handshake test vectors, protocol version 1 (docs/protocol.md §13.9)',
  now: nowSec,
  settings,
  ca: { cert: root.certPem, crl: crlPem },
  identities,
  valid,
  invalid,
};
writeFileSync(new URL('../tests/vectors/handshake.json', import.meta.url), JSON.stringify(file, null, 2) + '\n');
console.log(`wrote ${valid.length} valid and ${invalid.length} invalid handshake vectors`);
