import { EvsealError } from '../core/errors.js';

/**
 * Firmware versions are dotted decimal numbers, 1 to 4 components
 * ("2", "2.1", "2.1.7", "2.1.7.3"), each 0..2^53-1 without leading zeros, at
 * most 64 characters. They compare numerically component by component, a
 * missing component counting as 0 ("2.1" equals "2.1.0"). Anything else
 * (suffixes like "-rc1", build metadata, empty components) is refused
 * rather than guessed at: a device must never misorder two versions.
 */
const VERSION_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,3}$/;

export function parseVersion(v: unknown): number[] {
  if (typeof v !== 'string' || v.length > 64 || !VERSION_RE.test(v)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'firmware version must be 1 to 4 dotted decimal numbers without leading zeros (e.g. 2.1.7)');
  }
  const parts = v.split('.').map(Number);
  if (!parts.every(Number.isSafeInteger)) throw new EvsealError('ERR_INVALID_INPUT', 'firmware version component too large');
  return parts;
}

/** < 0 when a is older than b, 0 when equal, > 0 when newer. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 4; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Models are the printable ASCII names of a device type, 1..64 characters. */
const MODEL_RE = /^[A-Za-z0-9._:+-]{1,64}$/;

export function checkModel(m: unknown): string {
  if (typeof m !== 'string' || !MODEL_RE.test(m)) throw new EvsealError('ERR_INVALID_INPUT', 'firmware model must be 1..64 characters of [A-Za-z0-9._:+-]');
  return m;
}
