import { test, describe } from 'node:test';
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { EvsealError } from '../../src/core/errors.js';
import type { IdentityInfo } from '../../src/core/roles.js';
import {
  canonicalSerialHex,
  certFingerprint,
  createCrl,
  createCsr,
  createRootCa,
  derToPem,
  generateSigningKey,
  parseCsr,
  pemToDer,
  signCsr,
} from '../../src/core/x509/index.js';
import { KU, caProfile, leafProfile, parseCertDer } from '../../src/core/x509/cert.js';
import { parseCrlDer } from '../../src/core/x509/crl.js';
import { TAG, children, parseDer, seq, whole } from '../../src/core/x509/der.js';
import { OID_CN, OID_O, OID_OU } from '../../src/core/x509/names.js';
import { DAY, at, makeCa } from './_fixtures.js';

const hasCode = (code: string) => (e: unknown) => e instanceof EvsealError && e.code === code;

for (const alg of ['ecdsa-p256', 'ed25519'] as const) {
  describe(`${alg} root CA`, () => {
    test('root certificate follows the CA profile byte for byte', async () => {
      const { certPem, privateKeyPem } = await createRootCa({ name: 'Acme Root', alg, notBefore: new Date('2026-06-01T00:00:00.789Z') });
      assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      const p = parseCertDer(pemToDer(certPem, 'CERTIFICATE'));
      const ca = caProfile(p);
      assert.ok(typeof ca !== 'string', String(ca));
      assert.equal(p.version, 3);
      assert.equal(p.serialLength, 16);
      assert.match(p.serialHex, /^[4-7][0-9a-f]{31}$/);
      assert.equal(p.notBefore.toISOString(), '2026-06-01T00:00:00.000Z', 'truncated to whole seconds');
      assert.equal(p.notAfter.getTime() - p.notBefore.getTime(), 3650 * DAY);
      assert.deepEqual(p.subject, p.issuer, 'self-issued');
      assert.deepEqual(p.subjectAttrs, [{ oid: OID_CN, tag: TAG.UTF8_STRING, value: 'Acme Root' }]);
      assert.equal(p.sigAlg, alg);
      assert.equal(p.keyAlg, alg);
      const exts = Object.fromEntries(p.extensions.map((e) => [e.oid, e.critical]));
      assert.deepEqual(exts, { '2.5.29.19': true, '2.5.29.15': true, '2.5.29.14': false });
      assert.deepEqual(p.basicConstraints, { ca: true, pathLen: 0 });
      assert.equal(p.keyUsage, KU.keyCertSign | KU.cRLSign);
      assert.equal(p.ski?.length, 20);
      const x = new X509Certificate(pemToDer(certPem, 'CERTIFICATE'));
      assert.ok(x.verify(x.publicKey), 'self-signature verifies with node:crypto');
      assert.ok(x.ca);
    });

    test('CSR -> sign keeps role/id/operator and applies the leaf profile', async () => {
      const ca = await makeCa('Issuing', alg);
      const keys = generateSigningKey(alg);
      const info = { role: 'firmware-publisher' as const, id: 'oem.fw:1', operator: 'Ладно Моторс' };
      const csrPem = await createCsr({ ...info, ...keys });
      const parsed = await parseCsr(csrPem);
      assert.deepEqual(parsed.info, info);
      assert.equal(parsed.alg, alg);
      assert.ok(parsed.publicKey.equals(keys.publicKey));
      const { certPem, serialHex } = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(0), validityDays: 30 });
      const leaf = leafProfile(parseCertDer(pemToDer(certPem, 'CERTIFICATE')));
      assert.deepEqual(leaf.info, info);
      assert.equal(leaf.serialHex, serialHex);
      assert.equal(leaf.notAfter.getTime() - leaf.notBefore.getTime(), 30 * DAY);
      // subject: O, OU, CN in that order, all UTF8String
      assert.deepEqual(
        leaf.subjectAttrs.map((a) => [a.oid, a.tag, a.value]),
        [
          [OID_O, TAG.UTF8_STRING, info.operator],
          [OID_OU, TAG.UTF8_STRING, info.role],
          [OID_CN, TAG.UTF8_STRING, info.id],
        ],
      );
      const caP = parseCertDer(ca.certDer);
      assert.deepEqual(leaf.issuer, caP.subject);
      assert.deepEqual(leaf.aki, caP.ski, 'authorityKeyIdentifier = CA subjectKeyIdentifier');
      assert.equal(leaf.ski?.length, 20);
      const exts = leaf.extensions.map((e) => [e.oid, e.critical]);
      assert.deepEqual(exts, [['2.5.29.19', true], ['2.5.29.15', true], ['2.5.29.14', false], ['2.5.29.35', false]]);
      assert.deepEqual(leaf.basicConstraints, { ca: false });
      assert.equal(leaf.keyUsage, KU.digitalSignature);
      assert.ok(new X509Certificate(leaf.der).verify(new X509Certificate(ca.certDer).publicKey));
    });
  });
}

