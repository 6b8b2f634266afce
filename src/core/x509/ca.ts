import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { EvsealError, VerificationFailure } from '../errors.js';
import { isValidOperator, sameIdentity, validateIdentityInfo, type IdentityInfo } from '../roles.js';
import { algIdFor, generateSigningKey, keyAlgOf, sameKey, sha256, signData, sigAlgOfAlgId, spkiDer, verifyData, type SigAlg } from './algorithms.js';
import { OID_AKI, OID_BASIC_CONSTRAINTS, OID_CRL_NUMBER, OID_KEY_USAGE, OID_SKI, KU, caProfile, canonicalSerialHex, leafProfile, parseCertDer, type ParsedCa } from './cert.js';
import { MAX_CRL_NUMBER, parseCrlDer } from './crl.js';
import {
  DerError,
  TAG,
  children,
  ctxCons,
  encBitString,
  encInteger,
  encOctetString,
  encOid,
  encTime,
  expectTag,
  parseDer,
  readBitString,
  readInteger,
  seq,
  tlv,
  whole,
  type Tlv,
} from './der.js';
import { encodeCaName, encodeIdentityName, identityFromName, readName } from './names.js';
import { derToPem, pemToDer } from './pem.js';
import { loadX509, toCryptoKey, webAlgs, x509Crypto } from './provider.js';

/*
 * Issuance side of the profile (docs/protocol.md Appendix A). Certificates and CSRs
 * are produced with @peculiar/x509 from DER pieces built here (names and
 * extension values), so every byte of the profile is decided in this file;
 * each result is then re-parsed with the strict reader and checked against
 * the profile before it is returned. CRLs are encoded here directly (see
 * createCrl for why).
 */

const DAY_MS = 86_400_000;

/** A fresh ArrayBuffer-backed copy (what @peculiar/x509's BufferSource parameters are typed as). */
const ab = (u: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(u);

/** Whole seconds: X.509 times carry no fractions, so dates are truncated once, up front. */
function toSeconds(d: Date, what: string): Date {
  if (!(d instanceof Date) || !Number.isFinite(d.getTime())) throw new EvsealError('ERR_USAGE', `${what}: not a valid date`);
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function days(n: number | undefined, dflt: number, what: string): number {
  const v = n ?? dflt;
  if (!Number.isFinite(v) || v <= 0 || v > 36_600) throw new EvsealError('ERR_USAGE', `${what}: must be a positive number of days (at most 36600)`);
  return v;
}

/**
 * Serial numbers: 16 random bytes with the top two bits forced to 01, so the
 * DER INTEGER is always exactly 16 content octets, positive, with no leading
 * zero octet, and carries 126 random bits (RFC 5280 §4.1.2.2 asks for at
 * most 20 octets; CA/B Forum asks for at least 64 random bits).
 */
export function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x3f) | 0x40;
  return b.toString('hex');
}

/** subjectPublicKey BIT STRING contents of an SPKI. */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const f = children(expectTag(parseDer(spki), TAG.SEQUENCE, 'SubjectPublicKeyInfo'));
  return readBitString(f[1] as Tlv, 'subjectPublicKey').bytes;
}

/**
 * subjectKeyIdentifier: RFC 7093 §2 method 1 -- the leftmost 160 bits of
 * SHA-256 over the subjectPublicKey BIT STRING value (excluding tag, length
 * and unused-bits octet). 20 bytes, like RFC 5280's SHA-1 method, without SHA-1.
 */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  return sha256(subjectPublicKeyBits(spki)).subarray(0, 20);
}

// ---- extension values (DER of the value inside extnValue)

/** KeyUsage BIT STRING with trailing zero bits removed (DER, X.690 §11.2.2). */
export function encodeKeyUsage(bits: number): Uint8Array {
  let highest = -1;
  for (let n = 0; n < 9; n++) if (bits & (1 << n)) highest = n;
  if (highest < 0) throw new RangeError('keyUsage: no bits');
  const nbytes = (highest >> 3) + 1;
  const out = new Uint8Array(nbytes);
  for (let n = 0; n <= highest; n++) if (bits & (1 << n)) out[n >> 3]! |= 0x80 >> (n & 7);
  const unused = nbytes * 8 - (highest + 1);
  return tlv(TAG.BIT_STRING, Uint8Array.of(unused), out);
}

