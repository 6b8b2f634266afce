import { test, before } from 'node:test';
import { strict as assert } from 'node:assert';
import { VerificationFailure, type SecurityReason } from '../../src/core/errors.js';
import { RevocationState, derToPem, pemToDer, trustPolicyFromCaPem, validateChain, type TrustPolicy } from '../../src/core/x509/index.js';
import { DAY, at, crl, issue, makeCa, type Ca } from './_fixtures.js';

function refuses(reason: SecurityReason, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VerificationFailure, `expected VerificationFailure, got ${String(e)}`);
    assert.equal(e.reason, reason, `reason ${e.reason} (${e.detail ?? ''})`);
    return true;
  });
}

let ca: Ca;
let other: Ca;
let policy: TrustPolicy;
before(async () => {
  ca = await makeCa('Rev CA', 'ed25519');
  other = await makeCa('Other CA');
  policy = trustPolicyFromCaPem(ca.certPem);
});

test('addCrl returns the dates and number; re-adding the same CRL is a no-op', async () => {
  const r = new RevocationState();
  const c1 = await crl(ca, 1n, [], at(DAY));
  assert.deepEqual(r.addCrl(c1, policy), { anchor: 'Rev CA', crlNumber: 1n, thisUpdate: at(DAY), nextUpdate: at(8 * DAY) });
  assert.equal(r.crlNumberFor('Rev CA'), 1n);
  assert.equal(r.crlNumberFor('nope'), undefined);
  r.addCrl(c1, policy);
  assert.equal(r.crlNumberFor('Rev CA'), 1n);
  assert.equal(r.crlInfo('Rev CA')?.revokedCount, 0);
});

test('CRL rollback: an older CRL number after a newer one is refused and the newer CRL is kept', async () => {
  const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
  const older = await crl(ca, 3n);
  const newer = await crl(ca, 4n, [leaf.serialHex]);
  const r = new RevocationState();
  r.addCrl(older, policy);
  r.addCrl(newer, policy);
  refuses('crl-rollback', () => r.addCrl(older, policy));
  assert.equal(r.crlNumberFor('Rev CA'), 4n);
  refuses('cert-revoked', () => validateChain([leaf.certDer], { policy, revocation: r, now: at(0) }));
  // the guard survives persistence
  const restored = RevocationState.fromJSON(JSON.parse(JSON.stringify(r.toJSON())));
  refuses('crl-rollback', () => restored.addCrl(older, policy));
});

test('a different CRL reusing a held number is refused', async () => {
  const r = new RevocationState();
  r.addCrl(await crl(ca, 7n), policy);
  const sameNumber = await crl(ca, 7n, ['4b'.repeat(16)]);
  refuses('crl-invalid', () => r.addCrl(sameNumber, policy));
});

test('a CRL signed by another CA, or tampered with, is refused', async () => {
  const r = new RevocationState();
  const foreign = await crl(other, 9n);
  refuses('crl-invalid', () => r.addCrl(foreign, policy));
  const good = pemToDer(await crl(ca, 1n, ['4c'.repeat(16)]), 'X509 CRL');
  const bad = new Uint8Array(good);
  const i = Buffer.from(bad).indexOf(Buffer.from('4c'.repeat(16), 'hex'));
  bad[i] = 0x4d; // revoked list altered: the signature no longer verifies
  refuses('crl-invalid', () => r.addCrl(derToPem(bad, 'X509 CRL'), policy));
  refuses('crl-invalid', () => r.addCrl('not a pem', policy));
  refuses('crl-invalid', () => r.addCrl(ca.certPem, policy));
  assert.equal(r.crlNumberFor('Rev CA'), undefined);
});

test('a CRL from another CA with the same name (forged issuer) is refused', async () => {
  const twin = await makeCa('Rev CA', 'ed25519');
  const forged = await crl(twin, 100n);
  const r = new RevocationState();
  refuses('crl-invalid', () => r.addCrl(forged, policy));
});

test('RevocationState JSON round trip', async () => {
  const leaf = await issue(ca, { role: 'charger', id: 'CP-2', operator: 'ChargeCo' });
  const p2: TrustPolicy = {
    anchors: [
      { name: 'rev', certDer: ca.certDer, roles: '*' },
      { name: 'other', certDer: other.certDer, roles: ['psp'] },
    ],
  };
  const r = new RevocationState();
  r.addCrl(await crl(ca, 12n, [leaf.serialHex]), p2);
  r.addCrl(await crl(other, 3n), p2);
  const j = JSON.parse(JSON.stringify(r.toJSON()));
  assert.equal(j.version, 1);
  assert.deepEqual(Object.keys(j.anchors).sort(), ['other', 'rev']);
  assert.equal(j.anchors.rev.highest, '12');
  const back = RevocationState.fromJSON(j);
  assert.deepEqual(back.toJSON(), r.toJSON());
  assert.equal(back.crlNumberFor('rev'), 12n);
  assert.equal(back.crlNumberFor('other'), 3n);
  // restored CRLs are usable (verified lazily against the anchor)
  refuses('cert-revoked', () => validateChain([leaf.certDer], { policy: p2, revocation: back, now: at(0) }));
  // null / undefined give an empty state
  assert.deepEqual(RevocationState.fromJSON(null).toJSON(), { version: 1, anchors: {} });
  assert.deepEqual(RevocationState.fromJSON(undefined).toJSON(), { version: 1, anchors: {} });
  // strict
  for (const bad of [
    { version: 2, anchors: {} },
    { version: 1, anchors: {}, extra: 1 },
    { version: 1, anchors: { a: { highest: 1 } } },
    { version: 1, anchors: { a: { highest: '01' } } },
    { version: 1, anchors: { a: { highest: '1', crl: 'not-a-crl' } } },
    { version: 1, anchors: { a: { highest: '1', extra: true } } },
    [],
  ]) {
    assert.throws(() => RevocationState.fromJSON(bad), { code: 'ERR_STATE' }, JSON.stringify(bad));
  }
});

test('a stored CRL is re-verified against the current anchor before use', async () => {
  const leaf = await issue(ca, { role: 'charger', id: 'CP-3', operator: 'ChargeCo' });
  const r = new RevocationState();
  r.addCrl(await crl(other, 2n), { anchors: [{ name: 'x', certDer: other.certDer, roles: '*' }] });
  const j = JSON.parse(JSON.stringify(r.toJSON()));
  const back = RevocationState.fromJSON(j);
  // the policy now names ca's certificate "x": the held CRL was not issued by it
  const p: TrustPolicy = { anchors: [{ name: 'x', certDer: ca.certDer, roles: '*' }] };
  refuses('crl-invalid', () => validateChain([leaf.certDer], { policy: p, revocation: back, now: at(0) }));
});

test('the same CA under two anchor names gets the CRL under both', async () => {
  const leaf = await issue(ca, { role: 'psp', id: 'psp-1', operator: 'PayCo' });
  const p: TrustPolicy = {
    anchors: [
      { name: 'a', certDer: ca.certDer, roles: ['charger'] },
      { name: 'b', certDer: ca.certDer, roles: ['psp'] },
    ],
  };
  const r = new RevocationState();
  assert.equal(r.addCrl(await crl(ca, 1n), p).anchor, 'a');
  assert.equal(r.crlNumberFor('b'), 1n);
  assert.equal(validateChain([leaf.certDer], { policy: p, revocation: r, now: at(0) }).anchor, 'b');
});
