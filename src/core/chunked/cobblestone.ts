/**
 * C2SP chunked encryption (c2sp.org/chunked-encryption, "Cobblestone"),
 * pure and I/O-free: the caller moves bytes, this module derives keys,
 * seals and opens chunks, and enforces the chunking, counter and
 * final-chunk rules.
 *
 *   key || base nonce || commitment = HKDF-Expand(SHA-512, input key,
 *       "c2sp.org/chunked-encryption@v1+" || aead || 0x00 || salt || context)
 *   ciphertext = salt (24) || commitment (32) || AEAD(chunk 0) || ... || AEAD(final chunk)
 *
 * Chunks hold 16 KiB of plaintext; the final one is always shorter (and may
 * be empty), which is the end-of-message signal. Chunk i is sealed under
 * base nonce XOR i (big-endian, as wide as the nonce), with an empty AAD.
 * Raw mode (the spec's appendix) starts from a key and base nonce and has
 * no salt or commitment.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { HKDF_SHA512 } from '../hpke/index.js';
import { EvsealError } from '../errors.js';
import { equalBytes } from '../bytes.js';

export type CobblestoneAead = 'AEAD_AES_128_GCM' | 'AEAD_AES_256_GCM';

export const CHUNK_SIZE = 16384;
export const TAG_SIZE = 16;
export const SALT_SIZE = 24;
export const COMMITMENT_SIZE = 32;
export const HEADER_SIZE = SALT_SIZE + COMMITMENT_SIZE;
/** Encrypted size of a full chunk; a final chunk is strictly smaller. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
const NONCE_SIZE = 12;
/** The spec's hard limit: the counter must stay below 2^38. */
const MAX_CHUNKS = 2 ** 38;

const PARAMS: Record<CobblestoneAead, { cipher: 'aes-128-gcm' | 'aes-256-gcm'; keySize: number }> = {
  AEAD_AES_128_GCM: { cipher: 'aes-128-gcm', keySize: 16 },
  AEAD_AES_256_GCM: { cipher: 'aes-256-gcm', keySize: 32 },
};

const PREFIX = Buffer.from('c2sp.org/chunked-encryption@v1+', 'ascii');

/** Every chunk/commitment failure: one opaque error, as everywhere in evseal. */
const fail = (): EvsealError => new EvsealError('ERR_OPEN_FAILED', 'decryption failed');

export function keySize(aead: CobblestoneAead): number {
  return PARAMS[aead].keySize;
}

/** Total ciphertext length (with header unless raw) of a message of `n` bytes. */
export function ciphertextLength(n: number, raw = false): number {
  const full = Math.floor(n / CHUNK_SIZE);
  return (raw ? 0 : HEADER_SIZE) + full * SEALED_CHUNK_SIZE + (n - full * CHUNK_SIZE) + TAG_SIZE;
}

export interface DerivedKeys {
  key: Uint8Array;
  baseNonce: Uint8Array;
  commitment: Uint8Array;
}

/** The spec's key derivation. Refuses an input key of the wrong size (Wycheproof InvalidKeySize). */
export function deriveKeys(aead: CobblestoneAead, inputKey: Uint8Array, salt: Uint8Array, context: Uint8Array): DerivedKeys {
  const { keySize: nk } = PARAMS[aead];
  if (inputKey.length !== nk) throw new EvsealError('ERR_CRYPTO', `chunked encryption: input key must be ${nk} bytes`);
  if (salt.length !== SALT_SIZE) throw new EvsealError('ERR_CRYPTO', `chunked encryption: salt must be ${SALT_SIZE} bytes`);
  const info = Buffer.concat([PREFIX, Buffer.from(aead, 'ascii'), Buffer.from([0]), salt, context]);
  const okm = HKDF_SHA512.expand(inputKey, info, nk + NONCE_SIZE + COMMITMENT_SIZE);
  return {
    key: okm.slice(0, nk),
    baseNonce: okm.slice(nk, nk + NONCE_SIZE),
    commitment: okm.slice(nk + NONCE_SIZE),
  };
}