/** BasicConstraints: cA TRUE with pathLenConstraint 0 for a CA; the empty SEQUENCE (cA FALSE by default) for a leaf. */
const BC_CA_PATHLEN0 = seq(tlv(TAG.BOOLEAN, Uint8Array.of(0xff)), encInteger(0n));
const BC_LEAF = seq();

const akiValue = (keyId: Uint8Array): Uint8Array => seq(tlv(0x80, keyId));

function encExtension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(encOid(oid), tlv(TAG.BOOLEAN, Uint8Array.of(0xff)), encOctetString(value)) : seq(encOid(oid), encOctetString(value));
}

// ---- keys

/** A PKCS#8 PEM private key (unencrypted) of a profile algorithm. */
export function loadPrivateKeyPem(pem: string): { key: KeyObject; alg: SigAlg } {
  if (typeof pem !== 'string' || !/^\s*-----BEGIN PRIVATE KEY-----\r?\n/.test(pem)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'private key: expected an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY")');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new EvsealError('ERR_INVALID_INPUT', 'private key: not a valid PKCS#8 PEM', { cause: e });
  }
  const alg = keyAlgOf(key);
  if (!alg) throw new EvsealError('ERR_INVALID_INPUT', 'private key: not P-256 or Ed25519');
  return { key, alg };
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

interface CaMaterial {
  ca: ParsedCa;
  key: KeyObject;
  alg: SigAlg;
  keyId: Uint8Array;
}

function loadCa(caCertPem: string, caKeyPem: string): CaMaterial {
  const der = pemToDer(caCertPem, 'CERTIFICATE');
  let parsed;
  try {
    parsed = parseCertDer(der);
  } catch (e) {
    if (e instanceof DerError) throw new EvsealError('ERR_INVALID_INPUT', `CA certificate: ${e.message}`);
    throw e;
  }
  const ca = caProfile(parsed);
  if (typeof ca === 'string') throw new EvsealError('ERR_INVALID_INPUT', `CA certificate: ${ca}`);
  const { key, alg } = loadPrivateKeyPem(caKeyPem);
  if (!sameKey(key, ca.publicKey)) throw new EvsealError('ERR_USAGE', 'the CA private key does not match the CA certificate');
  return { ca, key, alg, keyId: ca.ski ?? keyIdentifier(ca.spki) };
}

// ---- root CA

export async function createRootCa(o: { name: string; alg?: SigAlg; notBefore: Date; validityDays?: number }): Promise<{ certPem: string; privateKeyPem: string }> {
  if (!isValidOperator(o.name)) throw new EvsealError('ERR_INVALID_INPUT', 'CA name must be 1..64 printable characters, no control characters, no leading/trailing space');
  const alg = o.alg ?? 'ecdsa-p256';
  if (alg !== 'ecdsa-p256' && alg !== 'ed25519') throw new EvsealError('ERR_USAGE', `unsupported algorithm ${String(alg)}`);
  const notBefore = toSeconds(o.notBefore, 'notBefore');
  const notAfter = new Date(Math.floor((notBefore.getTime() + days(o.validityDays, 3650, 'validityDays') * DAY_MS) / 1000) * 1000);
  const { privateKey, publicKey } = generateSigningKey(alg);
  const spki = spkiDer(publicKey);
  const name = encodeCaName(o.name);
  const x = await loadX509();
  const cert = await x.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: new x.Name(ab(name)),
      issuer: new x.Name(ab(name)),
      notBefore,
      notAfter,
      publicKey: ab(spki),
      signingKey: await toCryptoKey(privateKey),
      signingAlgorithm: webAlgs(alg).signAlg,
      extensions: [
        new x.Extension(OID_BASIC_CONSTRAINTS, true, ab(BC_CA_PATHLEN0)),
        new x.Extension(OID_KEY_USAGE, true, ab(encodeKeyUsage(KU.keyCertSign | KU.cRLSign))),
        new x.Extension(OID_SKI, false, ab(encOctetString(keyIdentifier(spki)))),
      ],
    },
    x509Crypto(),
  );
  const der = new Uint8Array(cert.rawData);
  // Self-check against the profile (and that the library kept our bytes).
  const p = parseCertDer(der);
  const ca = caProfile(p);
  if (typeof ca === 'string' || Buffer.compare(p.subject, name) !== 0 || Buffer.compare(p.issuer, name) !== 0 || !verifyData(alg, publicKey, p.tbs, p.signature)) {
    throw new EvsealError('ERR_CRYPTO', `generated CA certificate failed its profile self-check${typeof ca === 'string' ? `: ${ca}` : ''}`);
  }
  return { certPem: derToPem(der, 'CERTIFICATE'), privateKeyPem: privateKeyToPem(privateKey) };
}

