import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The encodings a leaked secret could take in a file: raw, hex, base64 and base64url. */
export function encodings(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  return [...new Set([secret, b.toString('hex'), b.toString('base64'), b.toString('base64url')])];
}

export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/**
 * Every (secret, file, encoding) where a secret occurs. Files are read as
 * latin1 so binary database pages are searched byte for byte.
 */
export function scan(files: string[], secrets: string[]): { secret: string; file: string; form: string }[] {
  const hits: { secret: string; file: string; form: string }[] = [];
  for (const file of files) {
    const text = readFileSync(file).toString('latin1');
    for (const secret of secrets) {
      for (const form of encodings(secret)) if (text.includes(Buffer.from(form, 'utf8').toString('latin1'))) hits.push({ secret, file, form });
    }
  }
  return hits;
}
