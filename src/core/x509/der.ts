/**
 * A small, strict DER reader and writer: just what the evseal X.509 profile
 * needs. Validation code reads certificates, CSRs and CRLs with this reader
 * (not with a lenient BER parser) so that every structural check in
 * docs/protocol.md Appendix A is exact and the signed bytes (tbsCertificate,
 * tbsCertList, certificationRequestInfo) are sliced out of the input as
 * received, never re-encoded.
 *
 * Strictness: single-byte tags only (tag numbers 0..30), definite lengths in
 * minimal form (no indefinite length, no leading zero length octets, the
 * long form only for lengths >= 128, at most 4 length octets), children of
 * a constructed value must fill it exactly, and the top-level value must
 * fill its buffer exactly (no trailing bytes).
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** ctx(n): context-specific constructed tag [n] (EXPLICIT or constructed IMPLICIT). */
export const ctxCons = (n: number): number => 0xa0 | n;
/** ctxPrim(n): context-specific primitive tag [n] IMPLICIT. */
export const ctxPrim = (n: number): number => 0x80 | n;

export interface Tlv {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the first content byte */
  body: number;
  /** offset just past the value */
  end: number;
  /** the buffer this TLV points into */
  buf: Uint8Array;
}

export function readTlv(buf: Uint8Array, off: number, limit: number = buf.length): Tlv {
  if (off + 2 > limit) throw new DerError('truncated TLV');
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let len = buf[off + 1]!;
  let p = off + 2;
  if (len === 0x80) throw new DerError('indefinite length');
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4) throw new DerError('length too large');
    if (p + n > limit) throw new DerError('truncated length');
    if (buf[p] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
    if (len < 0x80) throw new DerError('non-minimal length');
  }
  if (p + len > limit) throw new DerError('truncated value');
  return { tag, start: off, body: p, end: p + len, buf };
}

/** Parses `buf` as exactly one TLV (no trailing bytes). */
export function parseDer(buf: Uint8Array): Tlv {
  const t = readTlv(buf, 0);
  if (t.end !== buf.length) throw new DerError('trailing bytes after DER value');
  return t;
}

/** The children of a constructed TLV; they must fill it exactly. */
export function children(t: Tlv): Tlv[] {
  if ((t.tag & 0x20) === 0) throw new DerError('not a constructed value');
  const out: Tlv[] = [];
  let p = t.body;
  while (p < t.end) {
    const c = readTlv(t.buf, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) throw new DerError(`${what}: missing`);
  if (t.tag !== tag) throw new DerError(`${what}: unexpected tag 0x${t.tag.toString(16)}`);
  return t;
}

/** The whole encoding (tag, length, value) of a TLV, as a view. */
export const whole = (t: Tlv): Uint8Array => t.buf.subarray(t.start, t.end);
/** The content octets of a TLV, as a view. */
export const content = (t: Tlv): Uint8Array => t.buf.subarray(t.body, t.end);

/** Content octets of an INTEGER, checked minimal. */
export function integerBytes(t: Tlv, what = 'INTEGER'): Uint8Array {
  expectTag(t, TAG.INTEGER, what);
  const c = content(t);
  if (c.length === 0) throw new DerError(`${what}: empty`);
  if (c.length > 1 && ((c[0] === 0x00 && c[1]! < 0x80) || (c[0] === 0xff && c[1]! >= 0x80))) {
    throw new DerError(`${what}: non-minimal encoding`);
  }
  return c;
}

export function readInteger(t: Tlv, what = 'INTEGER'): bigint {
  const c = integerBytes(t, what);
  let v = 0n;
  for (const b of c) v = (v << 8n) | BigInt(b);
  if (c[0]! & 0x80) v -= 1n << BigInt(c.length * 8);
  return v;
}

export function readBoolean(t: Tlv, what = 'BOOLEAN'): boolean {
  expectTag(t, TAG.BOOLEAN, what);
  const c = content(t);
  if (c.length !== 1 || (c[0] !== 0x00 && c[0] !== 0xff)) throw new DerError(`${what}: not a DER BOOLEAN`);
  return c[0] === 0xff;
}

/** BIT STRING: returns the bytes and the number of unused bits (which must be zero bits, as DER requires). */
export function readBitString(t: Tlv, what = 'BIT STRING'): { bytes: Uint8Array; unused: number } {
  expectTag(t, TAG.BIT_STRING, what);
  const c = content(t);
  if (c.length === 0) throw new DerError(`${what}: empty`);
  const unused = c[0]!;
  if (unused > 7 || (c.length === 1 && unused !== 0)) throw new DerError(`${what}: bad unused-bits count`);
  if (unused > 0 && (c[c.length - 1]! & ((1 << unused) - 1)) !== 0) throw new DerError(`${what}: non-zero unused bits`);
  return { bytes: c.subarray(1), unused };
}

export function readOctetString(t: Tlv, what = 'OCTET STRING'): Uint8Array {
  return content(expectTag(t, TAG.OCTET_STRING, what));
}

/** Dotted-decimal form of an OBJECT IDENTIFIER (validated: minimal base-128 arcs). */
export function readOid(t: Tlv, what = 'OID'): string {
  const c = content(expectTag(t, TAG.OID, what));
  if (c.length === 0) throw new DerError(`${what}: empty`);
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (fresh && b === 0x80) throw new DerError(`${what}: non-minimal arc`);
    v = (v << 7n) | BigInt(b & 0x7f);
    fresh = false;
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      fresh = true;
    }
  }
  if (!fresh) throw new DerError(`${what}: truncated arc`);
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