test('a tampered CSR is refused', async () => {
  const keys = generateSigningKey('ecdsa-p256');
  const csrPem = await createCsr({ role: 'charger', id: 'CP-1', operator: 'ChargeCo', ...keys });
  const der = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  const i = Buffer.from(der).indexOf(Buffer.from('CP-1'));
  const tampered = new Uint8Array(der);
  tampered[i + 3] = '2'.charCodeAt(0);
  await assert.rejects(parseCsr(derToPem(tampered, 'CERTIFICATE REQUEST')), (e: unknown) => hasCode('ERR_INVALID_INPUT')(e) && /self-signature/.test((e as Error).message));
  // the role is checked too (after the signature), and so is the key type
  const ca = await makeCa('CA');
  await assert.rejects(signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem: derToPem(tampered, 'CERTIFICATE REQUEST'), notBefore: at(0) }), hasCode('ERR_INVALID_INPUT'));
  // a CSR signed by another key: swap the signature
  const other = await createCsr({ role: 'charger', id: 'CP-1', operator: 'ChargeCo', ...generateSigningKey('ecdsa-p256') });
  const a = parseDer(der);
  const b = parseDer(pemToDer(other, 'CERTIFICATE REQUEST'));
  const spliced = seqOf(children(a)[0]!, children(a)[1]!, children(b)[2]!);
  await assert.rejects(parseCsr(derToPem(spliced, 'CERTIFICATE REQUEST')), hasCode('ERR_INVALID_INPUT'));
  // not a CSR at all
  await assert.rejects(parseCsr(derToPem(pemToDer(ca.certPem, 'CERTIFICATE'), 'CERTIFICATE REQUEST')), hasCode('ERR_INVALID_INPUT'));
  await assert.rejects(parseCsr(ca.certPem), hasCode('ERR_INVALID_INPUT'));
});

test('createCsr refuses bad identities and mismatched keys', async () => {
  const keys = generateSigningKey('ed25519');
  for (const bad of [
    { role: 'janitor', id: 'x', operator: 'o' },
    { role: 'charger', id: '', operator: 'o' },
    { role: 'charger', id: 'a b', operator: 'o' },
    { role: 'charger', id: 'x'.repeat(65), operator: 'o' },
    { role: 'charger', id: 'x', operator: 'line\nbreak' },
    { role: 'charger', id: 'x', operator: '' },
    { role: 'charger', id: 'x', operator: ' padded' },
  ]) {
    await assert.rejects(createCsr({ ...(bad as unknown as IdentityInfo), ...keys }), hasCode('ERR_INVALID_INPUT'), JSON.stringify(bad));
  }
  await assert.rejects(createCsr({ role: 'charger', id: 'x', operator: 'o', privateKey: keys.privateKey, publicKey: generateSigningKey('ed25519').publicKey }), hasCode('ERR_USAGE'));
});

test('renewal: keepIdentity must match the CSR', async () => {
  const ca = await makeCa('Renew CA');
  const info = { role: 'charger' as const, id: 'CP-1', operator: 'ChargeCo' };
  const csrPem = await createCsr({ ...info, ...generateSigningKey('ed25519') });
  const r = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(0), keepIdentity: info });
  assert.ok(r.certPem);
  await assert.rejects(
    signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(0), keepIdentity: { ...info, id: 'CP-2' } }),
    hasCode('ERR_INVALID_INPUT'),
  );
  await assert.rejects(
    signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(0), keepIdentity: { ...info, role: 'psp' } }),
    hasCode('ERR_INVALID_INPUT'),
  );
});

