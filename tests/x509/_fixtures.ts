// Shared fixtures for tests/x509 (not a test file itself).
import type { KeyObject } from 'node:crypto';
import { createRootCa, createCrl, createCsr, generateSigningKey, signCsr, pemToDer, type SigAlg } from '../../src/core/x509/index.js';
import { loadPrivateKeyPem } from '../../src/core/x509/ca.js';
import { loadX509, toCryptoKey, webAlgs, x509Crypto } from '../../src/core/x509/provider.js';
import { encodeIdentityName } from '../../src/core/x509/names.js';
import { parseCertDer } from '../../src/core/x509/cert.js';
import type { IdentityInfo } from '../../src/core/roles.js';

export const T0 = new Date('2026-06-01T00:00:00Z');
export const DAY = 86_400_000;
export const at = (ms: number): Date => new Date(T0.getTime() + ms);

export interface Ca {
  name: string;
  alg: SigAlg;
  certPem: string;
  keyPem: string;
  certDer: Uint8Array;
}

export async function makeCa(name: string, alg: SigAlg = 'ecdsa-p256', notBefore = at(-DAY), validityDays?: number): Promise<Ca> {
  const r = await createRootCa({ name, alg, notBefore, ...(validityDays ? { validityDays } : {}) });
  return { name, alg, certPem: r.certPem, keyPem: r.privateKeyPem, certDer: pemToDer(r.certPem, 'CERTIFICATE') };
}

export interface Leaf {
  certPem: string;
  certDer: Uint8Array;
  serialHex: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export async function issue(
  ca: Ca,
  info: IdentityInfo,
  o: { alg?: SigAlg; notBefore?: Date; validityDays?: number } = {},
): Promise<Leaf> {
  const keys = generateSigningKey(o.alg ?? 'ed25519');
  const csrPem = await createCsr({ ...info, ...keys });
  const r = await signCsr({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem, notBefore: o.notBefore ?? at(-60_000), ...(o.validityDays ? { validityDays: o.validityDays } : {}) });
  return { certPem: r.certPem, certDer: pemToDer(r.certPem, 'CERTIFICATE'), serialHex: r.serialHex, ...keys };
}

export async function crl(ca: Ca, n: bigint, revoked: string[] = [], thisUpdate = at(0), days = 7): Promise<string> {
  return createCrl({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    crlNumber: n,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + days * DAY),
    revoked: revoked.map((serialHex) => ({ serialHex, date: thisUpdate })),
  });
}

/**
 * A certificate made directly with @peculiar/x509 (bypassing evseal's
 * issuance checks) so tests can produce profile violations. `extensions`
 * receives the library module and returns the extension list.
 */
export async function rawCert(
  ca: Ca,
  o: {
    subject?: Uint8Array | string;
    info?: IdentityInfo;
    notBefore?: Date;
    notAfter?: Date;
    extensions: (x: typeof import('@peculiar/x509')) => import('@peculiar/x509').Extension[];
    publicKey?: KeyObject;
  },
): Promise<Uint8Array> {
  const x = await loadX509();
  const { key, alg } = loadPrivateKeyPem(ca.keyPem);
  const caParsed = parseCertDer(ca.certDer);
  const pub = o.publicKey ?? generateSigningKey('ed25519').publicKey;
  const subject =
    typeof o.subject === 'string'
      ? new x.Name(o.subject)
      : new x.Name(new Uint8Array(o.subject ?? encodeIdentityName(o.info ?? { role: 'charger', id: 'CP-raw', operator: 'ChargeCo' })));
  const cert = await x.X509CertificateGenerator.create(
    {
      serialNumber: '5a' + '01'.repeat(15),
      subject,
      issuer: new x.Name(new Uint8Array(caParsed.subject)),
      notBefore: o.notBefore ?? at(-60_000),
      notAfter: o.notAfter ?? at(365 * DAY),
      publicKey: new Uint8Array(pub.export({ type: 'spki', format: 'der' })),
      signingKey: await toCryptoKey(key),
      signingAlgorithm: webAlgs(alg).signAlg,
      extensions: o.extensions(x),
    },
    x509Crypto(),
  );
  return new Uint8Array(cert.rawData);
}