// ---- CSR

export async function createCsr(o: IdentityInfo & { privateKey: KeyObject; publicKey: KeyObject }): Promise<string> {
  validateIdentityInfo(o);
  const alg = keyAlgOf(o.privateKey);
  if (!alg || o.privateKey.type !== 'private') throw new EvsealError('ERR_USAGE', 'createCsr: privateKey must be a P-256 or Ed25519 private key');
  if (!sameKey(o.privateKey, o.publicKey)) throw new EvsealError('ERR_USAGE', 'createCsr: publicKey does not belong to privateKey');
  const x = await loadX509();
  const csr = await x.Pkcs10CertificateRequestGenerator.create(
    {
      name: new x.Name(ab(encodeIdentityName(o))),
      signingAlgorithm: webAlgs(alg).signAlg,
      keys: { privateKey: await toCryptoKey(o.privateKey), publicKey: await toCryptoKey(createPublicKey(o.privateKey)) },
    },
    x509Crypto(),
  );
  const pem = derToPem(new Uint8Array(csr.rawData), 'CERTIFICATE REQUEST');
  const back = parseCsrSync(pem);
  if (!sameIdentity(back.info, o)) throw new EvsealError('ERR_CRYPTO', 'generated CSR failed its self-check');
  return pem;
}

/**
 * CertificationRequest (RFC 2986): SEQUENCE { certificationRequestInfo
 * SEQUENCE { version INTEGER 0, subject Name, subjectPKInfo, attributes [0] },
 * signatureAlgorithm, signature BIT STRING }.
 *
 * Accepted: version 0; subject exactly CN/OU/O (any order, UTF8String or
 * PrintableString, OU an evseal role); a P-256 or Ed25519 key; signature
 * ecdsa-with-SHA256 (P-256 key) or Ed25519 (Ed25519 key) over the
 * certificationRequestInfo bytes as received. Attributes (e.g. an
 * extensionRequest) are parsed as DER but otherwise ignored: the CA never
 * copies requested extensions, it applies the profile.
 */
export function parseCsrSync(pem: string): { info: IdentityInfo; publicKey: KeyObject; alg: SigAlg } {
  const der = pemToDer(pem, 'CERTIFICATE REQUEST');
  const bad = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `CSR: ${why}`);
  };
  try {
    const top = children(parseDer(der));
    if (top.length !== 3) bad('expected 3 fields');
    const [infoT, algT, sigT] = top as [Tlv, Tlv, Tlv];
    const f = children(expectTag(infoT, TAG.SEQUENCE, 'certificationRequestInfo'));
    if (readInteger(f[0] as Tlv, 'version') !== 0n) bad('version must be 0');
    const attrs = readName(expectTag(f[1], TAG.SEQUENCE, 'subject'), 'subject');
    const spki = new Uint8Array(whole(expectTag(f[2], TAG.SEQUENCE, 'subjectPKInfo')));
    if (f[3] && f[3].tag !== ctxCons(0)) bad('unexpected field after subjectPKInfo');
    if (f[3]) children(f[3]);
    if (f.length > 4) bad('unexpected trailing fields');
    const sigAlg = sigAlgOfAlgId(whole(expectTag(algT, TAG.SEQUENCE, 'signatureAlgorithm')));
    if (!sigAlg) bad('signature algorithm is not ecdsa-with-SHA256 or Ed25519');
    const sig = readBitString(sigT, 'signature');
    if (sig.unused !== 0) bad('signature has unused bits');
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    } catch {
      return bad('subjectPKInfo is not a usable public key');
    }
    const alg = keyAlgOf(publicKey);
    if (!alg) bad('key is not P-256 or Ed25519');
    if (alg !== sigAlg) bad('signature algorithm does not match the key');
    if (!verifyData(alg!, publicKey, whole(infoT), sig.bytes)) bad('self-signature does not verify');
    const info = identityFromName(attrs, true);
    if (typeof info === 'string') bad(info);
    return { info: info as IdentityInfo, publicKey, alg: alg! };
  } catch (e) {
    if (e instanceof DerError) bad(`not well-formed DER: ${e.message}`);
    throw e;
  }
}

