import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvsealError } from '../core/errors.js';
import { checkShape } from '../core/canonical-json.js';
import { writeFileAtomic } from '../keystore/atomic-file.js';
import { checkModel, parseVersion } from './version.js';

/**
 * ID_DIR/firmware.json: the model this device is and the firmware version it
 * runs. Unpack refuses another model and anything not newer; it rewrites
 * this file (atomically) only after an image was fully verified and renamed
 * into place. The file is not secret; it is the device's own record.
 */
const FILE = 'firmware.json';

export function readInstalled(idDir: string): { model: string; version: string } | undefined {
  const p = join(idDir, FILE);
  if (!existsSync(p)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    throw new EvsealError('ERR_STATE', `${FILE} is not valid JSON`);
  }
  try {
    const o = checkShape(v, [['model', 'string'], ['version', 'string']], FILE);
    return { model: checkModel(o.model), version: (parseVersion(o.version), o.version as string) };
  } catch (e) {
    throw new EvsealError('ERR_STATE', `${FILE}: ${(e as Error).message}`);
  }
}

export function writeInstalled(idDir: string, v: { model: string; version: string }): void {
  checkModel(v.model);
  parseVersion(v.version);
  writeFileAtomic(join(idDir, FILE), JSON.stringify({ model: v.model, version: v.version }) + '\n', 0o644);
}