const DIGITS = /^[0-9]+$/;

/**
 * Time ::= CHOICE { utcTime, generalTime }, in the RFC 5280 §4.1.2.5 forms:
 * UTCTime YYMMDDHHMMSSZ (YY >= 50 means 19YY) and GeneralizedTime
 * YYYYMMDDHHMMSSZ, always in Zulu time with seconds and no fraction.
 */
export function readTime(t: Tlv, what = 'Time'): Date {
  const c = content(t);
  const s = String.fromCharCode(...c);
  let year: number;
  let rest: string;
  if (t.tag === TAG.UTC_TIME) {
    if (s.length !== 13 || s[12] !== 'Z' || !DIGITS.test(s.slice(0, 12))) throw new DerError(`${what}: bad UTCTime`);
    const yy = Number(s.slice(0, 2));
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = s.slice(2, 12);
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    if (s.length !== 15 || s[14] !== 'Z' || !DIGITS.test(s.slice(0, 14))) throw new DerError(`${what}: bad GeneralizedTime`);
    year = Number(s.slice(0, 4));
    rest = s.slice(4, 14);
  } else {
    throw new DerError(`${what}: not a UTCTime or GeneralizedTime`);
  }
  const [mo, d, h, mi, se] = [0, 2, 4, 6, 8].map((i) => Number(rest.slice(i, i + 2))) as [number, number, number, number, number];
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const dt = new Date(ms);
  if (
    mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59 ||
    dt.getUTCFullYear() !== year || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d
  ) {
    throw new DerError(`${what}: invalid date`);
  }
  return dt;
}

// ---------------------------------------------------------------- writer

function encLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const len = encLength(n);
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  let o = 1 + len.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const seq = (...parts: Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, ...parts);

/** Minimal two's-complement content octets of an integer. */
export function integerContent(v: bigint): Uint8Array {
  if (v === 0n) return Uint8Array.of(0);
  const out: number[] = [];
  if (v > 0n) {
    for (let x = v; x > 0n; x >>= 8n) out.unshift(Number(x & 0xffn));
    if (out[0]! & 0x80) out.unshift(0);
  } else {
    let x = v;
    for (;;) {
      out.unshift(Number(x & 0xffn));
      x >>= 8n;
      if (x === -1n && out[0]! & 0x80) break;
    }
  }
  return Uint8Array.from(out);
}

export const encInteger = (v: bigint): Uint8Array => tlv(TAG.INTEGER, integerContent(v));

export function encOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs.length < 2) throw new RangeError('OID needs two arcs');
  const first = arcs[0]! * 40n + arcs[1]!;
  const out: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk: number[] = [];
    let x = arc;
    do {
      chunk.unshift(Number(x & 0x7fn) | (chunk.length ? 0x80 : 0));
      x >>= 7n;
    } while (x > 0n);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. Milliseconds must be zero. */
export function encTime(d: Date): Uint8Array {
  const ms = d.getTime();
  if (!Number.isFinite(ms) || ms % 1000 !== 0) throw new RangeError('time must be a whole second');
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 9999) throw new RangeError('time out of range');
  const tail = `${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
  const ascii = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
  return y < 2050 ? tlv(TAG.UTC_TIME, ascii(`${pad2(y % 100)}${tail}`)) : tlv(TAG.GENERALIZED_TIME, ascii(`${y}${tail}`));
}

export const encUtf8String = (s: string): Uint8Array => tlv(TAG.UTF8_STRING, new TextEncoder().encode(s));
export const encOctetString = (b: Uint8Array): Uint8Array => tlv(TAG.OCTET_STRING, b);
export const encBitString = (b: Uint8Array): Uint8Array => tlv(TAG.BIT_STRING, Uint8Array.of(0), b);
