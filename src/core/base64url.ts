import { EvsealError } from './errors.js';

/** Unpadded base64url (RFC 4648 §5). */
export function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * Strict decoder: every byte string has exactly one accepted encoding.
 * Node's decoder is lenient (it accepts '+', '/', '=', whitespace and
 * non-zero trailing bits), so the input is accepted only if re-encoding the
 * decoded bytes gives it back exactly; that single comparison rejects all of
 * those at once (and Node's encoder is faster than any scan of the text).
 */
export function fromB64u(s: unknown, what = 'field'): Uint8Array {
  if (typeof s !== 'string') throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  const out = Buffer.from(s, 'base64url');
  if (out.toString('base64url') !== s) throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  // A plain Uint8Array view (no copy), so callers never see Buffer semantics.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

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
 * after the last byte (the low 4 bits of the last character when the length
 * is 2 mod 4, the low 2 bits when it is 3 mod 4).
 */
export function isB64uOfLength(s: unknown, n: number): boolean {
  if (typeof s !== 'string' || s.length !== Math.ceil((4 * n) / 3) || !ALPHABET.test(s)) return false;
  const rem = s.length % 4;
  return rem === 0 || (sextet(s.charCodeAt(s.length - 1)) & (rem === 2 ? 0x0f : 0x03)) === 0;
}
