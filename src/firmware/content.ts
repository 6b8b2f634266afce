import { createCipheriv, createDecipheriv } from 'node:crypto';
import { HKDF_SHA512 } from '../core/hpke/index.js';
import { concat, utf8 } from '../core/bytes.js';
import { EvsealError } from '../core/errors.js';

/**
 * The encrypted part of a package, under the package's content key:
 *
 *   image  Cobblestone-256 (AES-256-GCM, HKDF-SHA-512), input key = content key,
 *          context = "evseal/v1 firmware image" || 0x00 || packageId (16 bytes)
 *   digest AES-256-GCM(key = HKDF-Expand-SHA-512(content key, "evseal/v1 firmware digest", 32),
 *          nonce = 12 zero bytes, aad = packageId, SHA-256(image)): 48 bytes
 *
 * The digest key is used for exactly one encryption (fresh content key per
 * package), so the fixed nonce is never reused. The plaintext digest is
 * therefore only readable with a key slot: a CDN cannot test a guessed image
 * against it.
 */
export const AEAD = 'AEAD_AES_256_GCM' as const;
export const CONTENT_KEY_SIZE = 32;

export function imageContext(packageId: Uint8Array): Uint8Array {
  return concat(utf8('evseal/v1 firmware image\0'), packageId);
}

function digestKey(contentKey: Uint8Array): Uint8Array {
  return HKDF_SHA512.expand(contentKey, utf8('evseal/v1 firmware digest'), 32);
}

const ZERO_NONCE = Buffer.alloc(12);

export function sealDigest(contentKey: Uint8Array, packageId: Uint8Array, digest: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', digestKey(contentKey), ZERO_NONCE);
  c.setAAD(packageId);
  const body = c.update(digest);
  c.final();
  return concat(body, c.getAuthTag());
}

/** Throws ERR_OPEN_FAILED if the sealed digest does not authenticate. */
export function openDigest(contentKey: Uint8Array, packageId: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length !== 48) throw new EvsealError('ERR_OPEN_FAILED', 'decryption failed');
  const d = createDecipheriv('aes-256-gcm', digestKey(contentKey), ZERO_NONCE);
  d.setAAD(packageId);
  d.setAuthTag(sealed.subarray(32));
  const pt = d.update(sealed.subarray(0, 32));
  try {
    d.final();
  } catch {
    throw new EvsealError('ERR_OPEN_FAILED', 'decryption failed');
  }
  return new Uint8Array(pt);
}
