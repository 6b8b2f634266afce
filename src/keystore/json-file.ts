import { existsSync, readFileSync } from 'node:fs';
import { EvsealError } from '../core/errors.js';

/** Reads a local JSON file: ERR_NOT_FOUND when missing (with `missing` as the message), ERR_STATE when unparsable. */
export function readJsonFile(path: string, missing: string): unknown {
  if (!existsSync(path)) throw new EvsealError('ERR_NOT_FOUND', missing);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new EvsealError('ERR_STATE', `${path} is not valid JSON`);
  }
}