export async function parseCsr(pem: string): Promise<{ info: IdentityInfo; publicKey: KeyObject; alg: SigAlg }> {
  return parseCsrSync(pem);
}

// ---- leaf issuance

/**
 * Certifies a CSR. The certificate carries the CSR's identity re-encoded as
 * UTF8String (O, OU, CN), the CSR's key, and only the profile extensions:
 * basicConstraints (critical, cA FALSE), keyUsage (critical,
 * digitalSignature), subjectKeyIdentifier, authorityKeyIdentifier
 * (keyIdentifier = the CA's subjectKeyIdentifier). notAfter is
 * notBefore + validityDays, capped at the CA's notAfter. `keepIdentity`
 * (renewal) requires the CSR to name exactly that identity.
 */
export async function signCsr(o: {
  caCertPem: string;
  caKeyPem: string;
  csrPem: string;
  notBefore: Date;
  validityDays?: number;
  keepIdentity?: IdentityInfo;
}): Promise<{ certPem: string; serialHex: string }> {
  const { ca, key, alg, keyId } = loadCa(o.caCertPem, o.caKeyPem);
  const csr = parseCsrSync(o.csrPem);
  if (o.keepIdentity && !sameIdentity(o.keepIdentity, csr.info)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'CSR identity (role, id, operator) differs from the identity being renewed');
  }
  const notBefore = toSeconds(o.notBefore, 'notBefore');
  const wanted = notBefore.getTime() + days(o.validityDays, 365, 'validityDays') * DAY_MS;
  const notAfter = new Date(Math.floor(Math.min(wanted, ca.notAfter.getTime()) / 1000) * 1000);
  if (notAfter.getTime() <= notBefore.getTime()) throw new EvsealError('ERR_USAGE', 'the CA certificate expires before the requested notBefore');
  const spki = spkiDer(csr.publicKey);
  const subject = encodeIdentityName(csr.info);
  const serialHex = randomSerialHex();
  const x = await loadX509();
  const cert = await x.X509CertificateGenerator.create(
    {
      serialNumber: serialHex,
      subject: new x.Name(ab(subject)),
      issuer: new x.Name(ab(ca.subject)),
      notBefore,
      notAfter,
      publicKey: ab(spki),
      signingKey: await toCryptoKey(key),
      signingAlgorithm: webAlgs(alg).signAlg,
      extensions: [
        new x.Extension(OID_BASIC_CONSTRAINTS, true, ab(BC_LEAF)),
        new x.Extension(OID_KEY_USAGE, true, ab(encodeKeyUsage(KU.digitalSignature))),
        new x.Extension(OID_SKI, false, ab(encOctetString(keyIdentifier(spki)))),
        new x.Extension(OID_AKI, false, ab(akiValue(keyId))),
      ],
    },
    x509Crypto(),
  );
  const der = new Uint8Array(cert.rawData);
  try {
    const leaf = leafProfile(parseCertDer(der));
    if (
      Buffer.compare(leaf.issuer, ca.subject) !== 0 ||
      Buffer.compare(leaf.subject, subject) !== 0 ||
      leaf.serialHex !== serialHex ||
      !verifyData(alg, ca.publicKey, leaf.tbs, leaf.signature)
    ) {
      throw new VerificationFailure('chain-invalid', 'issuer, subject, serial or signature');
    }
  } catch (e) {
    if (e instanceof VerificationFailure || e instanceof DerError) {
      throw new EvsealError('ERR_CRYPTO', `generated certificate failed its profile self-check: ${e.message} ${(e as VerificationFailure).detail ?? ''}`);
    }
    throw e;
  }
  return { certPem: derToPem(der, 'CERTIFICATE'), serialHex };
}

