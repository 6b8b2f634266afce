/**
 * Diffie-Hellman groups over node:crypto, behind one small interface the
 * DHKEM and X-Wing code composes.
 *
 * X25519 keys are imported as JWK: ~10 µs for a public key against ~100 µs
 * for SPKI DER and ~700 µs for PKCS#8 DER on Node 20 / OpenSSL 3. P-256 uses
 * the `ECDH` class, which takes raw SEC1 points directly and validates them
 * (an off-curve point throws), and is several times cheaper than importing
 * P-256 JWK KeyObjects.
 *
 * The groups cache nothing; ./dhkem.ts keeps the handles of static keys
 * (and only those) for as long as the caller keeps the key's buffer.
 */
import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  timingSafeEqual,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { b64u } from '../base64url.js';
import { u8 } from './aead.js';

/** A group's private and public handles are opaque to callers. */
export interface DhGroup<Priv, Pub> {
  readonly nPk: number;
  readonly nSk: number;
  readonly nDh: number;
  /** Throws (any error) if `sk` is not a valid serialized private key. */
  importPriv(sk: Uint8Array): Priv;
  /** Throws (any error) if `pk` is not a valid serialized public key. */
  importPub(pk: Uint8Array): Pub;
  /** Serialized public key of a private handle. */
  publicOf(priv: Priv): Uint8Array;
  /** DH(priv, pub); throws on an invalid or all-zero result. */
  dh(priv: Priv, pub: Pub): Uint8Array;
  /** A fresh uniformly random valid private key (serialized). */
  randomSk(): Uint8Array;
  /** A fresh ephemeral key pair whose private half never leaves its handle. */
  ephemeral(): { priv: Priv; pk: Uint8Array };
}

const ZERO32 = new Uint8Array(32);

// ---------------------------------------------------------------- X25519

function x25519ImportPriv(sk: Uint8Array): KeyObject {
  if (sk.length !== 32) throw new RangeError('X25519: private key must be 32 bytes');
  // Node requires `x` to be a string but ignores it for private OKP keys and
  // derives the public key from `d` (RFC vectors in the tests pin this).
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(sk), x: '' }, format: 'jwk' });
}

function x25519ImportPub(pk: Uint8Array): KeyObject {
  if (pk.length !== 32) throw new RangeError('X25519: public key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pk) }, format: 'jwk' });
}

function x25519PublicOf(priv: KeyObject): Uint8Array {
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  // Copy out of Buffer's shared pool so the key owns its ArrayBuffer.
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url'));
}

/**
 * X25519 with the RFC 7748 §6.1 all-zero check. OpenSSL already fails the
 * derivation for an all-zero output (Node 20 throws ERR_OSSL_FAILED_DURING_DERIVATION);
 * the check here does not rely on that.
 */
function x25519Dh(priv: KeyObject, pub: KeyObject): Uint8Array {
  const s = diffieHellman({ privateKey: priv, publicKey: pub });
  if (s.length !== 32 || timingSafeEqual(s, ZERO32)) {
    s.fill(0);
    throw new RangeError('X25519: all-zero shared secret');
  }
  return u8(s);
}

export const X25519_GROUP: DhGroup<KeyObject, KeyObject> = Object.freeze({
  nPk: 32,
  nSk: 32,
  nDh: 32,
  importPriv: x25519ImportPriv,
  importPub: x25519ImportPub,
  publicOf: x25519PublicOf,
  dh: x25519Dh,
  randomSk: (): Uint8Array => u8(randomBytes(32)),
  ephemeral(): { priv: KeyObject; pk: Uint8Array } {
    // generateKeyPairSync is slightly cheaper than random bytes + JWK import, and keeps skE inside OpenSSL.
    // The public key is encoded by the key generation itself, never exported from the KeyObject afterwards:
    // on Node 20 a garbage collection during a JWK export of a generated key can destroy the finished
    // key-generation job, whose destructor takes the lock the export holds, and the process deadlocks
    // (tests/hpke/keygen-deadlock.test.ts).
    // (@types/node has no overload for a JWK encoding: the result is typed here.)
    const { privateKey, publicKey } = generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } } as object) as unknown as { privateKey: KeyObject; publicKey: { x: string } };
    return { priv: privateKey, pk: new Uint8Array(Buffer.from(publicKey.x, 'base64url')) };
  },
});

/**
 * Raw X25519(k, u) on 32-byte strings, with the all-zero rejection. Internal
 * (tests use it for the Wycheproof vectors); the public API is the KEM.
 */
export function x25519(sk: Uint8Array, pk: Uint8Array): Uint8Array {
  return x25519Dh(x25519ImportPriv(sk), x25519ImportPub(pk));
}

// ---------------------------------------------------------------- P-256

/** Group order n of P-256, big-endian. */
export const P256_ORDER = new Uint8Array(Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex'));

/**
 * Constant-time check 1 <= sk <= n - 1 for a 32-byte big-endian scalar.
 * (No early exit: the loop always reads every byte.)
 */
export function p256ScalarInRange(sk: Uint8Array): boolean {
  if (sk.length !== 32) return false;
  let lt = 0; // sk < n decided
  let gt = 0; // sk > n decided
  let nz = 0;
  for (let i = 0; i < 32; i++) {
    const a = sk[i]!;
    const b = P256_ORDER[i]!;
    const undecided = 1 ^ (lt | gt);
    lt |= undecided & (((a - b) >>> 31) & 1);
    gt |= undecided & (((b - a) >>> 31) & 1);
    nz |= a;
  }
  return (lt & ((nz | -nz) >>> 31)) === 1;
}

function p256ImportPriv(sk: Uint8Array): ECDH {
  if (!p256ScalarInRange(sk)) throw new RangeError('P-256: invalid private key');
  const e = createECDH('prime256v1');
  e.setPrivateKey(sk);
  return e;
}

/** Uncompressed SEC1 only (0x04 || X || Y); on-curve validation happens in computeSecret. */
function p256ImportPub(pk: Uint8Array): Uint8Array {
  if (pk.length !== 65 || pk[0] !== 0x04) throw new RangeError('P-256: public key must be an uncompressed point');
  return pk;
}

function p256RandomSk(): Uint8Array {
  for (;;) {
    const sk = u8(randomBytes(32));
    if (p256ScalarInRange(sk)) return sk;
  }
}

export const P256_GROUP: DhGroup<ECDH, Uint8Array> = Object.freeze({
  nPk: 65,
  nSk: 32,
  nDh: 32,
  importPriv: p256ImportPriv,
  importPub: p256ImportPub,
  publicOf: (priv: ECDH): Uint8Array => u8(priv.getPublicKey()),
  // Returns the x-coordinate (RFC 9180 §7.1.1); throws for points not on the curve.
  dh: (priv: ECDH, pub: Uint8Array): Uint8Array => u8(priv.computeSecret(pub)),
  randomSk: p256RandomSk,
  ephemeral(): { priv: ECDH; pk: Uint8Array } {
    // Random bytes + setPrivateKey is cheaper than ECDH.generateKeys() (which also needs padding).
    const sk = p256RandomSk();
    try {
      const priv = p256ImportPriv(sk);
      return { priv, pk: u8(priv.getPublicKey()) };
    } finally {
      sk.fill(0);
    }
  },
});
