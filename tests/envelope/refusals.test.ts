// The refusals the core issue names: each is refused with the one opaque
// error, nothing is returned, and afterwards the untampered envelope still opens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { revokeWithCaDir, refreshCrl } from '../../src/keystore/ca-dir.js';
import { parseTrustPolicy } from '../../src/core/x509/index.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { ENVELOPE_SHAPE, HEADER_SHAPE } from '../../src/core/envelope.js';
import { encodeCanonical } from '../../src/core/canonical-json.js';

const w = new World();
after(() => w.cleanup());
let ca = '', otherCa = '', charger = '', prov = '', crl = '';
let env = '';
const secret = new TextEncoder().encode('vpn-key: 7f3a…');

before(async () => {
  ca = await w.ca('operator-ca');
  otherCa = await w.ca('other-ca');
  charger = await w.identity(ca, 'charger', 'CP-1');
  prov = await w.identity(ca, 'provisioning', 'prov-1', { days: 30 });
  crl = join(ca, 'crl.pem');
  env = sender().seal(w.bundle(charger), secret, { kind: 'credentials' });
});

const sender = () => w.endpoint(prov, w.trust(ca), [crl]);
const recipient = () => w.endpoint(charger, w.trust(ca), [crl]);
const refused = (text: string, ep = recipient()) => assert.throws(() => ep.open(text), { code: 'ERR_OPEN_FAILED', message: 'envelope could not be opened' });

function lastSecurityReason(dir: string): string {
  const lines = readFileSync(join(dir, 'security.log'), 'utf8').trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string).reason;
}

test('any single-field tampering or removal is refused, then the original opens', () => {
  const outer = JSON.parse(env) as Record<string, unknown>;
  const hdr = JSON.parse(Buffer.from(fromB64u(outer.hdr)).toString()) as Record<string, unknown>;
  let cases = 0;
  // Outer fields: flip one byte of each, and remove each.
  for (const [name] of ENVELOPE_SHAPE) {
    const removed = { ...outer };
    delete removed[name];
    refused(JSON.stringify(removed));
    const mod = { ...outer };
    if (name === 'v') mod.v = 2;
    else if (name === 'chain') mod.chain = [b64u(flip(fromB64u((outer.chain as string[])[0])))];
    else mod[name] = b64u(flip(fromB64u(outer[name])));
    refused(encodeCanonical(mod, ENVELOPE_SHAPE));
    cases += 2;
  }
  // Header fields: change each value (keeping the header well-formed), and remove each.
  const changes: Record<string, unknown> = {
    v: 2, suite: 'X25519-SHA256-AES256GCM', from: 'prov-2', fromCert: b64u(new Uint8Array(32)), to: 'CP-2',
    kid: b64u(new Uint8Array(16)), id: b64u(new Uint8Array(16)), created: (hdr.created as number) - 1,
    expires: (hdr.expires as number) + 1, kind: 'config', cty: 'text/plain',
  };
  for (const [name] of HEADER_SHAPE) {
    const h2 = { ...hdr, [name]: changes[name] };
    refused(encodeCanonical({ ...outer, hdr: b64u(Buffer.from(encodeCanonical(h2, HEADER_SHAPE))) }, ENVELOPE_SHAPE));
    const h3 = { ...hdr };
    delete h3[name];
    refused(encodeCanonical({ ...outer, hdr: b64u(Buffer.from(JSON.stringify(h3))) }, ENVELOPE_SHAPE));
    cases += 2;
  }
  // Non-canonical encodings: whitespace, reordered keys, a duplicate key, padding.
  refused(JSON.stringify(outer, null, 1));
  refused(JSON.stringify(Object.fromEntries(Object.entries(outer).reverse())));
  refused(env.replace('{"v":1,', '{"v":1,"v":1,'));
  refused(env.replace(/"sig":"([^"]+)"/, '"sig":"$1="'));
  refused(env.slice(0, -1) + ',"extra":"x"}');
  assert.ok(cases >= 34);
  // None of the refusals consumed the message id: the original still opens.
  assert.deepEqual(recipient().open(env).plaintext, secret);
  // ...once.
  refused(env);
  assert.equal(lastSecurityReason(charger), 'replay');
});

