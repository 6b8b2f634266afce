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
 * those at once.
 */
export function fromB64u(s: unknown, what = 'field'): Uint8Array {
  if (typeof s !== 'string') throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  const out = Buffer.from(s, 'base64url');
  if (out.toString('base64url') !== s) throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  // A plain Uint8Array view (no copy), so callers never see Buffer semantics.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
