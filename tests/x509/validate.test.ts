import { test, describe, before } from 'node:test';
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { VerificationFailure, type SecurityReason } from '../../src/core/errors.js';
import {
  RevocationState,
  certFingerprint,
  clearValidationCache,
  derToPem,
  trustPolicyFromCaPem,
  validateChain,
  validationCacheStats,
  PreparedChain,
  type TrustPolicy,
  type ValidationContext,
} from '../../src/core/x509/index.js';
import { TrustedClock } from '../../src/core/trusted-time.js';
import { KU } from '../../src/core/x509/cert.js';
import { encodeKeyUsage } from '../../src/core/x509/ca.js';
import { encodeCaName } from '../../src/core/x509/names.js';
import { DAY, T0, at, crl, issue, makeCa, rawCert, type Ca } from './_fixtures.js';

function refuses(reason: SecurityReason, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VerificationFailure, `expected VerificationFailure, got ${String(e)}`);
    assert.equal(e.reason, reason, `reason ${e.reason} (${e.detail ?? ''})`);
    return true;
  });
}

function revocationWith(policy: TrustPolicy, ...crls: string[]): RevocationState {
  const r = new RevocationState();
  for (const c of crls) r.addCrl(c, policy);
  return r;
}

for (const alg of ['ecdsa-p256', 'ed25519'] as const) {
  describe(`validateChain with a ${alg} CA`, () => {
    let ca: Ca;
    let policy: TrustPolicy;
    let rev: RevocationState;
    before(async () => {
      ca = await makeCa(`Root ${alg}`, alg);
      policy = trustPolicyFromCaPem(ca.certPem);
      rev = revocationWith(policy, await crl(ca, 1n));
    });

    for (const leafAlg of ['ecdsa-p256', 'ed25519'] as const) {
      test(`CSR -> sign -> validate keeps role/id/operator (${leafAlg} leaf)`, async () => {
        const info = { role: 'psp' as const, id: 'psp-01.eu:x_y', operator: 'Zahlung & Söhne GmbH' };
        const leaf = await issue(ca, info, { alg: leafAlg });
        const v = validateChain([leaf.certDer], { policy, revocation: rev, now: at(0), expectedRole: 'psp' });
        assert.deepEqual({ role: v.role, id: v.id, operator: v.operator }, info);
        assert.equal(v.alg, leafAlg);
        assert.equal(v.anchor, `Root ${alg}`);
        assert.equal(v.serialHex, leaf.serialHex);
        assert.equal(v.fingerprint, certFingerprint(leaf.certDer));
        assert.deepEqual(v.certDer, leaf.certDer);
        assert.equal(v.certHash.length, 32);
        assert.ok(v.publicKey.equals(leaf.publicKey));
        // node/OpenSSL agrees on the signature
        assert.ok(new X509Certificate(leaf.certDer).verify(new X509Certificate(ca.certDer).publicKey));
      });
    }

    test('the anchor certificate may follow the leaf; any other second certificate is refused', async () => {
      const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
      assert.equal(validateChain([leaf.certDer, ca.certDer], { policy, revocation: rev, now: at(0) }).id, 'CP-1');
      const other = await makeCa('Other');
      refuses('chain-invalid', () => validateChain([leaf.certDer, other.certDer], { policy, revocation: rev, now: at(0) }));
      refuses('chain-invalid', () => validateChain([leaf.certDer, ca.certDer, ca.certDer], { policy, revocation: rev, now: at(0) }));
    });
  });
}

