/**
 * RFC 9180 §7.3 AEADs over node:crypto's synchronous cipher API.
 * Ciphertexts are ct || 16-byte tag. Every open failure is the one opaque
 * ERR_OPEN_FAILED; nothing of the plaintext is returned before the tag checks.
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes, type CipherChaCha20Poly1305Types } from 'node:crypto';
import { EvsealError } from '../errors.js';
import type { Aead, AeadId } from './types.js';

const TAG = 16;

export const openFailed = (): EvsealError => new EvsealError('ERR_OPEN_FAILED', 'decryption failed');

/** View a Buffer as a plain Uint8Array (no copy) so callers get one type everywhere. */
export const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

type CipherName = CipherGCMTypes | CipherChaCha20Poly1305Types;

function makeAead(id: AeadId, name: string, cipher: CipherName, nK: number): Aead {
  return Object.freeze({
    id,
    name,
    nK,
    nN: 12,
    nT: TAG,
    seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
      // The cast picks one overload; both cipher families take the same options here.
      const c = createCipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: TAG });
      if (aad.length > 0) c.setAAD(aad);
      const body = c.update(pt);
      const fin = c.final();
      const tag = c.getAuthTag();
      const out = new Uint8Array(body.length + fin.length + TAG);
      out.set(body, 0);
      if (fin.length > 0) out.set(fin, body.length);
      out.set(tag, body.length + fin.length);
      return out;
    },
    open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array): Uint8Array {
      if (ct.length < TAG) throw openFailed();
      let body: Buffer | undefined;
      try {
        const d = createDecipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: TAG });
        d.setAuthTag(ct.subarray(ct.length - TAG));
        if (aad.length > 0) d.setAAD(aad);
        body = d.update(ct.subarray(0, ct.length - TAG));
        const fin = d.final(); // throws on tag mismatch
        if (fin.length === 0) return u8(body);
        const pt = new Uint8Array(body.length + fin.length);
        pt.set(body, 0);
        pt.set(fin, body.length);
        body.fill(0);
        return pt;
      } catch {
        body?.fill(0);
        throw openFailed();
      }
    },
  });
}

export const AES_128_GCM: Aead = makeAead(0x0001, 'AES-128-GCM', 'aes-128-gcm', 16);
export const AES_256_GCM: Aead = makeAead(0x0002, 'AES-256-GCM', 'aes-256-gcm', 32);
export const CHACHA20_POLY1305: Aead = makeAead(0x0003, 'ChaCha20-Poly1305', 'chacha20-poly1305', 32);

/** RFC 9180 §5.3 export-only mode: no key or nonce is derived; seal/open are refused. */
export const EXPORT_ONLY: Aead = Object.freeze({
  id: 0xffff,
  name: 'Export-only',
  nK: 0,
  nN: 0,
  nT: 0,
  seal(): Uint8Array {
    throw new EvsealError('ERR_USAGE', 'export-only suite cannot seal');
  },
  open(): Uint8Array {
    throw new EvsealError('ERR_USAGE', 'export-only suite cannot open');
  },
});
