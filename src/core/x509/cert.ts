import { createPublicKey, type KeyObject } from 'node:crypto';
import { VerificationFailure } from '../errors.js';
import type { IdentityInfo } from '../roles.js';
import { keyAlgOf, sha256, sigAlgOfAlgId, type SigAlg } from './algorithms.js';
import {
  DerError,
  TAG,
  children,
  content,
  ctxCons,
  expectTag,
  integerBytes,
  parseDer,
  readBitString,
  readBoolean,
  readInteger,
  readOctetString,
  readOid,
  readTime,
  whole,
  type Tlv,
} from './der.js';
import { commonNameOf, identityFromName, readName, type NameAttr } from './names.js';
import { certFingerprint } from './pem.js';

export const OID_BASIC_CONSTRAINTS = '2.5.29.19';
export const OID_KEY_USAGE = '2.5.29.15';
export const OID_SKI = '2.5.29.14';
export const OID_AKI = '2.5.29.35';
export const OID_CRL_NUMBER = '2.5.29.20';

/** keyUsage bits as numbers: bit n of the BIT STRING (n = 0 is the first, most significant bit) is 1 << n. */
export const KU = {
  digitalSignature: 1 << 0,
  nonRepudiation: 1 << 1,
  keyEncipherment: 1 << 2,
  dataEncipherment: 1 << 3,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6,
  encipherOnly: 1 << 7,
  decipherOnly: 1 << 8,
} as const;

export interface Ext {
  oid: string;
  critical: boolean;
  /** extnValue contents (the DER of the extension's own value) */
  value: Uint8Array;
}

/** Extensions this code understands; any other extension marked critical makes a certificate unacceptable (RFC 5280 §4.2). */
const KNOWN_CERT_EXTS = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, OID_SKI, OID_AKI]);

