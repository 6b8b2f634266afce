/**
 * Types shared by the HPKE (RFC 9180) modules. Everything here is re-exported
 * from `./index.ts`; the other files in this folder are internal.
 */

/** HPKE KEM identifiers implemented here: DHKEM(P-256), DHKEM(X25519), X-Wing. */
export type KemId = 0x0010 | 0x0020 | 0x647a;
/** HPKE KDF identifiers: HKDF-SHA256 (the one the project uses), HKDF-SHA384, HKDF-SHA512. */
export type KdfId = 0x0001 | 0x0002 | 0x0003;
/** HPKE AEAD identifiers: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, export-only. */
export type AeadId = 0x0001 | 0x0002 | 0x0003 | 0xffff;

/**
 * Raw serialized key pair, RFC 9180 §7.1.1 forms:
 * X25519 32/32, P-256 65 (uncompressed SEC1)/32, X-Wing 1216/32 (seed).
 */
export interface KemKeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

export interface Kem {
  readonly id: KemId;
  readonly name: string;
  readonly nSecret: number;
  readonly nEnc: number;
  readonly nPk: number;
  readonly nSk: number;
  generateKeyPair(): KemKeyPair;
  /** RFC 9180 §7.1.3 for the DHKEMs; X-Wing: GenerateKeyPairDerand(SHAKE256(ikm, 32)). */
  deriveKeyPair(ikm: Uint8Array): KemKeyPair;
  publicKeyFromPrivate(sk: Uint8Array): Uint8Array;
  /**
   * `randomness` is only for known-answer tests: DHKEM feeds it to DeriveKeyPair as ikmE,
   * X-Wing uses it as the draft's 64-byte `eseed`. Never pass a constant in production.
   */
  encap(pkR: Uint8Array, randomness?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array };
  /** Throws `EvsealError('ERR_OPEN_FAILED')` on every failure. */
  decap(enc: Uint8Array, skR: Uint8Array): Uint8Array;
  /** DHKEMs only. */
  authEncap?(pkR: Uint8Array, skS: Uint8Array, randomness?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array };
  /** DHKEMs only. Throws `EvsealError('ERR_OPEN_FAILED')` on every failure. */
  authDecap?(enc: Uint8Array, skR: Uint8Array, pkS: Uint8Array): Uint8Array;
}

export interface Kdf {
  readonly id: KdfId;
  readonly name: string;
  /** Output size of the hash in bytes. */
  readonly nH: number;
  /** node:crypto digest name. */
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  /** RFC 5869 HKDF-Extract. */
  extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array;
  /** RFC 5869 HKDF-Expand; `len` at most 255 * nH. */
  expand(prk: Uint8Array, info: Uint8Array, len: number): Uint8Array;
  /** RFC 9180 §4 LabeledExtract. */
  labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array;
  /** RFC 9180 §4 LabeledExpand. */
  labeledExpand(suiteId: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, len: number): Uint8Array;
}

export interface Aead {
  readonly id: AeadId;
  readonly name: string;
  readonly nK: number;
  readonly nN: number;
  readonly nT: number;
  /** Returns ct || tag. Throws `ERR_USAGE` for the export-only AEAD. */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array;
  /** Throws `EvsealError('ERR_OPEN_FAILED')` on any failure. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array): Uint8Array;
}

export interface Suite {
  readonly kem: Kem;
  readonly kdf: Kdf;
  readonly aead: Aead;
}
