import { EvsealError } from './errors.js';

/** Unpadded base64url (RFC 4648 §5). */
export function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/**
 * Strict decoder: rejects padding, characters outside the alphabet, impossible
 * lengths and non-zero trailing bits, so every byte string has exactly one
 * accepted encoding (re-encoding must give back the input).
 */
export function fromB64u(s: unknown, what = 'field'): Uint8Array {
  if (typeof s !== 'string' || !ALPHABET.test(s) || s.length % 4 === 1) {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  }
  const out = new Uint8Array(Buffer.from(s, 'base64url'));
  if (b64u(out) !== s) throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical base64url`);
  return out;
}