export interface ParsedCert {
  der: Uint8Array;
  certHash: Uint8Array;
  fingerprint: string;
  /** the tbsCertificate bytes exactly as received (what the signature covers) */
  tbs: Uint8Array;
  version: number;
  /** INTEGER content octets, lowercase hex (minimal two's complement; what CRLs list) */
  serialHex: string;
  serialPositive: boolean;
  serialLength: number;
  /** outer signatureAlgorithm DER, and whether it equals tbsCertificate.signature */
  sigAlgId: Uint8Array;
  sigAlgConsistent: boolean;
  sigAlg: SigAlg | undefined;
  signature: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  subjectAttrs: NameAttr[];
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  publicKey: KeyObject;
  keyAlg: SigAlg | undefined;
  hasUniqueIds: boolean;
  extensions: Ext[];
  duplicateExtension: string | undefined;
  basicConstraints?: { ca: boolean; pathLen?: number };
  keyUsage?: number;
  ski?: Uint8Array;
  /** authorityKeyIdentifier.keyIdentifier, if present */
  aki?: Uint8Array;
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
export function readExtensions(t: Tlv, what: string): { list: Ext[]; duplicate: string | undefined } {
  expectTag(t, TAG.SEQUENCE, what);
  const list: Ext[] = [];
  let duplicate: string | undefined;
  const seen = new Set<string>();
  const items = children(t);
  if (items.length === 0) throw new DerError(`${what}: empty extension list`);
  for (const e of items) {
    const f = children(expectTag(e, TAG.SEQUENCE, `${what} entry`));
    const oid = readOid(f[0]!, `${what} extnID`);
    let i = 1;
    let critical = false;
    if (f[i]?.tag === TAG.BOOLEAN) {
      critical = readBoolean(f[i]!, `${what} critical`);
      // DER: a DEFAULT value is never encoded, so an explicit FALSE is not DER.
      if (!critical) throw new DerError(`${what}: critical FALSE must be omitted in DER`);
      i++;
    }
    const value = readOctetString(expectTag(f[i], TAG.OCTET_STRING, `${what} extnValue`));
    if (f.length !== i + 1) throw new DerError(`${what}: trailing fields in extension`);
    if (seen.has(oid)) duplicate ??= oid;
    seen.add(oid);
    list.push({ oid, critical, value });
  }
  return { list, duplicate };
}

function parseBasicConstraints(v: Uint8Array): { ca: boolean; pathLen?: number } {
  const f = children(expectTag(parseDer(v), TAG.SEQUENCE, 'basicConstraints'));
  let i = 0;
  let ca = false;
  if (f[i]?.tag === TAG.BOOLEAN) {
    ca = readBoolean(f[i]!, 'basicConstraints.cA');
    if (!ca) throw new DerError('basicConstraints: cA FALSE must be omitted in DER');
    i++;
  }
  let pathLen: number | undefined;
  if (f[i]?.tag === TAG.INTEGER) {
    const n = readInteger(f[i]!, 'pathLenConstraint');
    if (n < 0n || n > 255n) throw new DerError('basicConstraints: pathLenConstraint out of range');
    pathLen = Number(n);
    i++;
  }
  if (i !== f.length) throw new DerError('basicConstraints: unexpected fields');
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

function parseKeyUsage(v: Uint8Array): number {
  const { bytes } = readBitString(parseDer(v), 'keyUsage');
  if (bytes.length > 2) throw new DerError('keyUsage: too long');
  let bits = 0;
  for (let n = 0; n < bytes.length * 8; n++) {
    if (bytes[n >> 3]! & (0x80 >> (n & 7))) bits |= 1 << n;
  }
  return bits;
}

/** AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, authorityCertIssuer [1], authorityCertSerialNumber [2] } */
export function parseAki(v: Uint8Array): Uint8Array | undefined {
  const f = children(expectTag(parseDer(v), TAG.SEQUENCE, 'authorityKeyIdentifier'));
  let keyId: Uint8Array | undefined;
  let last = -1;
  for (const x of f) {
    const n = x.tag & 0x1f;
    if ((x.tag & 0xc0) !== 0x80 || n > 2 || n <= last) throw new DerError('authorityKeyIdentifier: unexpected field');
    last = n;
    if (n === 0) {
      if (x.tag !== 0x80) throw new DerError('authorityKeyIdentifier: keyIdentifier must be primitive');
      keyId = content(x);
    }
  }
  return keyId;
}

/**
 * Parses a DER certificate structurally. Throws DerError for anything that
 * is not a well-formed Certificate; profile questions (version, extensions,
 * algorithms) are answered by the fields and judged by the callers.
 *
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 * TBSCertificate ::= SEQUENCE { [0] EXPLICIT version DEFAULT v1, serialNumber, signature,
 *   issuer, validity, subject, subjectPublicKeyInfo, [1] issuerUniqueID, [2] subjectUniqueID,
 *   [3] EXPLICIT extensions }
 */
export function parseCertDer(input: Uint8Array): ParsedCert {
  const der = new Uint8Array(input); // private copy: callers may reuse their buffer
  const top = children(expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate'));
  if (top.length !== 3) throw new DerError('Certificate: expected 3 fields');
  const [tbsT, algT, sigT] = top as [Tlv, Tlv, Tlv];
  expectTag(tbsT, TAG.SEQUENCE, 'tbsCertificate');
  expectTag(algT, TAG.SEQUENCE, 'signatureAlgorithm');
  const sig = readBitString(sigT, 'signatureValue');
  if (sig.unused !== 0) throw new DerError('signatureValue: unused bits');

  const f = children(tbsT);
  let i = 0;
  let version = 1;
  if (f[i]?.tag === ctxCons(0)) {
    const inner = children(f[i]!);
    if (inner.length !== 1) throw new DerError('version: bad wrapper');
    const v = readInteger(inner[0]!, 'version');
    if (v === 0n) throw new DerError('version: v1 must be omitted in DER');
    if (v < 0n || v > 2n) throw new DerError('version: unknown');
    version = Number(v) + 1;
    i++;
  }
  const serial = integerBytes(expectTag(f[i++], TAG.INTEGER, 'serialNumber'), 'serialNumber');
  const tbsAlg = expectTag(f[i++], TAG.SEQUENCE, 'signature');
  const issuerT = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  readName(issuerT, 'issuer');
  const validity = children(expectTag(f[i++], TAG.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new DerError('validity: expected 2 fields');
  const notBefore = readTime(validity[0]!, 'notBefore');
  const notAfter = readTime(validity[1]!, 'notAfter');
  const subjectT = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  const subjectAttrs = readName(subjectT, 'subject');
  const spkiT = expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  let hasUniqueIds = false;
  while (f[i] && (f[i]!.tag === 0x81 || f[i]!.tag === 0x82 || f[i]!.tag === 0xa1 || f[i]!.tag === 0xa2)) {
    hasUniqueIds = true;
    i++;
  }
  let extensions: Ext[] = [];
  let duplicateExtension: string | undefined;
  if (f[i]?.tag === ctxCons(3)) {
    const inner = children(f[i]!);
    if (inner.length !== 1) throw new DerError('extensions: bad wrapper');
    const r = readExtensions(inner[0]!, 'extensions');
    extensions = r.list;
    duplicateExtension = r.duplicate;
    i++;
  }
  if (i !== f.length) throw new DerError('tbsCertificate: unexpected trailing fields');

  const spki = new Uint8Array(whole(spkiT));
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    throw new DerError('subjectPublicKeyInfo: not a usable public key');
  }

  const sigAlgId = new Uint8Array(whole(algT));
  const out: ParsedCert = {
    der,
    certHash: sha256(der),
    fingerprint: certFingerprint(der),
    tbs: whole(tbsT),
    version,
    serialHex: Buffer.from(serial).toString('hex'),
    serialPositive: (serial[0]! & 0x80) === 0 && !(serial.length === 1 && serial[0] === 0),
    serialLength: serial.length,
    sigAlgId,
    sigAlgConsistent: Buffer.compare(whole(tbsAlg), sigAlgId) === 0,
    sigAlg: sigAlgOfAlgId(sigAlgId),
    signature: new Uint8Array(sig.bytes),
    issuer: new Uint8Array(whole(issuerT)),
    subject: new Uint8Array(whole(subjectT)),
    subjectAttrs,
    notBefore,
    notAfter,
    spki,
    publicKey,
    keyAlg: keyAlgOf(publicKey),
    hasUniqueIds,
    extensions,
    duplicateExtension,
  };
  for (const e of extensions) {
    if (e.oid === OID_BASIC_CONSTRAINTS) out.basicConstraints = parseBasicConstraints(e.value);
    else if (e.oid === OID_KEY_USAGE) out.keyUsage = parseKeyUsage(e.value);
    else if (e.oid === OID_SKI) out.ski = new Uint8Array(readOctetString(parseDer(e.value), 'subjectKeyIdentifier'));
    else if (e.oid === OID_AKI) {
      const k = parseAki(e.value);
      if (k) out.aki = new Uint8Array(k);
    }
  }
  return out;
}

/** Parses or throws VerificationFailure('malformed'). */
export function parseCertOrFail(der: Uint8Array, what: string): ParsedCert {
  try {
    return parseCertDer(der);
  } catch (e) {
    if (e instanceof DerError) throw new VerificationFailure('malformed', `${what}: ${e.message}`);
    throw e;
  }
}

export interface ParsedLeaf extends ParsedCert {
  info: IdentityInfo;
  keyAlg: SigAlg;
  sigAlg: SigAlg;
}

/**
 * The evseal end-entity profile (docs/protocol.md Appendix A §"Validation"):
 *   malformed     - not DER / not a Certificate, or the subject is not
 *                   exactly one UTF8String CN (valid id), OU (a Role) and O
 *                   (valid operator);
 *   chain-invalid - decodes, but is not acceptable as an end-entity
 *                   certificate: not v3, serial not positive or longer than
 *                   20 octets, unique identifiers present, signature
 *                   algorithm not ecdsa-with-SHA256/Ed25519 or inconsistent
 *                   with tbsCertificate.signature, key not P-256/Ed25519, no
 *                   or duplicate extensions, an unknown critical extension,
 *                   basicConstraints absent / not critical / cA TRUE,
 *                   keyUsage absent / not critical / without
 *                   digitalSignature / with keyCertSign or cRLSign,
 *                   notBefore after notAfter.
 */
export function leafProfile(p: ParsedCert): ParsedLeaf {
  const info = identityFromName(p.subjectAttrs, false);
  if (typeof info === 'string') throw new VerificationFailure('malformed', `leaf: ${info}`);
  const bad = (why: string): never => {
    throw new VerificationFailure('chain-invalid', `leaf: ${why}`);
  };
  if (p.version !== 3) bad('not an X.509 v3 certificate');
  if (!p.serialPositive || p.serialLength > 20) bad('serial number must be positive and at most 20 octets');
  if (p.hasUniqueIds) bad('unique identifiers are not allowed');
  if (!p.sigAlgConsistent) bad('signatureAlgorithm differs from tbsCertificate.signature');
  if (!p.sigAlg) bad('signature algorithm is not ecdsa-with-SHA256 or Ed25519');
  if (!p.keyAlg) bad('public key is not P-256 or Ed25519');
  if (p.duplicateExtension) bad(`duplicate extension ${p.duplicateExtension}`);
  for (const e of p.extensions) if (e.critical && !KNOWN_CERT_EXTS.has(e.oid)) bad(`unknown critical extension ${e.oid}`);
  const bc = p.extensions.find((e) => e.oid === OID_BASIC_CONSTRAINTS);
  if (!bc || !p.basicConstraints) bad('basicConstraints missing');
  if (!bc!.critical) bad('basicConstraints must be critical');
  if (p.basicConstraints!.ca) bad('a CA certificate cannot be used as an end-entity certificate');
  const ku = p.extensions.find((e) => e.oid === OID_KEY_USAGE);
  if (!ku || p.keyUsage === undefined) bad('keyUsage missing');
  if (!ku!.critical) bad('keyUsage must be critical');
  if (!(p.keyUsage! & KU.digitalSignature)) bad('keyUsage lacks digitalSignature');
  if (p.keyUsage! & (KU.keyCertSign | KU.cRLSign)) bad('keyUsage has keyCertSign or cRLSign');
  if (p.notBefore.getTime() > p.notAfter.getTime()) bad('notBefore is after notAfter');
  return { ...p, info, keyAlg: p.keyAlg!, sigAlg: p.sigAlg! };
}

export interface ParsedCa extends ParsedCert {
  keyAlg: SigAlg;
  /** subject CN, if exactly one */
  cn: string | undefined;
}

/**
 * The trust-anchor (CA) profile: v3, basicConstraints with cA TRUE,
 * keyUsage with keyCertSign, a P-256 or Ed25519 key, no duplicate and no
 * unknown critical extension. The anchor's own signature and issuer are
 * never consulted (RFC 5280 §6.1.1(d): a trust anchor is trusted for its
 * name and key), so it need not be self-signed. Returns a reason string on
 * failure.
 */
export function caProfile(p: ParsedCert): ParsedCa | string {
  if (p.version !== 3) return 'CA certificate is not v3';
  if (!p.keyAlg) return 'CA key is not P-256 or Ed25519';
  if (p.duplicateExtension) return `CA certificate has duplicate extension ${p.duplicateExtension}`;
  for (const e of p.extensions) if (e.critical && !KNOWN_CERT_EXTS.has(e.oid)) return `CA certificate has unknown critical extension ${e.oid}`;
  if (!p.basicConstraints?.ca) return 'not a CA certificate (basicConstraints cA is not TRUE)';
  if (p.keyUsage === undefined || !(p.keyUsage & KU.keyCertSign)) return 'CA certificate keyUsage lacks keyCertSign';
  return { ...p, keyAlg: p.keyAlg, cn: commonNameOf(p.subjectAttrs) };
}

/** Canonical serial hex: lowercase, minimal two's-complement content octets of a positive INTEGER. */
export function canonicalSerialHex(hex: string): string {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]+$/.test(hex)) throw new RangeError('serial: not hex');
  const v = BigInt('0x' + hex);
  if (v <= 0n) throw new RangeError('serial: must be positive');
  let h = v.toString(16);
  if (h.length % 2) h = '0' + h;
  if (parseInt(h.slice(0, 2), 16) >= 0x80) h = '00' + h;
  if (h.length > 40) throw new RangeError('serial: longer than 20 octets');
  return h;
}
