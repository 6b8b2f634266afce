import { DHKEM_P256, DHKEM_X25519, XWING, suite, type Kem, type Suite } from './hpke/index.js';
import { SUITE_IDS, type KemName, type SuiteName } from './suites.js';

const KEMS: Record<KemName, Kem> = { XWING, X25519: DHKEM_X25519, P256: DHKEM_P256 };

export function kemByName(name: KemName): Kem {
  return KEMS[name];
}

const suiteCache = new Map<SuiteName, Suite>();
export function hpkeSuite(name: SuiteName): Suite {
  let s = suiteCache.get(name);
  if (!s) {
    const ids = SUITE_IDS[name];
    s = suite(ids.kem, ids.kdf, ids.aead);
    suiteCache.set(name, s);
  }
  return s;
}