/** base nonce XOR counter, the counter big-endian in the low 5 bytes (< 2^38). */
function chunkNonce(baseNonce: Uint8Array, counter: number): Buffer {
  const n = Buffer.from(baseNonce);
  let c = counter;
  for (let i = NONCE_SIZE - 1; i >= NONCE_SIZE - 5; i--) {
    n[i]! ^= c % 256;
    c = Math.floor(c / 256);
  }
  return n;
}

abstract class ChunkState {
  protected readonly cipher: 'aes-128-gcm' | 'aes-256-gcm';
  protected readonly key: Uint8Array;
  protected readonly baseNonce: Uint8Array;
  protected counter = 0;
  protected done = false;

  constructor(aead: CobblestoneAead, key: Uint8Array, baseNonce: Uint8Array) {
    const p = PARAMS[aead];
    if (key.length !== p.keySize) throw new EvsealError('ERR_CRYPTO', `chunked encryption: key must be ${p.keySize} bytes`);
    if (baseNonce.length !== NONCE_SIZE) throw new EvsealError('ERR_CRYPTO', `chunked encryption: base nonce must be ${NONCE_SIZE} bytes`);
    this.cipher = p.cipher;
    this.key = key;
    this.baseNonce = baseNonce;
  }

  get finished(): boolean {
    return this.done;
  }
}

/**
 * Seals chunks in order. Each call takes one whole chunk: exactly CHUNK_SIZE
 * bytes, or fewer for the final one; after the final chunk it refuses more.
 */
export class ChunkSealer extends ChunkState {
  /** Encrypted chunk (ciphertext || tag). `out`, if given, receives it at `offset` instead of a new buffer. */
  seal(pt: Uint8Array, out?: Uint8Array, offset = 0): Uint8Array {
    if (this.done) throw new EvsealError('ERR_USAGE', 'chunked encryption: message already finished');
    if (pt.length > CHUNK_SIZE) throw new EvsealError('ERR_USAGE', 'chunked encryption: chunk larger than 16 KiB');
    if (this.counter >= MAX_CHUNKS) throw new EvsealError('ERR_CRYPTO', 'chunked encryption: chunk counter limit reached');
    const c = createCipheriv(this.cipher, this.key, chunkNonce(this.baseNonce, this.counter));
    const body = c.update(pt);
    c.final();
    const tag = c.getAuthTag();
    this.counter++;
    if (pt.length < CHUNK_SIZE) this.done = true;
    const dst = out ?? new Uint8Array(pt.length + TAG_SIZE);
    dst.set(body, offset);
    dst.set(tag, offset + body.length);
    return out ? dst.subarray(offset, offset + pt.length + TAG_SIZE) : dst;
  }
}

/**
 * Opens chunks in order. A chunk of SEALED_CHUNK_SIZE bytes is a full one;
 * a shorter one (>= TAG_SIZE) is the final one. After any failure every
 * later call fails too, and nothing is accepted after the final chunk.
 */
export class ChunkOpener extends ChunkState {
  #failed = false;

  open(ct: Uint8Array): Uint8Array {
    if (this.#failed || this.done || ct.length < TAG_SIZE || ct.length > SEALED_CHUNK_SIZE || this.counter >= MAX_CHUNKS) {
      this.#failed = true;
      throw fail();
    }
    const n = ct.length - TAG_SIZE;
    const d = createDecipheriv(this.cipher, this.key, chunkNonce(this.baseNonce, this.counter));
    d.setAuthTag(ct.subarray(n));
    const pt = d.update(ct.subarray(0, n));
    try {
      d.final();
    } catch {
      this.#failed = true;
      throw fail();
    }
    this.counter++;
    if (n < CHUNK_SIZE) this.done = true;
    return pt;
  }
}