// ---- CRL

/**
 * Issues a CRL (v2) following the CRL profile in crl.ts. Encoded here rather
 * than with @peculiar/x509's X509CrlGenerator, which writes an empty
 * crlEntryExtensions SEQUENCE into every entry (RFC 5280 §5.1 requires
 * SIZE (1..MAX) when present).
 *
 * TBSCertList ::= SEQUENCE {
 *   version INTEGER 1,                       -- v2
 *   signature AlgorithmIdentifier,           -- = signatureAlgorithm
 *   issuer Name,                             -- the CA subject, byte for byte
 *   thisUpdate Time, nextUpdate Time,        -- whole seconds
 *   revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, revocationDate Time }
 *                                            -- omitted when empty; no entry extensions
 *   crlExtensions [0] EXPLICIT SEQUENCE {
 *     authorityKeyIdentifier (non-critical) { keyIdentifier = CA subjectKeyIdentifier },
 *     cRLNumber (non-critical) INTEGER } }
 */
export async function createCrl(o: {
  caCertPem: string;
  caKeyPem: string;
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: { serialHex: string; date: Date }[];
}): Promise<string> {
  const { ca, key, alg, keyId } = loadCa(o.caCertPem, o.caKeyPem);
  if (typeof o.crlNumber !== 'bigint' || o.crlNumber < 0n || o.crlNumber > MAX_CRL_NUMBER) throw new EvsealError('ERR_USAGE', 'crlNumber must be a bigint in 0..2^159-1');
  const thisUpdate = toSeconds(o.thisUpdate, 'thisUpdate');
  const nextUpdate = toSeconds(o.nextUpdate, 'nextUpdate');
  if (nextUpdate.getTime() <= thisUpdate.getTime()) throw new EvsealError('ERR_USAGE', 'nextUpdate must be after thisUpdate');
  const seen = new Set<string>();
  const entries: Uint8Array[] = [];
  for (const r of o.revoked) {
    let hex: string;
    try {
      hex = canonicalSerialHex(r.serialHex);
    } catch (e) {
      throw new EvsealError('ERR_INVALID_INPUT', `revoked serial ${String(r.serialHex)}: ${(e as Error).message}`);
    }
    if (seen.has(hex)) throw new EvsealError('ERR_INVALID_INPUT', `revoked serial ${hex} listed twice`);
    seen.add(hex);
    entries.push(seq(tlv(TAG.INTEGER, Buffer.from(hex, 'hex')), encTime(toSeconds(r.date, 'revocation date'))));
  }
  const tbs = seq(
    encInteger(1n),
    algIdFor(alg),
    ca.subject,
    encTime(thisUpdate),
    encTime(nextUpdate),
    ...(entries.length ? [seq(...entries)] : []),
    tlv(ctxCons(0), seq(encExtension(OID_AKI, false, akiValue(keyId)), encExtension(OID_CRL_NUMBER, false, encInteger(o.crlNumber)))),
  );
  const der = seq(tbs, algIdFor(alg), encBitString(signData(alg, key, tbs)));
  const back = parseCrlDer(der);
  if (back.crlNumber !== o.crlNumber || !verifyData(alg, ca.publicKey, back.tbs, back.signature)) {
    throw new EvsealError('ERR_CRYPTO', 'generated CRL failed its self-check');
  }
  return derToPem(der, 'X509 CRL');
}