test('signCsr caps validity at the CA notAfter and refuses a wrong CA key', async () => {
  const ca = await makeCa('Short', 'ecdsa-p256', at(0), 10);
  const csrPem = await createCsr({ role: 'charger', id: 'CP-1', operator: 'ChargeCo', ...generateSigningKey('ed25519') });
  const r = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(DAY), validityDays: 365 });
  assert.equal(parseCertDer(pemToDer(r.certPem, 'CERTIFICATE')).notAfter.getTime(), at(10 * DAY).getTime());
  await assert.rejects(signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(11 * DAY) }), hasCode('ERR_USAGE'));
  const other = await makeCa('Other');
  await assert.rejects(signCsr({ caCertPem: ca.certPem, caKeyPem: other.keyPem, csrPem, notBefore: at(0) }), hasCode('ERR_USAGE'));
  await assert.rejects(signCsr({ caCertPem: ca.certPem, caKeyPem: 'junk', csrPem, notBefore: at(0) }), hasCode('ERR_INVALID_INPUT'));
});

test('createRootCa refuses bad names and options', async () => {
  await assert.rejects(createRootCa({ name: '', notBefore: at(0) }), hasCode('ERR_INVALID_INPUT'));
  await assert.rejects(createRootCa({ name: 'a\u0000b', notBefore: at(0) }), hasCode('ERR_INVALID_INPUT'));
  await assert.rejects(createRootCa({ name: 'ok', notBefore: new Date(NaN) }), hasCode('ERR_USAGE'));
  await assert.rejects(createRootCa({ name: 'ok', notBefore: at(0), validityDays: 0 }), hasCode('ERR_USAGE'));
  await assert.rejects(createRootCa({ name: 'ok', alg: 'rsa' as never, notBefore: at(0) }), hasCode('ERR_USAGE'));
});

test('serial numbers: 16 octets, positive, unique', async () => {
  const ca = await makeCa('Serial CA');
  const seen = new Set<string>();
  for (let i = 0; i < 8; i++) {
    const csrPem = await createCsr({ role: 'charger', id: `CP-${i}`, operator: 'ChargeCo', ...generateSigningKey('ed25519') });
    const { serialHex } = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: at(0) });
    assert.match(serialHex, /^[4-7][0-9a-f]{31}$/);
    assert.equal(canonicalSerialHex(serialHex), serialHex);
    seen.add(serialHex);
  }
  assert.equal(seen.size, 8);
  assert.equal(canonicalSerialHex('00ff'), '00ff');
  assert.equal(canonicalSerialHex('FF'), '00ff');
  assert.equal(canonicalSerialHex('0001'), '01');
  assert.throws(() => canonicalSerialHex('00'));
  assert.throws(() => canonicalSerialHex('xyz'));
});

describe('CRL issuance', () => {
  for (const alg of ['ecdsa-p256', 'ed25519'] as const) {
    test(`${alg}: CRL profile (v2, AKI, cRLNumber, no empty entry extensions) and signature`, async () => {
      const ca = await makeCa('CRL CA', alg);
      const pem = await createCrl({
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        crlNumber: 2n ** 100n,
        thisUpdate: at(0),
        nextUpdate: at(7 * DAY),
        revoked: [
          { serialHex: '4a'.repeat(16), date: at(-5) },
          { serialHex: 'FF', date: at(-DAY) },
        ],
      });
      const c = parseCrlDer(pemToDer(pem, 'X509 CRL'));
      assert.equal(c.crlNumber, 2n ** 100n);
      assert.equal(c.thisUpdate.getTime(), at(0).getTime());
      assert.equal(c.nextUpdate.getTime(), at(7 * DAY).getTime());
      assert.deepEqual([...c.revoked.keys()], ['4a'.repeat(16), '00ff']);
      assert.deepEqual(c.aki, parseCertDer(ca.certDer).ski);
      assert.deepEqual(c.issuer, parseCertDer(ca.certDer).subject);
      // every entry is SEQUENCE { INTEGER, Time } with no third element
      const der = Buffer.from(pemToDer(pem, 'X509 CRL'));
      assert.equal(der.indexOf(Buffer.from([0x5a, 0x30, 0x00])), -1);
      // an empty CRL omits revokedCertificates
      const empty = parseCrlDer(pemToDer(await createCrl({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, crlNumber: 1n, thisUpdate: at(0), nextUpdate: at(DAY), revoked: [] }), 'X509 CRL'));
      assert.equal(empty.revoked.size, 0);
    });
  }

  test('bad CRL parameters are refused', async () => {
    const ca = await makeCa('CRL CA');
    const base = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, crlNumber: 1n, thisUpdate: at(0), nextUpdate: at(DAY), revoked: [] };
    await assert.rejects(createCrl({ ...base, crlNumber: -1n }), hasCode('ERR_USAGE'));
    await assert.rejects(createCrl({ ...base, crlNumber: 2n ** 159n }), hasCode('ERR_USAGE'));
    await assert.rejects(createCrl({ ...base, nextUpdate: at(0) }), hasCode('ERR_USAGE'));
    await assert.rejects(createCrl({ ...base, revoked: [{ serialHex: 'zz', date: at(0) }] }), hasCode('ERR_INVALID_INPUT'));
    await assert.rejects(createCrl({ ...base, revoked: [{ serialHex: '0a', date: at(0) }, { serialHex: '000a', date: at(0) }] }), hasCode('ERR_INVALID_INPUT'));
  });
});

