/**
 * HPKE (RFC 9180) over node:crypto, generic over KEM / KDF / AEAD, plus the
 * X-Wing hybrid KEM. Synchronous throughout.
 *
 * Suites: KEM DHKEM(P-256, HKDF-SHA256) 0x0010, DHKEM(X25519, HKDF-SHA256)
 * 0x0020, X-Wing 0x647A; KDF HKDF-SHA256 0x0001 (HKDF-SHA384/512 0x0002/0x0003
 * also work); AEAD AES-128-GCM 0x0001, AES-256-GCM 0x0002,
 * ChaCha20-Poly1305 0x0003, export-only 0xFFFF. All four modes.
 *
 * Errors: every decapsulation / decryption failure is
 * EvsealError('ERR_OPEN_FAILED', 'decryption failed'); a bad recipient key on
 * the sending side is ERR_CRYPTO; impossible requests (unsupported suite,
 * psk without pskId, auth with X-Wing, sealing with export-only) are
 * ERR_USAGE; sequence-number overflow is ERR_CRYPTO.
 */
import { EvsealError } from '../errors.js';
import { AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, EXPORT_ONLY } from './aead.js';
import { DHKEM_P256, DHKEM_X25519 } from './dhkem.js';
import { HKDF_SHA256, HKDF_SHA384, HKDF_SHA512 } from './kdf.js';
import type { Aead, Kdf, Kem, Suite } from './types.js';
import { XWING } from './xwing.js';

export type { Aead, AeadId, Kdf, KdfId, Kem, KemId, KemKeyPair, Suite } from './types.js';
export type { RecipientOptions, SenderOptions } from './context.js';
export { RecipientContext, SenderContext, open, seal, setupRecipient, setupSender } from './context.js';
export { XWING_DRAFT } from './xwing.js';
export { AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, DHKEM_P256, DHKEM_X25519, EXPORT_ONLY, HKDF_SHA256, HKDF_SHA384, HKDF_SHA512, XWING };

const KEMS: ReadonlyMap<number, Kem> = new Map<number, Kem>([
  [0x0010, DHKEM_P256],
  [0x0020, DHKEM_X25519],
  [0x647a, XWING],
]);
const KDFS: ReadonlyMap<number, Kdf> = new Map<number, Kdf>([
  [0x0001, HKDF_SHA256],
  [0x0002, HKDF_SHA384],
  [0x0003, HKDF_SHA512],
]);
const AEADS: ReadonlyMap<number, Aead> = new Map<number, Aead>([
  [0x0001, AES_128_GCM],
  [0x0002, AES_256_GCM],
  [0x0003, CHACHA20_POLY1305],
  [0xffff, EXPORT_ONLY],
]);

const suites = new Map<number, Suite>();

const hex4 = (n: number): string => '0x' + (n >>> 0).toString(16).padStart(4, '0');

/**
 * The suite for (kem_id, kdf_id, aead_id). The same frozen object is returned
 * for the same ids, so per-suite constants are computed once.
 * Throws EvsealError('ERR_USAGE') for anything unsupported.
 */
export function suite(kemId: number, kdfId: number, aeadId: number): Suite {
  const k = KEMS.get(kemId);
  const f = KDFS.get(kdfId);
  const a = AEADS.get(aeadId);
  if (k === undefined || f === undefined || a === undefined) {
    throw new EvsealError('ERR_USAGE', `HPKE: unsupported suite (${hex4(kemId)}, ${hex4(kdfId)}, ${hex4(aeadId)})`);
  }
  const key = kemId * 0x1_0000_0000 + kdfId * 0x1_0000 + aeadId;
  let s = suites.get(key);
  if (s === undefined) {
    s = Object.freeze({ kem: k, kdf: f, aead: a });
    suites.set(key, s);
  }
  return s;
}
