import { test, after } from 'node:test';
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VerificationFailure } from '../../src/core/errors.js';
import { TrustedClock } from '../../src/core/trusted-time.js';
import { RevocationState, createCsr, generateSigningKey, pemToDer, trustPolicyFromCaPem, validateChain } from '../../src/core/x509/index.js';
import { initCaDir, readCaDirState, refreshCrl, revokeWithCaDir, signCsrWithCaDir } from '../../src/keystore/ca-dir.js';
import { DAY, at } from './_fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'evseal-x509-cadir-'));
after(() => rmSync(root, { recursive: true, force: true }));
const dir = (n: string) => join(root, n);
const read = (d: string, f: string) => readFileSync(join(d, f), 'utf8');

async function csr(id: string, role: 'charger' | 'psp' = 'charger') {
  return createCsr({ role, id, operator: 'ChargeCo', ...generateSigningKey('ed25519') });
}

test('initCaDir writes the CA files with the right modes and refuses a non-empty directory', async () => {
  const d = dir('ca1');
  await initCaDir(d, { name: 'Ops CA', now: at(0) });
  assert.deepEqual(readdirSync(d).sort(), ['ca-state.json', 'ca.key', 'ca.pem', 'crl.pem']);
  assert.equal(statSync(join(d, 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(d, 'ca-state.json')).mode & 0o777, 0o600);
  assert.equal(statSync(d).mode & 0o777, 0o700);
  const policy = trustPolicyFromCaPem(read(d, 'ca.pem'));
  const rev = new RevocationState();
  const r = rev.addCrl(read(d, 'crl.pem'), policy);
  assert.equal(r.crlNumber, 1n);
  assert.equal(r.nextUpdate.getTime() - r.thisUpdate.getTime(), 7 * DAY);
  const s = readCaDirState(d);
  assert.deepEqual({ ...s }, { version: 1, name: 'Ops CA', alg: 'ecdsa-p256', crlDays: 7, nextCrlNumber: 2, revoked: [], issued: [] });
  await assert.rejects(initCaDir(d, { name: 'Again', now: at(0) }), { code: 'ERR_USAGE' });
  const other = dir('not-empty');
  mkdirSync(other);
  writeFileSync(join(other, 'x'), 'x');
  await assert.rejects(initCaDir(other, { name: 'X' }), { code: 'ERR_USAGE' });
  // an existing empty directory is fine
  mkdirSync(dir('empty'));
  await initCaDir(dir('empty'), { name: 'Empty', alg: 'ed25519', crlDays: 2, now: at(0) });
  assert.equal(readCaDirState(dir('empty')).crlDays, 2);
});

test('sign, validate, revoke: the revoked certificate is refused with the new CRL', async () => {
  const d = dir('ca2');
  await initCaDir(d, { name: 'Ops CA 2', alg: 'ed25519', now: at(-DAY) });
  const { certPem, serialHex } = await signCsrWithCaDir(d, await csr('CP-1'), { now: at(-60_000), validityDays: 90 });
  const { certPem: keep } = await signCsrWithCaDir(d, await csr('CP-2'), { now: at(-60_000) });
  const s = readCaDirState(d);
  assert.equal(s.issued.length, 2);
  assert.deepEqual(s.issued[0], { serialHex, role: 'charger', id: 'CP-1', operator: 'ChargeCo', notAfter: new Date(at(-60_000).getTime() + 90 * DAY).toISOString() });

  const policy = trustPolicyFromCaPem(read(d, 'ca.pem'));
  const rev = new RevocationState();
  rev.addCrl(read(d, 'crl.pem'), policy);
  const der = pemToDer(certPem, 'CERTIFICATE');
  assert.equal(validateChain([der], { policy, revocation: rev, now: at(0) }).id, 'CP-1');
  const oldCrl = read(d, 'crl.pem');

  const r = await revokeWithCaDir(d, certPem, { now: at(0) });
  assert.equal(r.crlNumber, 2n);
  assert.equal(read(d, 'crl.pem'), r.crlPem);
  rev.addCrl(r.crlPem, policy);
  assert.throws(() => validateChain([der], { policy, revocation: rev, now: at(0) }), (e: unknown) => e instanceof VerificationFailure && e.reason === 'cert-revoked');
  // the other certificate is unaffected
  assert.equal(validateChain([pemToDer(keep, 'CERTIFICATE')], { policy, revocation: rev, now: at(0) }).id, 'CP-2');
  // the old CRL cannot be replayed
  assert.throws(() => rev.addCrl(oldCrl, policy), (e: unknown) => e instanceof VerificationFailure && e.reason === 'crl-rollback');
  // revoking again is idempotent for the list, but a new CRL is issued
  const again = await revokeWithCaDir(d, certPem, { now: at(1000) });
  assert.equal(again.crlNumber, 3n);
  assert.equal(readCaDirState(d).revoked.length, 1);
});

test('revokeWithCaDir refuses a certificate from another CA', async () => {
  const a = dir('ca3a');
  const b = dir('ca3b');
  await initCaDir(a, { name: 'Same Name', now: at(0) });
  await initCaDir(b, { name: 'Same Name', now: at(0) });
  const { certPem } = await signCsrWithCaDir(b, await csr('CP-9'), { now: at(0) });
  await assert.rejects(revokeWithCaDir(a, certPem, { now: at(0) }), { code: 'ERR_USAGE' });
  await assert.rejects(revokeWithCaDir(a, 'junk', { now: at(0) }), { code: 'ERR_INVALID_INPUT' });
  assert.equal(readCaDirState(a).nextCrlNumber, 2, 'no CRL number spent');
});

test('refreshCrl issues a new number and dates; an old CRL goes stale and a clock set back does not revive it', async () => {
  const d = dir('ca4');
  await initCaDir(d, { name: 'Refresh CA', now: at(-DAY) });
  const { certPem } = await signCsrWithCaDir(d, await csr('CP-1'), { now: at(-DAY) });
  const der = pemToDer(certPem, 'CERTIFICATE');
  const policy = trustPolicyFromCaPem(read(d, 'ca.pem'));
  const rev = new RevocationState();
  rev.addCrl(read(d, 'crl.pem'), policy); // thisUpdate T0-1d, nextUpdate T0+6d
  assert.throws(() => validateChain([der], { policy, revocation: rev, now: at(7 * DAY) }), (e: unknown) => e instanceof VerificationFailure && e.reason === 'crl-stale');
  const r = await refreshCrl(d, { now: at(7 * DAY), crlDays: 3 });
  assert.equal(r.crlNumber, 2n);
  let wall = at(7 * DAY).getTime();
  const clock = new TrustedClock(0, () => wall);
  const added = rev.addCrl(r.crlPem, policy);
  clock.observe(added.thisUpdate);
  assert.equal(added.nextUpdate.getTime() - added.thisUpdate.getTime(), 3 * DAY);
  assert.ok(validateChain([der], { policy, revocation: rev, now: clock.now() }));
  wall = at(11 * DAY).getTime();
  assert.throws(() => validateChain([der], { policy, revocation: rev, now: clock.now() }), (e: unknown) => e instanceof VerificationFailure && e.reason === 'crl-stale');
  wall = at(0).getTime(); // set back: the mark (T0+7d) still rules, the CRL is fresh, not the old one
  assert.equal(clock.now().getTime(), at(7 * DAY).getTime());
  // default crlDays comes from the CA state
  const r3 = await refreshCrl(d, { now: at(8 * DAY) });
  assert.equal(rev.addCrl(r3.crlPem, policy).nextUpdate.getTime(), at(15 * DAY).getTime());
});

test('concurrent operations on one CA directory are serialized', async () => {
  const d = dir('ca5');
  await initCaDir(d, { name: 'Busy CA', now: at(0) });
  const csrs = await Promise.all(Array.from({ length: 6 }, (_, i) => csr(`CP-${i}`)));
  const results = await Promise.all([
    ...csrs.map((c) => signCsrWithCaDir(d, c, { now: at(0) })),
    refreshCrl(d, { now: at(0) }),
    refreshCrl(d, { now: at(0) }),
  ]);
  const s = readCaDirState(d);
  assert.equal(s.issued.length, 6);
  assert.equal(new Set(s.issued.map((i) => i.serialHex)).size, 6);
  assert.equal(s.nextCrlNumber, 4);
  assert.equal(results.length, 8);
  assert.ok(!readdirSync(d).includes('ca.lock'), 'lock released');
  assert.ok(!readdirSync(d).some((f) => f.endsWith('.tmp')), 'no temp files left');
});

test('renewal through the CA directory keeps the identity', async () => {
  const d = dir('ca6');
  await initCaDir(d, { name: 'Renew CA', now: at(0) });
  const info = { role: 'psp' as const, id: 'psp-1', operator: 'ChargeCo' };
  const c = await csr('psp-1', 'psp');
  const r = await signCsrWithCaDir(d, c, { now: at(0), keepIdentity: info });
  assert.ok(r.serialHex);
  await assert.rejects(signCsrWithCaDir(d, c, { now: at(0), keepIdentity: { ...info, id: 'psp-2' } }), { code: 'ERR_INVALID_INPUT' });
  await assert.rejects(signCsrWithCaDir(dir('nope'), c), { code: 'ERR_NOT_FOUND' });
});