describe('PEM', () => {
  test('strict decoding', async () => {
    const ca = await makeCa('PEM CA');
    const pem = ca.certPem;
    assert.deepEqual(pemToDer(pem, 'CERTIFICATE'), ca.certDer);
    assert.deepEqual(pemToDer(`\n  ${pem.replace(/\n/g, '\r\n')}\n\n`, 'CERTIFICATE'), ca.certDer, 'CRLF and surrounding whitespace');
    assert.equal(derToPem(ca.certDer, 'CERTIFICATE'), pem);
    const bad = [
      pem.replace('CERTIFICATE-----\n', 'CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n'),
      'junk\n' + pem,
      pem + 'trailing',
      pem + pem,
      pem.replace(/\n(?=[^-])/, '\n '),
      pem.split('\n').slice(1, -2).join('').replace(/^/, '-----BEGIN CERTIFICATE-----\n') + '\n-----END CERTIFICATE-----\n', // one long line
      pem.replace('-----BEGIN CERTIFICATE-----', '-----BEGIN X509 CRL-----'),
      pem.replace(/[A-Za-z0-9+/]={0,2}\n-----END/, '!\n-----END'), // the last base64 character, whatever it is
    ];
    for (const b of bad) assert.throws(() => pemToDer(b, 'CERTIFICATE'), hasCode('ERR_INVALID_INPUT'), JSON.stringify(b.slice(0, 80)));
    assert.throws(() => pemToDer(pem, 'X509 CRL'), hasCode('ERR_INVALID_INPUT'));
    // content must be exactly one DER SEQUENCE
    assert.throws(() => pemToDer(derToPem(new Uint8Array([0x30, 0x00, 0x00]), 'CERTIFICATE'), 'CERTIFICATE'), hasCode('ERR_INVALID_INPUT'));
    assert.throws(() => pemToDer(derToPem(new Uint8Array([0x04, 0x00]), 'CERTIFICATE'), 'CERTIFICATE'), hasCode('ERR_INVALID_INPUT'));
    assert.throws(() => pemToDer(derToPem(new Uint8Array([0x30, 0x81, 0x01, 0x00]), 'CERTIFICATE'), 'CERTIFICATE'), hasCode('ERR_INVALID_INPUT'), 'non-minimal length');
  });

  test('derToPem / pemToDer round trip (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (body) => {
        const len = body.length < 128 ? [body.length] : body.length < 256 ? [0x81, body.length] : [0x82, body.length >> 8, body.length & 0xff];
        const der = new Uint8Array([0x30, ...len, ...body]);
        const pem = derToPem(der, 'X509 CRL');
        assert.deepEqual(pemToDer(pem, 'X509 CRL'), der);
        assert.ok(pem.split('\n').every((l) => l.length <= 64 || l.startsWith('-----')));
      }),
      { numRuns: 200 },
    );
  });

  test('fingerprint format', async () => {
    const ca = await makeCa('FP CA');
    assert.match(certFingerprint(ca.certDer), /^sha256:[0-9a-f]{64}$/);
    assert.equal(certFingerprint(ca.certDer), 'sha256:' + new X509Certificate(ca.certDer).fingerprint256.replace(/:/g, '').toLowerCase());
  });
});

function seqOf(...parts: ReturnType<typeof parseDer>[]): Uint8Array {
  return seq(...parts.map((p) => whole(p)));
}
