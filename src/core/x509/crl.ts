import { VerificationFailure } from '../errors.js';
import { sigAlgOfAlgId, type SigAlg } from './algorithms.js';
import { OID_AKI, OID_CRL_NUMBER, parseAki, readExtensions, type Ext } from './cert.js';
import {
  DerError,
  TAG,
  children,
  ctxCons,
  expectTag,
  integerBytes,
  parseDer,
  readBitString,
  readInteger,
  readTime,
  whole,
  type Tlv,
} from './der.js';
import { readName } from './names.js';

/**
 * CRL profile (RFC 5280 §5, narrowed):
 *   - v2 (version INTEGER 1 present), signature ecdsa-with-SHA256 or Ed25519,
 *     identical in tbsCertList.signature and signatureAlgorithm;
 *   - issuer byte-identical to the anchor's subject;
 *   - thisUpdate and nextUpdate both present, nextUpdate > thisUpdate;
 *   - revokedCertificates absent when empty (never an empty SEQUENCE);
 *     serials positive, at most 20 octets, no duplicates;
 *   - crlExtensions: cRLNumber (2.5.29.20, non-critical, 0 <= n < 2^159)
 *     required; authorityKeyIdentifier keyIdentifier optional (if present it
 *     must equal the anchor's subjectKeyIdentifier); any other critical CRL
 *     or entry extension (delta CRL indicator, issuing distribution point,
 *     certificate issuer = indirect CRL, ...) makes the CRL unacceptable.
 */
export interface ParsedCrl {
  der: Uint8Array;
  tbs: Uint8Array;
  sigAlg: SigAlg;
  signature: Uint8Array;
  issuer: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
  aki: Uint8Array | undefined;
  /** canonical serial hex (INTEGER content octets, lowercase) -> revocation date */
  revoked: Map<string, Date>;
}

export const MAX_CRL_NUMBER = (1n << 159n) - 1n;

const KNOWN_CRL_EXTS = new Set([OID_CRL_NUMBER, OID_AKI]);

function fail(detail: string): never {
  throw new VerificationFailure('crl-invalid', detail);
}

function crlExtensions(t: Tlv): Ext[] {
  const inner = children(t);
  if (inner.length !== 1) throw new DerError('crlExtensions: bad wrapper');
  const { list, duplicate } = readExtensions(inner[0]!, 'crlExtensions');
  if (duplicate) fail(`duplicate CRL extension ${duplicate}`);
  return list;
}

/** Parses a DER CRL against the profile above; throws VerificationFailure('crl-invalid'). Does not check the signature. */
export function parseCrlDer(input: Uint8Array): ParsedCrl {
  const der = new Uint8Array(input);
  try {
    const top = children(expectTag(parseDer(der), TAG.SEQUENCE, 'CertificateList'));
    if (top.length !== 3) throw new DerError('CertificateList: expected 3 fields');
    const [tbsT, algT, sigT] = top as [Tlv, Tlv, Tlv];
    const f = children(expectTag(tbsT, TAG.SEQUENCE, 'tbsCertList'));
    expectTag(algT, TAG.SEQUENCE, 'signatureAlgorithm');
    const sig = readBitString(sigT, 'signatureValue');
    if (sig.unused !== 0) throw new DerError('signatureValue: unused bits');
    let i = 0;
    if (f[i]?.tag !== TAG.INTEGER || readInteger(f[i]!, 'version') !== 1n) fail('CRL must be v2');
    i++;
    const tbsAlg = expectTag(f[i++], TAG.SEQUENCE, 'signature');
    const sigAlgId = whole(algT);
    if (Buffer.compare(whole(tbsAlg), sigAlgId) !== 0) fail('signatureAlgorithm differs from tbsCertList.signature');
    const sigAlg = sigAlgOfAlgId(sigAlgId);
    if (!sigAlg) fail('CRL signature algorithm is not ecdsa-with-SHA256 or Ed25519');
    const issuerT = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
    readName(issuerT, 'issuer');
    const thisUpdate = readTime(f[i++]!, 'thisUpdate');
    if (!f[i] || (f[i]!.tag !== TAG.UTC_TIME && f[i]!.tag !== TAG.GENERALIZED_TIME)) fail('nextUpdate is required');
    const nextUpdate = readTime(f[i++]!, 'nextUpdate');
    if (nextUpdate.getTime() <= thisUpdate.getTime()) fail('nextUpdate must be after thisUpdate');
    const revoked = new Map<string, Date>();
    if (f[i]?.tag === TAG.SEQUENCE) {
      const entries = children(f[i++]!);
      if (entries.length === 0) fail('empty revokedCertificates must be omitted');
      for (const e of entries) {
        const ef = children(expectTag(e, TAG.SEQUENCE, 'revokedCertificate'));
        if (ef.length < 2 || ef.length > 3) throw new DerError('revokedCertificate: bad field count');
        const serial = integerBytes(ef[0]!, 'userCertificate');
        if (serial[0]! & 0x80 || (serial.length === 1 && serial[0] === 0) || serial.length > 20) fail('revoked serial must be positive, at most 20 octets');
        const date = readTime(ef[1]!, 'revocationDate');
        if (ef[2]) {
          const { list, duplicate } = readExtensions(ef[2], 'crlEntryExtensions');
          if (duplicate) fail(`duplicate CRL entry extension ${duplicate}`);
          for (const x of list) if (x.critical) fail(`unsupported critical CRL entry extension ${x.oid}`);
        }
        const hex = Buffer.from(serial).toString('hex');
        if (revoked.has(hex)) fail(`serial ${hex} listed twice`);
        revoked.set(hex, date);
      }
    }
    let crlNumber: bigint | undefined;
    let aki: Uint8Array | undefined;
    if (f[i]?.tag === ctxCons(0)) {
      for (const x of crlExtensions(f[i++]!)) {
        if (x.oid === OID_CRL_NUMBER) {
          if (x.critical) fail('cRLNumber must not be critical');
          crlNumber = readInteger(parseDer(x.value), 'cRLNumber');
          if (crlNumber < 0n || crlNumber > MAX_CRL_NUMBER) fail('cRLNumber out of range');
        } else if (x.oid === OID_AKI) {
          aki = parseAki(x.value);
        } else if (x.critical && !KNOWN_CRL_EXTS.has(x.oid)) {
          fail(`unsupported critical CRL extension ${x.oid}`);
        }
      }
    }
    if (i !== f.length) throw new DerError('tbsCertList: unexpected trailing fields');
    if (crlNumber === undefined) fail('cRLNumber extension is required');
    return {
      der,
      tbs: whole(tbsT),
      sigAlg,
      signature: new Uint8Array(sig.bytes),
      issuer: new Uint8Array(whole(issuerT)),
      thisUpdate,
      nextUpdate,
      crlNumber,
      aki: aki && new Uint8Array(aki),
      revoked,
    };
  } catch (e) {
    if (e instanceof DerError) fail(`CRL is not well-formed DER: ${e.message}`);
    throw e;
  }
}