test('a wrong recipient is refused', async () => {
  const other = await w.identity(ca, 'charger', 'CP-9');
  const e = sender().seal(w.bundle(charger), secret, { kind: 'credentials' });
  refused(e, w.endpoint(other, w.trust(ca), [crl]));
  assert.equal(lastSecurityReason(other), 'wrong-recipient');
  // Relabelled to the other charger, the header signature and HPKE context no longer match.
  const outer = JSON.parse(e);
  const hdr = JSON.parse(Buffer.from(fromB64u(outer.hdr)).toString());
  const relabelled = encodeCanonical({ ...outer, hdr: b64u(Buffer.from(encodeCanonical({ ...hdr, to: 'CP-9' }, HEADER_SHAPE))) }, ENVELOPE_SHAPE);
  refused(relabelled, w.endpoint(other, w.trust(ca), [crl]));
});

test('a sender from another CA is refused, and so is one whose anchor is not allowed for its role', async () => {
  const stranger = await w.identity(otherCa, 'provisioning', 'prov-x');
  const e1 = w.endpoint(stranger, w.trust(ca), [crl]).seal(w.bundle(charger), secret, { kind: 'credentials' });
  refused(e1);
  assert.equal(lastSecurityReason(charger), 'chain-invalid');
  // Trust policy: other-ca may certify only psp; a provisioning identity from it is refused.
  const policyText = JSON.stringify({ version: 1, anchors: [
    { name: 'operator', cert: join(ca, 'ca.pem'), roles: ['charger', 'provisioning'] },
    { name: 'other', cert: join(otherCa, 'ca.pem'), roles: ['psp'] },
  ] });
  const policy = parseTrustPolicy(policyText, (p) => readFileSync(p, 'utf8'));
  const e2 = w.endpoint(stranger, w.trust(ca), [crl]).seal(w.bundle(charger), secret, { kind: 'credentials' });
  refused(e2, w.endpoint(charger, policy, [crl, join(otherCa, 'crl.pem')]));
  assert.equal(lastSecurityReason(charger), 'anchor-not-allowed');
});

test('an expired sender is refused, and a clock set back does not revive it', async () => {
  // A CA of its own: this test moves the charger's trusted-time mark forward.
  const ca4 = await w.ca('expiry-ca');
  const crl4 = join(ca4, 'crl.pem');
  const c4 = await w.identity(ca4, 'charger', 'CP-expiry');
  const shortLived = await w.identity(ca4, 'provisioning', 'prov-short', { days: 1 });
  const e = w.endpoint(shortLived, w.trust(ca4), [crl4]).seal(w.bundle(c4), secret, { kind: 'credentials', lifetimeSec: 3 * 86400 });
  const saved = w.now;
  w.now += 2 * 86400_000;
  // A fresh CRL, so only the certificate's expiry is at stake.
  await refreshCrl(ca4, { now: new Date(w.now) });
  refused(e, w.endpoint(c4, w.trust(ca4), [crl4]));
  assert.equal(lastSecurityReason(c4), 'cert-expired');
  // The wall clock goes back two days; the CRL's signed thisUpdate raised the trusted-time mark.
  w.now = saved;
  refused(e, w.endpoint(c4, w.trust(ca4), []));
  assert.equal(lastSecurityReason(c4), 'cert-expired');
});

test('a revoked sender is refused once the new CRL is loaded; an older CRL cannot undo it', async () => {
  const victim = await w.identity(ca, 'provisioning', 'prov-revoked');
  const e = w.endpoint(victim, w.trust(ca), [crl]).seal(w.bundle(charger), secret, { kind: 'credentials' });
  const oldCrl = w.path('old-crl.pem');
  copyFileSync(crl, oldCrl);
  await revokeWithCaDir(ca, readFileSync(join(victim, 'cert.pem'), 'utf8'), { now: new Date(w.now) });
  refused(e);
  assert.equal(lastSecurityReason(charger), 'cert-revoked');
  // Feeding the older CRL (lower number) is itself refused.
  assert.throws(() => w.endpoint(charger, w.trust(ca), [oldCrl]).open(e), { code: 'ERR_CERT_REJECTED', message: /crl-rollback/ });
});

