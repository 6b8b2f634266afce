import { EvsealError } from './errors.js';

/** Unpadded base64url (RFC 4648 §5). */
export function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * Strict decoder: every byte string has exactly one accepted encoding.
 * Node's decoder is lenient: it skips characters outside its alphabet,
 * stops at '=', also takes '+' and '/', ignores a partial last character and
 * reads each character of a two-byte string by its low byte alone. So the
 * text is accepted only if it is ASCII, decodes to exactly the number of
 * bytes its length implies (nothing was skipped or cut short), holds neither
 * '+' nor '/', and has zero bits after its last byte; this equals "re-encoding
 * the bytes gives the text back" without building that string.
 */
export function fromB64u(s: unknown, what = 'field'): Uint8Array {
  if (typeof s !== 'string') throw notCanonical(what);
  const out = Buffer.from(s, 'base64url');
  const n = s.length;
  if (n % 4 === 1 || out.length !== Math.floor((n * 3) / 4) || Buffer.byteLength(s, 'utf8') !== n || s.includes('+') || s.includes('/') || !zeroTail(s)) {
    throw notCanonical(what);
  }
  // A plain Uint8Array view (no copy), so callers never see Buffer semantics.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

const notCanonical = (what: string): EvsealError => new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/** The 6-bit value of a base64url character already known to be in the alphabet. */
function sextet(c: number): number {
  if (c >= 97) return c - 71; // a-z
  if (c === 95) return 63; // '_'
  if (c >= 65) return c - 65; // A-Z
  if (c >= 48) return c + 4; // 0-9
  return 62; // '-'
}

/**
 * Whether fromB64u would accept `s` and give exactly `n` bytes, without
 * decoding it (for short ids whose bytes are not needed): the text has the
 * length of n bytes' encoding, only the base64url alphabet, and zero bits
 * after the last byte.
 */
export function isB64uOfLength(s: unknown, n: number): boolean {
  return typeof s === 'string' && s.length === Math.ceil((4 * n) / 3) && ALPHABET.test(s) && zeroTail(s);
}

/** Zero bits after the last byte of `s`, whose characters are known to be in the alphabet: the low 4 bits of the last character when the length is 2 mod 4, the low 2 bits when it is 3 mod 4. */
function zeroTail(s: string): boolean {
  const rem = s.length % 4;
  return rem === 0 || (sextet(s.charCodeAt(s.length - 1)) & (rem === 2 ? 0x0f : 0x03)) === 0;
}
