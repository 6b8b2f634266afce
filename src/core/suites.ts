import { EvsealError } from './errors.js';

/**
 * Named HPKE suites an endpoint may accept. The name is what travels in
 * bundles and envelope headers; the ids are RFC 9180's (X-Wing: 0x647A).
 * Order in DEFAULT_SUITES is preference order.
 */
export const SUITE_IDS = {
  'XWING-SHA256-AES256GCM': { kem: 0x647a, kdf: 0x0001, aead: 0x0002 },
  'X25519-SHA256-AES256GCM': { kem: 0x0020, kdf: 0x0001, aead: 0x0002 },
  'X25519-SHA256-CHACHA20POLY1305': { kem: 0x0020, kdf: 0x0001, aead: 0x0003 },
  'P256-SHA256-AES256GCM': { kem: 0x0010, kdf: 0x0001, aead: 0x0002 },
} as const;
export type SuiteName = keyof typeof SUITE_IDS;
export const SUITE_NAMES = Object.keys(SUITE_IDS) as SuiteName[];

/** Post-quantum hybrid first; classical X25519 for peers without ML-KEM. */
export const DEFAULT_SUITES: readonly SuiteName[] = ['XWING-SHA256-AES256GCM', 'X25519-SHA256-AES256GCM'];

export const KEM_NAMES = { 0x647a: 'XWING', 0x0020: 'X25519', 0x0010: 'P256' } as const;
export type KemName = (typeof KEM_NAMES)[keyof typeof KEM_NAMES];
export const KEM_IDS: Record<KemName, number> = { XWING: 0x647a, X25519: 0x0020, P256: 0x0010 };

export function isSuiteName(x: unknown): x is SuiteName {
  return typeof x === 'string' && Object.hasOwn(SUITE_IDS, x);
}
export function isKemName(x: unknown): x is KemName {
  return typeof x === 'string' && Object.hasOwn(KEM_IDS, x);
}

export function kemOfSuite(s: SuiteName): KemName {
  return KEM_NAMES[SUITE_IDS[s].kem];
}

export function parseSuiteList(list: string[], what: string): SuiteName[] {
  if (list.length === 0) throw new EvsealError('ERR_INVALID_INPUT', `${what}: empty suite list`);
  const seen = new Set<string>();
  for (const s of list) {
    if (!isSuiteName(s)) throw new EvsealError('ERR_INVALID_INPUT', `${what}: unknown suite ${JSON.stringify(s)}`);
    if (seen.has(s)) throw new EvsealError('ERR_INVALID_INPUT', `${what}: duplicate suite ${s}`);
    seen.add(s);
  }
  return list as SuiteName[];
}
