import { EvsealError } from '../errors.js';
import { sha256 } from './algorithms.js';
import { DerError, TAG, parseDer } from './der.js';

export type PemLabel = 'CERTIFICATE' | 'X509 CRL' | 'CERTIFICATE REQUEST';

const B64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Strict PEM (RFC 7468 §3, "strict" textual encoding) with exactly one block:
 *
 *   - optional whitespace before `-----BEGIN <label>-----` and after
 *     `-----END <label>-----`; no other text, no headers, no second block;
 *   - line breaks LF or CRLF;
 *   - base64 (standard alphabet) in lines of exactly 64 characters, the last
 *     one 1..64, padding only at the very end; the text must be the one
 *     canonical encoding of the decoded bytes;
 *   - the decoded bytes must be exactly one DER SEQUENCE (no trailing bytes).
 *
 * Throws EvsealError ERR_INVALID_INPUT otherwise.
 */
export function pemToDer(pem: string, label: PemLabel): Uint8Array {
  const bad = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `PEM ${label}: ${why}`);
  };
  if (typeof pem !== 'string') bad('not a string');
  const lines = pem.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '').split(/\r?\n/);
  if (lines.length < 3) bad('too short');
  if (lines[0] !== `-----BEGIN ${label}-----`) bad('missing or wrong BEGIN line');
  if (lines[lines.length - 1] !== `-----END ${label}-----`) bad('missing or wrong END line (or trailing text)');
  const body = lines.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const l = body[i]!;
    const last = i === body.length - 1;
    if (!B64_LINE.test(l)) bad('invalid base64 line');
    if (last ? l.length > 64 : l.length !== 64) bad('base64 lines must be 64 characters (the last one at most 64)');
    if (!last && l.includes('=')) bad('padding before the last line');
  }
  const b64 = body.join('');
  const der = new Uint8Array(Buffer.from(b64, 'base64'));
  if (Buffer.from(der).toString('base64') !== b64) bad('non-canonical base64');
  try {
    if (parseDer(der).tag !== TAG.SEQUENCE) bad('content is not a DER SEQUENCE');
  } catch (e) {
    if (e instanceof DerError) bad(`content is not one DER value (${e.message})`);
    throw e;
  }
  return der;
}

/** PEM with 64-character lines, LF line breaks and a final LF. */
export function derToPem(der: Uint8Array, label: PemLabel): string {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new EvsealError('ERR_INVALID_INPUT', 'derToPem: empty input');
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** 'sha256:' + lowercase hex of SHA-256 over the DER certificate. */
export function certFingerprint(der: Uint8Array): string {
  return 'sha256:' + Buffer.from(sha256(der)).toString('hex');
}

export const FINGERPRINT_RE = /^sha256:[0-9a-f]{64}$/;