test('a stale or missing CRL fails closed unless revocation checking is explicitly waived', async () => {
  const ca3 = await w.ca('stale-ca');
  const c3 = await w.identity(ca3, 'charger', 'CP-stale');
  const p3 = await w.identity(ca3, 'provisioning', 'prov-stale');
  const e = w.endpoint(p3, w.trust(ca3), [join(ca3, 'crl.pem')]).seal(w.bundle(c3), secret, { kind: 'credentials', lifetimeSec: 3 * 86400 });
  // Missing: the charger never saw a CRL for this CA.
  refused(e, w.endpoint(c3, w.trust(ca3), []));
  assert.equal(lastSecurityReason(c3), 'crl-missing');
  // Stale: the CRL's nextUpdate (7 days) has passed.
  const saved = w.now;
  w.now += 8 * 86400_000;
  refused(e, w.endpoint(c3, w.trust(ca3), [join(ca3, 'crl.pem')]));
  w.now = saved;
  // Waived explicitly: opens (the envelope itself is still within its lifetime).
  assert.deepEqual(w.endpoint(c3, w.trust(ca3), [], { revocationCheck: false }).open(e).plaintext, secret);
});

test('a swapped prekey or a trimmed suite list in a bundle is refused before sealing', () => {
  const b = JSON.parse(w.bundle(charger));
  const swapped = structuredClone(b);
  const pub = fromB64u(swapped.prekeys[0].pub);
  pub[5] ^= 1;
  swapped.prekeys[0].pub = b64u(pub);
  assert.throws(() => sender().seal(JSON.stringify(swapped), secret, { kind: 'credentials' }), { code: 'ERR_BUNDLE_REJECTED' });
  const trimmed = structuredClone(b);
  trimmed.suites = ['X25519-SHA256-AES256GCM'];
  assert.throws(() => sender().seal(JSON.stringify(trimmed), secret, { kind: 'credentials' }), { code: 'ERR_BUNDLE_REJECTED' });
  // A prekey signed by another identity (moved from another bundle) is refused too.
  const otherBundle = JSON.parse(w.bundle(prov));
  const moved = structuredClone(b);
  moved.prekeys[0] = otherBundle.prekeys[0];
  assert.throws(() => sender().seal(JSON.stringify(moved), secret, { kind: 'credentials' }), { code: 'ERR_BUNDLE_REJECTED' });
});

test('a downgraded suite is refused by a recipient that does not accept it', async () => {
  const pqOnly = await w.identity(ca, 'charger', 'CP-pq', { suites: ['XWING-SHA256-AES256GCM'] });
  const classical = await w.identity(ca, 'charger', 'CP-classic', { suites: ['X25519-SHA256-AES256GCM'] });
  // An attacker splices a classical-suite envelope body onto the PQ-only charger:
  const e = sender().seal(w.bundle(classical), secret, { kind: 'credentials' });
  const outer = JSON.parse(e);
  const hdr = JSON.parse(Buffer.from(fromB64u(outer.hdr)).toString());
  const pqKid = JSON.parse(w.bundle(pqOnly)).prekeys[0].kid;
  const spliced = encodeCanonical({ ...outer, hdr: b64u(Buffer.from(encodeCanonical({ ...hdr, to: 'CP-pq', kid: pqKid }, HEADER_SHAPE))) }, ENVELOPE_SHAPE);
  refused(spliced, w.endpoint(pqOnly, w.trust(ca), [crl]));
  assert.equal(lastSecurityReason(pqOnly), 'suite-not-accepted');
});

test('an envelope past its expiry, or with a lifetime over the cap, is refused', async () => {
  const e = sender().seal(w.bundle(charger), secret, { kind: 'credentials', lifetimeSec: 3600 });
  const saved = w.now;
  w.now += 3 * 3600_000;
  refused(e);
  assert.equal(lastSecurityReason(charger), 'expired');
  w.now = saved;
  assert.throws(() => sender().seal(w.bundle(charger), secret, { kind: 'credentials', lifetimeSec: 30 * 86400 }), { code: 'ERR_USAGE' });
});

test('the security log holds reasons, never plaintext', () => {
  const log = readFileSync(join(charger, 'security.log'), 'utf8');
  assert.ok(log.length > 0);
  assert.ok(!log.includes('vpn-key'));
});

function flip(b: Uint8Array): Uint8Array {
  const c = new Uint8Array(b);
  c[Math.floor(c.length / 2)] ^= 0x01;
  return c;
}
