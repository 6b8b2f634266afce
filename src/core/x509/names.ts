import { isRole, isValidId, isValidOperator, type IdentityInfo } from '../roles.js';
import { DerError, TAG, children, content, encOid, encUtf8String, expectTag, readOid, seq, tlv, type Tlv } from './der.js';

/**
 * Distinguished names of the profile.
 *
 * Leaf subject (emitted in this order, one attribute per RDN, every value a
 * UTF8String):
 *   O  (2.5.4.10) = operator
 *   OU (2.5.4.11) = role
 *   CN (2.5.4.3)  = id
 *
 * CA subject: a single RDN, CN (2.5.4.3) = CA name, UTF8String. The CA has
 * no O: the CA name is all a trust policy and a CRL need, and a one-RDN name
 * keeps issuer matching (byte equality) trivial.
 *
 * Readers accept the three leaf RDNs in any order (but each exactly once,
 * each RDN single-valued, no other attribute types).
 */
export const OID_CN = '2.5.4.3';
export const OID_OU = '2.5.4.11';
export const OID_O = '2.5.4.10';

const utf8 = new TextDecoder('utf-8', { fatal: true });

const rdn = (oid: string, value: string): Uint8Array => tlv(TAG.SET, seq(encOid(oid), encUtf8String(value)));

export function encodeIdentityName(info: IdentityInfo): Uint8Array {
  return seq(rdn(OID_O, info.operator), rdn(OID_OU, info.role), rdn(OID_CN, info.id));
}

export function encodeCaName(name: string): Uint8Array {
  return seq(rdn(OID_CN, name));
}

export interface NameAttr {
  oid: string;
  tag: number;
  value: string;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Reads a Name as a list of single-valued RDNs. Multi-valued RDNs are refused. */
export function readName(t: Tlv, what = 'Name'): NameAttr[] {
  expectTag(t, TAG.SEQUENCE, what);
  const out: NameAttr[] = [];
  for (const r of children(t)) {
    expectTag(r, TAG.SET, `${what} RDN`);
    const atvs = children(r);
    if (atvs.length !== 1) throw new DerError(`${what}: multi-valued or empty RDN`);
    const atv = children(expectTag(atvs[0], TAG.SEQUENCE, `${what} attribute`));
    if (atv.length !== 2) throw new DerError(`${what}: bad AttributeTypeAndValue`);
    const oid = readOid(atv[0]!, `${what} attribute type`);
    const v = atv[1]!;
    let value: string;
    if (v.tag === TAG.UTF8_STRING) {
      try {
        value = utf8.decode(content(v));
      } catch {
        throw new DerError(`${what}: invalid UTF-8`);
      }
    } else if (v.tag === TAG.PRINTABLE_STRING) {
      value = String.fromCharCode(...content(v));
      if (!PRINTABLE.test(value)) throw new DerError(`${what}: invalid PrintableString`);
    } else {
      value = '';
    }
    out.push({ oid, tag: v.tag, value });
  }
  return out;
}

/**
 * Extracts role/id/operator from a subject Name, or returns a reason string.
 * `allowPrintable` admits PrintableString values as well as UTF8String
 * (for CSRs made by other software; certificates always use UTF8String).
 */
export function identityFromName(attrs: NameAttr[], allowPrintable: boolean): IdentityInfo | string {
  if (attrs.length !== 3) return `subject must have exactly 3 attributes (CN, OU, O), has ${attrs.length}`;
  const got: Record<string, string> = {};
  for (const a of attrs) {
    if (a.oid !== OID_CN && a.oid !== OID_OU && a.oid !== OID_O) return `subject attribute ${a.oid} is not allowed`;
    if (a.oid in got) return `subject attribute ${a.oid} appears more than once`;
    if (!(a.tag === TAG.UTF8_STRING || (allowPrintable && a.tag === TAG.PRINTABLE_STRING))) {
      return `subject attribute ${a.oid} must be a UTF8String`;
    }
    got[a.oid] = a.value;
  }
  const id = got[OID_CN];
  const role = got[OID_OU];
  const operator = got[OID_O];
  if (!isRole(role)) return 'subject OU is not an evseal role';
  if (!isValidId(id)) return 'subject CN is not a valid id';
  if (!isValidOperator(operator)) return 'subject O is not a valid operator';
  return { role, id, operator };
}

/** The CN of a name if it has exactly one CN attribute, else undefined. */
export function commonNameOf(attrs: NameAttr[]): string | undefined {
  const cns = attrs.filter((a) => a.oid === OID_CN);
  return cns.length === 1 && cns[0]!.value !== '' ? cns[0]!.value : undefined;
}