/** Starts a message: the 56-byte header and the sealer for its chunks. `salt` is for known-answer tests only. */
export function beginEncryption(aead: CobblestoneAead, inputKey: Uint8Array, context: Uint8Array, salt: Uint8Array = randomBytes(SALT_SIZE)): { header: Uint8Array; sealer: ChunkSealer } {
  const k = deriveKeys(aead, inputKey, salt, context);
  const header = new Uint8Array(HEADER_SIZE);
  header.set(salt, 0);
  header.set(k.commitment, SALT_SIZE);
  return { header, sealer: new ChunkSealer(aead, k.key, k.baseNonce) };
}

/**
 * Checks a message header (salt || commitment) before any chunk is opened.
 * A wrong key size is ERR_CRYPTO; a wrong commitment, the opaque ERR_OPEN_FAILED.
 */
export function beginDecryption(aead: CobblestoneAead, inputKey: Uint8Array, context: Uint8Array, header: Uint8Array): ChunkOpener {
  if (header.length !== HEADER_SIZE) throw fail();
  const k = deriveKeys(aead, inputKey, header.subarray(0, SALT_SIZE), context);
  if (!equalBytes(k.commitment, header.subarray(SALT_SIZE))) throw fail();
  return new ChunkOpener(aead, k.key, k.baseNonce);
}

/**
 * Streaming decryption over arbitrary byte pieces. `push` returns the
 * plaintext of every chunk completed so far: a full-size encrypted chunk can
 * never be the final one, so no look-ahead is needed. `end` opens the
 * remaining bytes as the final chunk. Only authenticated bytes are ever
 * returned; after an error, every later call throws.
 */
export class StreamDecryptor {
  readonly #aead: CobblestoneAead;
  readonly #inputKey: Uint8Array | undefined;
  readonly #context: Uint8Array;
  #opener: ChunkOpener | undefined;
  #buf = new Uint8Array(0);
  #failed = false;
  #ended = false;

  /** `raw` gives the key and base nonce directly (raw mode: no header). */
  constructor(aead: CobblestoneAead, o: { inputKey: Uint8Array; context?: Uint8Array } | { raw: { key: Uint8Array; baseNonce: Uint8Array } }) {
    this.#aead = aead;
    if ('inputKey' in o) {
      if (o.inputKey.length !== keySize(aead)) throw new EvsealError('ERR_CRYPTO', `chunked encryption: input key must be ${keySize(aead)} bytes`);
      this.#inputKey = o.inputKey;
      this.#context = o.context ?? new Uint8Array(0);
    } else {
      this.#context = new Uint8Array(0);
      this.#opener = new ChunkOpener(aead, o.raw.key, o.raw.baseNonce);
    }
  }

  #guard<T>(fn: () => T): T {
    if (this.#failed || this.#ended) {
      this.#failed = true;
      throw fail();
    }
    try {
      return fn();
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }

  push(bytes: Uint8Array): Uint8Array {
    return this.#guard(() => {
      const buf = this.#buf.length === 0 ? bytes : Buffer.concat([this.#buf, bytes]);
      let pos = 0;
      if (!this.#opener) {
        if (buf.length < HEADER_SIZE) {
          this.#buf = Uint8Array.from(buf);
          return new Uint8Array(0);
        }
        this.#opener = beginDecryption(this.#aead, this.#inputKey!, this.#context, buf.subarray(0, HEADER_SIZE));
        pos = HEADER_SIZE;
      }
      const out: Uint8Array[] = [];
      while (buf.length - pos >= SEALED_CHUNK_SIZE) {
        out.push(this.#opener.open(buf.subarray(pos, pos + SEALED_CHUNK_SIZE)));
        pos += SEALED_CHUNK_SIZE;
      }
      this.#buf = Uint8Array.from(buf.subarray(pos));
      return out.length === 1 ? out[0]! : Buffer.concat(out);
    });
  }

  /** Opens the final chunk; throws if the message is truncated, extended or modified. */
  end(): Uint8Array {
    return this.#guard(() => {
      if (!this.#opener) throw fail(); // shorter than a header
      const pt = this.#opener.open(this.#buf); // < TAG_SIZE (incl. empty: final chunk missing) fails
      if (!this.#opener.finished) throw fail();
      this.#ended = true;
      this.#buf = new Uint8Array(0);
      return pt;
    });
  }
}