describe('refusals', () => {
  let ca: Ca;
  let policy: TrustPolicy;
  let rev: RevocationState;
  const ctx = (o: Partial<ValidationContext> = {}): ValidationContext => ({ policy, revocation: rev, now: at(0), ...o });
  before(async () => {
    ca = await makeCa('Operator CA');
    policy = trustPolicyFromCaPem(ca.certPem);
    rev = revocationWith(policy, await crl(ca, 1n));
  });

  test('malformed input', async () => {
    refuses('malformed', () => validateChain([], ctx()));
    refuses('malformed', () => validateChain([new Uint8Array([0x30, 0x00])], ctx()));
    const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    refuses('malformed', () => validateChain([leaf.certDer.subarray(0, leaf.certDer.length - 1)], ctx()));
    refuses('malformed', () => validateChain([new Uint8Array([...leaf.certDer, 0])], ctx()));
  });

  test('a tampered leaf (one bit flipped in the signed part) is refused', async () => {
    const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    const der = new Uint8Array(leaf.certDer);
    const i = Buffer.from(der).indexOf(Buffer.from('CP-1'));
    der[i + 3] = '2'.charCodeAt(0);
    refuses('chain-invalid', () => validateChain([der], ctx()));
  });

  test('a CA certificate used as a leaf is refused', () => {
    refuses('malformed', () => validateChain([ca.certDer], ctx())); // its subject is not an identity
  });

  test('leaves outside the profile (made directly with @peculiar/x509) are refused', async () => {
    const bc = (x: typeof import('@peculiar/x509'), ca_ = false, critical = true) => new x.BasicConstraintsExtension(ca_, undefined, critical);
    const ku = (x: typeof import('@peculiar/x509'), bits = x.KeyUsageFlags.digitalSignature, critical = true) => new x.KeyUsagesExtension(bits, critical);
    const cases: [string, SecurityReason, Parameters<typeof rawCert>[1]][] = [
      ['the control case is accepted', 'malformed', { extensions: (x) => [bc(x), ku(x)] }],
      ['cA TRUE with an identity subject', 'chain-invalid', { extensions: (x) => [bc(x, true), ku(x)] }],
      ['missing keyUsage', 'chain-invalid', { extensions: (x) => [bc(x)] }],
      ['missing basicConstraints', 'chain-invalid', { extensions: (x) => [ku(x)] }],
      // the library then writes an empty Extensions SEQUENCE, which violates SIZE (1..MAX): not even well-formed
      ['no extensions at all', 'malformed', { extensions: () => [] }],
      ['keyUsage with keyCertSign', 'chain-invalid', { extensions: (x) => [bc(x), ku(x, x.KeyUsageFlags.digitalSignature | x.KeyUsageFlags.keyCertSign)] }],
      ['keyUsage without digitalSignature', 'chain-invalid', { extensions: (x) => [bc(x), ku(x, x.KeyUsageFlags.keyAgreement)] }],
      ['non-critical keyUsage', 'chain-invalid', { extensions: (x) => [bc(x), ku(x, undefined, false)] }],
      ['an unknown critical extension', 'chain-invalid', { extensions: (x) => [bc(x), ku(x), new x.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([5, 0]))] }],
      ['a duplicated extension', 'chain-invalid', { extensions: (x) => [bc(x), ku(x), ku(x)] }],
      ['an OU that is not a role', 'malformed', { subject: 'O=ChargeCo, OU=janitor, CN=CP-1', extensions: (x) => [bc(x), ku(x)] }],
      ['PrintableString subject attributes', 'malformed', { subject: 'O=ChargeCo, OU=charger, CN=CP-1', extensions: (x) => [bc(x), ku(x)] }],
      ['two CNs', 'malformed', { subject: 'O=ChargeCo, OU=charger, CN=CP-1, CN=CP-2', extensions: (x) => [bc(x), ku(x)] }],
    ];
    for (const [what, reason, o] of cases) {
      const der = await rawCert(ca, o);
      if (what === 'the control case is accepted') {
        assert.equal(validateChain([der], ctx()).id, 'CP-raw', what);
        continue;
      }
      refuses(reason, () => validateChain([der], ctx()));
    }
    // our KeyUsage encoder agrees with the library's DER
    const x = await import('@peculiar/x509');
    for (const bits of [KU.digitalSignature, KU.keyCertSign | KU.cRLSign, KU.digitalSignature | KU.keyAgreement, KU.decipherOnly]) {
      const lib = new x.KeyUsagesExtension(bits, true);
      const inner = new Uint8Array(lib.value);
      assert.deepEqual(encodeKeyUsage(bits), inner, `keyUsage bits ${bits}`);
    }
  });

  test('expired and not-yet-valid leaves', async () => {
    const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' }, { notBefore: at(0), validityDays: 1 });
    assert.ok(validateChain([leaf.certDer], ctx({ now: at(0), revocation: 'skip' })));
    assert.ok(validateChain([leaf.certDer], ctx({ now: at(DAY), revocation: 'skip' })), 'notAfter itself is still valid');
    refuses('cert-expired', () => validateChain([leaf.certDer], ctx({ now: at(DAY + 1000), revocation: 'skip' })));
    refuses('not-yet-valid', () => validateChain([leaf.certDer], ctx({ now: at(-1000), revocation: 'skip' })));
  });

  test('a leaf from another CA with the same name is refused (chain-invalid), and so is one from an unknown CA', async () => {
    const twin = await makeCa('Operator CA');
    const leaf = await issue(twin, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    refuses('chain-invalid', () => validateChain([leaf.certDer], ctx()));
    const stranger = await makeCa('Stranger CA', 'ed25519');
    const leaf2 = await issue(stranger, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    refuses('chain-invalid', () => validateChain([leaf2.certDer], ctx()));
  });

  test('an expired trust anchor vouches for nothing', async () => {
    const short = await makeCa('Short CA', 'ecdsa-p256', at(-DAY), 2);
    const p = trustPolicyFromCaPem(short.certPem);
    const leaf = await issue(short, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    assert.ok(validateChain([leaf.certDer], { policy: p, revocation: 'skip', now: at(0) }));
    // signCsr caps the leaf at the CA's notAfter, so both expire; the anchor is checked first.
    refuses('cert-expired', () => validateChain([leaf.certDer], { policy: p, revocation: 'skip', now: at(2 * DAY) }));
  });

  test('anchor not allowed for the role; pins accepted and refused; expectedRole', async () => {
    const psp = await makeCa('PSP CA', 'ed25519');
    const pspLeaf = await issue(psp, { role: 'psp', id: 'psp-1', operator: 'PayCo' });
    const chargerFromPsp = await issue(psp, { role: 'charger', id: 'CP-9', operator: 'PayCo' });
    const opLeaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    const pspFromOperator = await issue(ca, { role: 'psp', id: 'fake-psp', operator: 'ChargeCo' });
    const scoped: TrustPolicy = {
      anchors: [
        { name: 'ops', certDer: ca.certDer, roles: ['charger', 'service-tool'] },
        { name: 'psp', certDer: psp.certDer, roles: ['psp'], pins: [certFingerprint(pspLeaf.certDer)] },
      ],
    };
    const c = { policy: scoped, revocation: 'skip' as const, now: at(0) };
    assert.equal(validateChain([opLeaf.certDer], c).anchor, 'ops');
    assert.equal(validateChain([pspLeaf.certDer], c).anchor, 'psp');
    // the operator's CA cannot certify a PSP: the backend stays blind
    refuses('anchor-not-allowed', () => validateChain([pspFromOperator.certDer], c));
    refuses('anchor-not-allowed', () => validateChain([chargerFromPsp.certDer], c));
    // another PSP leaf from the right CA but not pinned
    const pspLeaf2 = await issue(psp, { role: 'psp', id: 'psp-2', operator: 'PayCo' });
    refuses('pin-mismatch', () => validateChain([pspLeaf2.certDer], c));
    // expected role
    refuses('role-mismatch', () => validateChain([opLeaf.certDer], { ...c, expectedRole: 'psp' }));
    assert.ok(validateChain([opLeaf.certDer], { ...c, expectedRole: 'charger' }));
    // the same CA listed twice: the first anchor that accepts role and pin is used
    const twice: TrustPolicy = {
      anchors: [
        { name: 'psp-pinned', certDer: psp.certDer, roles: ['psp'], pins: [certFingerprint(pspLeaf.certDer)] },
        { name: 'psp-chargers', certDer: psp.certDer, roles: ['charger'] },
      ],
    };
    assert.equal(validateChain([chargerFromPsp.certDer], { ...c, policy: twice }).anchor, 'psp-chargers');
    assert.equal(validateChain([pspLeaf.certDer], { ...c, policy: twice }).anchor, 'psp-pinned');
    refuses('pin-mismatch', () => validateChain([pspLeaf2.certDer], { ...c, policy: twice }));
    // an empty pin list admits nothing
    refuses('pin-mismatch', () => validateChain([opLeaf.certDer], { ...c, policy: { anchors: [{ name: 'x', certDer: ca.certDer, roles: '*', pins: [] }] } }));
  });

  test('an anchor that is not a CA certificate cannot vouch, even with the right name and key', async () => {
    const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
    // same subject and same key as the CA, but basicConstraints cA FALSE and no keyCertSign
    const notCa = await rawCert(ca, {
      subject: encodeCaName('Operator CA'),
      publicKey: new X509Certificate(ca.certDer).publicKey,
      extensions: (x) => [new x.BasicConstraintsExtension(false, undefined, true), new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true)],
    });
    const p: TrustPolicy = { anchors: [{ name: 'not-a-ca', certDer: notCa, roles: '*' }] };
    refuses('chain-invalid', () => validateChain([leaf.certDer], { policy: p, revocation: 'skip', now: at(0) }));
    // control: the real CA certificate under the same name works
    assert.ok(validateChain([leaf.certDer], { policy: { anchors: [{ name: 'not-a-ca', certDer: ca.certDer, roles: '*' }] }, revocation: 'skip', now: at(0) }));
  });

  test('revocation: missing CRL, stale CRL, revoked serial', async () => {
    const leaf = await issue(ca, { role: 'charger', id: 'CP-7', operator: 'ChargeCo' });
    refuses('crl-missing', () => validateChain([leaf.certDer], ctx({ revocation: new RevocationState() })));
    assert.ok(validateChain([leaf.certDer], ctx({ revocation: 'skip' })));
    // CRL 1 (T0 .. T0+7d) is fresh until nextUpdate inclusive, stale after
    assert.ok(validateChain([leaf.certDer], ctx({ now: at(7 * DAY) })));
    refuses('crl-stale', () => validateChain([leaf.certDer], ctx({ now: at(7 * DAY + 1000) })));
    const r = revocationWith(policy, await crl(ca, 5n, [leaf.serialHex]));
    refuses('cert-revoked', () => validateChain([leaf.certDer], ctx({ revocation: r })));
  });
});

test('cache: a revoked serial is refused after a cached success once the newer CRL is added', async () => {
  clearValidationCache();
  const ca = await makeCa('Cache CA');
  const policy = trustPolicyFromCaPem(ca.certPem);
  const rev = revocationWith(policy, await crl(ca, 1n));
  const leaf = await issue(ca, { role: 'service-tool', id: 'tool-1', operator: 'ChargeCo' });
  const c = { policy, revocation: rev, now: at(0) };
  validateChain([leaf.certDer], c);
  validateChain([leaf.certDer], c);
  const s = validationCacheStats();
  assert.equal(s.sigChecks, 1, 'second call hits the signature cache');
  assert.equal(s.sigHits, 1);
  assert.equal(s.leafHits, 1);
  // time checks stay per call, even on a cache hit
  refuses('cert-expired', () => validateChain([leaf.certDer], { ...c, now: at(400 * DAY), revocation: 'skip' }));
  rev.addCrl(await crl(ca, 2n, [leaf.serialHex]), policy);
  refuses('cert-revoked', () => validateChain([leaf.certDer], c));
  // and a role check still runs on a cached chain
  refuses('role-mismatch', () => validateChain([leaf.certDer], { ...c, revocation: 'skip', expectedRole: 'charger' }));
});

test('a prepared chain keeps its copy of the bytes and still runs every time, revocation and role check', async () => {
  clearValidationCache();
  const ca = await makeCa('Prepared CA');
  const policy = trustPolicyFromCaPem(ca.certPem);
  const rev = revocationWith(policy, await crl(ca, 1n));
  const leaf = await issue(ca, { role: 'service-tool', id: 'tool-2', operator: 'ChargeCo' });
  const der = new Uint8Array(leaf.certDer);
  const prepared = new PreparedChain([der]);
  der.fill(0); // the caller's buffer changing afterwards changes nothing
  const c = { policy, revocation: rev, now: at(0) };
  assert.equal(validateChain(prepared, c).id, 'tool-2');
  assert.equal(validateChain(prepared, c).id, 'tool-2');
  assert.equal(validationCacheStats().sigChecks, 1);
  refuses('cert-expired', () => validateChain(prepared, { ...c, now: at(400 * DAY), revocation: 'skip' }));
  refuses('crl-stale', () => validateChain(prepared, { ...c, now: at(8 * DAY) }));
  refuses('role-mismatch', () => validateChain(prepared, { ...c, expectedRole: 'charger' }));
  rev.addCrl(await crl(ca, 2n, [leaf.serialHex]), policy);
  refuses('cert-revoked', () => validateChain(prepared, c));
  // a new CRL number means a fresh signature check, as for unprepared chains
  // (three in all: under CRL 1, with revocation skipped, under CRL 2)
  assert.equal(validationCacheStats().sigChecks, 3);
  const other = trustPolicyFromCaPem((await makeCa('Other CA')).certPem);
  refuses('chain-invalid', () => validateChain(prepared, { ...c, policy: other }));
  // shape is checked when preparing
  refuses('malformed', () => new PreparedChain([]));
  refuses('chain-invalid', () => new PreparedChain([leaf.certDer, leaf.certDer, leaf.certDer]));
});

test('a prepared chain that sends its anchor: the remembered issuer counts only under a policy holding that anchor', async () => {
  clearValidationCache();
  const ca = await makeCa('Sent CA');
  const other = await makeCa('Other Sent CA');
  const leaf = await issue(ca, { role: 'charger', id: 'CP-9', operator: 'ChargeCo' });
  const prepared = new PreparedChain([leaf.certDer, ca.certDer]);
  const c = { policy: trustPolicyFromCaPem(ca.certPem), revocation: 'skip' as const, now: at(0) };
  assert.equal(validateChain(prepared, c).id, 'CP-9');
  assert.equal(validateChain(prepared, c).id, 'CP-9');
  assert.equal(validationCacheStats().sigChecks, 1);
  refuses('chain-invalid', () => validateChain(prepared, { ...c, policy: trustPolicyFromCaPem(other.certPem) }));
  const both: TrustPolicy = { anchors: [...trustPolicyFromCaPem(other.certPem).anchors, ...c.policy.anchors] };
  assert.equal(validateChain(prepared, { ...c, policy: both }).anchor, c.policy.anchors[0]!.name);
  // an anchor certificate changed in place is a different anchor: no remembered result applies
  const anchorDer = c.policy.anchors[0]!.certDer;
  const saved = new Uint8Array(anchorDer);
  anchorDer[anchorDer.length - 1]! ^= 1;
  refuses('chain-invalid', () => validateChain(prepared, c));
  anchorDer.set(saved);
  assert.equal(validateChain(prepared, c).id, 'CP-9');
});

test('cache: a policy reusing an anchor name for another certificate does not inherit cached results', async () => {
  clearValidationCache();
  const a = await makeCa('Same Name');
  const b = await makeCa('Same Name');
  const leafA = await issue(a, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
  const pa: TrustPolicy = { anchors: [{ name: 'n', certDer: a.certDer, roles: '*' }] };
  const pb: TrustPolicy = { anchors: [{ name: 'n', certDer: b.certDer, roles: '*' }] };
  assert.ok(validateChain([leafA.certDer], { policy: pa, revocation: 'skip', now: at(0) }));
  refuses('chain-invalid', () => validateChain([leafA.certDer], { policy: pb, revocation: 'skip', now: at(0) }));
});

test('cache stays bounded', async () => {
  clearValidationCache();
  const { CACHE_LIMIT } = await import('../../src/core/x509/index.js');
  const ca = await makeCa('Bound CA');
  const policy = trustPolicyFromCaPem(ca.certPem);
  const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
  // distinct chains by appending the anchor (2-element chains hash differently), plus junk that fails early
  for (let i = 0; i < CACHE_LIMIT + 50; i++) {
    const junk = new Uint8Array([0x30, 0x03, 0x02, 0x01, i & 0x7f]);
    try {
      validateChain([junk], { policy, revocation: 'skip', now: at(0) });
    } catch {
      /* malformed: not cached */
    }
  }
  validateChain([leaf.certDer], { policy, revocation: 'skip', now: at(0) });
  const s = validationCacheStats();
  assert.ok(s.leafEntries <= CACHE_LIMIT && s.sigEntries <= CACHE_LIMIT);
  assert.equal(s.leafEntries, 1, 'failures are not cached');
});

test('TrustedClock: a wall clock set back cannot revive an expired certificate', async () => {
  const ca = await makeCa('Clock CA');
  const policy = trustPolicyFromCaPem(ca.certPem);
  const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' }, { notBefore: at(0), validityDays: 1 });
  let wall = at(3 * DAY).getTime();
  const clock = new TrustedClock(0, () => wall);
  // a fresh CRL issued at T0+3d raises the mark
  const rev = new RevocationState();
  clock.observe(rev.addCrl(await crl(ca, 1n, [], at(3 * DAY)), policy).thisUpdate);
  refuses('cert-expired', () => validateChain([leaf.certDer], { policy, revocation: rev, now: clock.now() }));
  wall = at(12 * 3600_000).getTime(); // the CSMS sets the charger's clock back into the cert's validity
  assert.equal(clock.now().getTime(), at(3 * DAY).getTime());
  refuses('cert-expired', () => validateChain([leaf.certDer], { policy, revocation: rev, now: clock.now() }));
  // the persisted mark survives a restart
  const restarted = new TrustedClock(clock.mark, () => wall);
  refuses('cert-expired', () => validateChain([leaf.certDer], { policy, revocation: rev, now: restarted.now() }));
});

test('ValidatedIdentity buffers are copies', async () => {
  const ca = await makeCa('Copy CA');
  const policy = trustPolicyFromCaPem(ca.certPem);
  const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
  const v1 = validateChain([leaf.certDer], { policy, revocation: 'skip', now: at(0) });
  v1.certDer.fill(0);
  v1.certHash.fill(0);
  const v2 = validateChain([leaf.certDer], { policy, revocation: 'skip', now: at(0) });
  assert.deepEqual(v2.certDer, leaf.certDer);
  assert.notDeepEqual(v2.certHash, new Uint8Array(32));
  assert.equal(derToPem(v2.certDer, 'CERTIFICATE'), leaf.certPem);
  assert.equal(T0.toISOString(), '2026-06-01T00:00:00.000Z');
});

test('fuzz: every single-byte change to a leaf or a CRL is refused with a VerificationFailure (property)', async () => {
  const fc = (await import('fast-check')).default;
  const { pemToDer } = await import('../../src/core/x509/index.js');
  for (const alg of ['ecdsa-p256', 'ed25519'] as const) {
    const ca = await makeCa(`Fuzz ${alg}`, alg);
    const policy = trustPolicyFromCaPem(ca.certPem);
    const leaf = await issue(ca, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' }, { alg });
    const crlDer = pemToDer(await crl(ca, 1n, [leaf.serialHex]), 'X509 CRL');
    fc.assert(
      fc.property(fc.nat({ max: leaf.certDer.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = new Uint8Array(leaf.certDer);
        m[i] = m[i]! ^ x;
        assert.throws(() => validateChain([m], { policy, revocation: 'skip', now: at(0) }), (e: unknown) => e instanceof VerificationFailure);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat({ max: crlDer.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = new Uint8Array(crlDer);
        m[i] = m[i]! ^ x;
        assert.throws(() => new RevocationState().addCrl(derToPem(m, 'X509 CRL'), policy), (e: unknown) => e instanceof VerificationFailure);
      }),
      { numRuns: 300 },
    );
    // truncations too
    for (let n = 0; n < leaf.certDer.length; n += 7) {
      assert.throws(() => validateChain([leaf.certDer.subarray(0, n)], { policy, revocation: 'skip', now: at(0) }), (e: unknown) => e instanceof VerificationFailure);
    }
  }
});
