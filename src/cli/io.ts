import { readFileSync } from 'node:fs';
import { EvsealError } from '../core/errors.js';
import { writeFileAtomic } from '../keystore/atomic-file.js';

/** Reads a file, or all of stdin when no path (or '-') is given. */
export function readInput(path: string | undefined): Buffer {
  if (path === undefined || path === '-') return readFileSync(0);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new EvsealError('ERR_NOT_FOUND', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Envelope text from a file or stdin, with at most one trailing newline removed. */
export function readEnvelopeText(path: string | undefined): string {
  const s = readInput(path).toString('utf8');
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s;
}

/** Writes atomically to a file, or to stdout when no path (or '-') is given. */
export function writeOutput(path: string | undefined, data: string | Uint8Array, mode = 0o600): void {
  if (path === undefined || path === '-') {
    process.stdout.write(data);
    return;
  }
  writeFileAtomic(path, data, mode);
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) + '\n');
}

/**
 * The wall clock. EVSEAL_NOW (ISO 8601) replaces it for tests and demos; it
 * can never move verification time behind the trusted-time mark.
 */
export function wallClock(): () => number {
  const fixed = process.env.EVSEAL_NOW;
  if (fixed === undefined || fixed === '') return () => Date.now();
  const t = Date.parse(fixed);
  if (Number.isNaN(t)) throw new EvsealError('ERR_USAGE', 'EVSEAL_NOW is not an ISO 8601 time');
  return () => t;
}
