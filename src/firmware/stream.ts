import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { EvsealError } from '../core/errors.js';
import { CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK_SIZE, TAG_SIZE, beginDecryption, beginEncryption, ciphertextLength } from '../core/chunked/cobblestone.js';
import { AEAD, imageContext, sealDigest } from './content.js';
import { SEALED_DIGEST_SIZE } from './package.js';

/**
 * The image streams of pack and unpack, in constant memory: blocks of
 * CHUNKS_PER_BLOCK Cobblestone chunks, double-buffered so that the next read
 * and the previous write run (on libuv's thread pool) while the current
 * block is encrypted and hashed. Hashing on a worker thread was measured
 * too (bench/firmware.ts): on this two-core machine it was no faster and
 * cost ~15 MiB of RSS, so both SHA-256 digests run inline.
 */
export const CHUNKS_PER_BLOCK = 64;
const PLAIN_BLOCK = CHUNKS_PER_BLOCK * CHUNK_SIZE;
const SEALED_BLOCK = CHUNKS_PER_BLOCK * SEALED_CHUNK_SIZE;

/** A chunk, the commitment or the length did not authenticate; `detail` is for the security log. */
export class ImageRejected extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

/** Reads exactly `len` bytes at `position` into `buf`. */
async function readExactly(fh: FileHandle, buf: Buffer, len: number, position: number): Promise<Buffer> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, position + got);
    if (bytesRead === 0) throw new EvsealError('ERR_STATE', 'file ended early (was it changed while being read?)');
    got += bytesRead;
  }
  return buf.subarray(0, len);
}

/** Keeps a promise that may never be awaited (an error path) from becoming an unhandled rejection. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** A sequential writer with one write in flight: `write` returns once the previous write is done. */
function writer(fh: FileHandle, start: number): { write: (b: Uint8Array) => Promise<void>; flush: () => Promise<void> } {
  let pos = start;
  let pending: Promise<unknown> = Promise.resolve();
  return {
    async write(b) {
      await pending;
      pending = quiet(fh.write(b, 0, b.length, pos));
      pos += b.length;
    },
    async flush() {
      await pending;
    },
  };
}

/**
 * Encrypts `size` bytes of `input` into `output` at `offset`: Cobblestone
 * header, chunks, then the sealed plaintext digest. Returns the SHA-256 of
 * everything written (the manifest's ciphertext digest).
 */
export async function encryptImage(o: {
  input: FileHandle;
  size: number;
  output: FileHandle;
  offset: number;
  contentKey: Uint8Array;
  packageId: Uint8Array;
  onProgress?: (done: number, total: number) => void;
}): Promise<Uint8Array> {
  const ctHash = createHash('sha256');
  const ptHash = createHash('sha256');
  const { header, sealer } = beginEncryption(AEAD, o.contentKey, imageContext(o.packageId));
  const out = writer(o.output, o.offset);
  const emit = async (b: Uint8Array): Promise<void> => {
    ctHash.update(b);
    await out.write(b);
  };
  await emit(header);
  const inBufs = [Buffer.alloc(PLAIN_BLOCK), Buffer.alloc(PLAIN_BLOCK)];
  const outBufs = [Buffer.alloc(SEALED_BLOCK + TAG_SIZE), Buffer.alloc(SEALED_BLOCK + TAG_SIZE)]; // + an empty final chunk
  let done = 0;
  let next = quiet(readExactly(o.input, inBufs[0]!, Math.min(PLAIN_BLOCK, o.size), 0));
  for (let k = 0; !sealer.finished; k++) {
    const block = await next;
    done += block.length;
    if (done < o.size) next = quiet(readExactly(o.input, inBufs[(k + 1) % 2]!, Math.min(PLAIN_BLOCK, o.size - done), done));
    ptHash.update(block);
    const outBuf = outBufs[k % 2]!;
    let n = 0;
    let off = 0;
    for (; off + CHUNK_SIZE <= block.length; off += CHUNK_SIZE) n += sealer.seal(block.subarray(off, off + CHUNK_SIZE), outBuf, n).length;
    // The final chunk is shorter than CHUNK_SIZE, possibly empty: the spec's end-of-message signal.
    if (done === o.size) n += sealer.seal(block.subarray(off), outBuf, n).length;
    await emit(outBuf.subarray(0, n));
    o.onProgress?.(done, o.size);
  }
  await emit(sealDigest(o.contentKey, o.packageId, ptHash.digest()));
  await out.flush();
  return new Uint8Array(ctHash.digest());
}

/**
 * Decrypts the shared part at `offset` of `input` (its length already
 * checked against `size`) into `output`. Only authenticated chunks are
 * written. Returns the SHA-256 of the shared part, the SHA-256 of the
 * plaintext and the sealed digest, for the caller to check before it keeps
 * the output.
 */
export async function decryptImage(o: {
  input: FileHandle;
  offset: number;
  size: number;
  output: FileHandle;
  contentKey: Uint8Array;
  packageId: Uint8Array;
  onProgress?: (done: number, total: number) => void;
}): Promise<{ ciphertextDigest: Uint8Array; plaintextDigest: Uint8Array; sealedDigest: Uint8Array }> {
  const ctHash = createHash('sha256');
  const ptHash = createHash('sha256');
  let pos = o.offset;
  const header = await readExactly(o.input, Buffer.alloc(HEADER_SIZE), HEADER_SIZE, pos);
  pos += HEADER_SIZE;
  ctHash.update(header);
  let opener;
  try {
    opener = beginDecryption(AEAD, o.contentKey, imageContext(o.packageId), header);
  } catch {
    throw new ImageRejected('image commitment');
  }
  const chunksEnd = o.offset + ciphertextLength(o.size);
  const inBufs = [Buffer.alloc(SEALED_BLOCK), Buffer.alloc(SEALED_BLOCK)];
  const outBufs = [Buffer.alloc(PLAIN_BLOCK), Buffer.alloc(PLAIN_BLOCK)];
  const out = writer(o.output, 0);
  let written = 0;
  let chunk = 0;
  let next = quiet(readExactly(o.input, inBufs[0]!, Math.min(SEALED_BLOCK, chunksEnd - pos), pos));
  for (let k = 0; pos < chunksEnd; k++) {
    const block = await next;
    pos += block.length;
    if (pos < chunksEnd) next = quiet(readExactly(o.input, inBufs[(k + 1) % 2]!, Math.min(SEALED_BLOCK, chunksEnd - pos), pos));
    ctHash.update(block);
    const outBuf = outBufs[k % 2]!;
    let n = 0;
    for (let off = 0; off < block.length; off += SEALED_CHUNK_SIZE, chunk++) {
      let pt: Buffer;
      try {
        pt = opener.open(block.subarray(off, Math.min(off + SEALED_CHUNK_SIZE, block.length))) as Buffer;
      } catch {
        throw new ImageRejected(`image chunk ${chunk}`);
      }
      pt.copy(outBuf, n);
      n += pt.length;
    }
    const plain = outBuf.subarray(0, n);
    ptHash.update(plain);
    await out.write(plain);
    written += n;
    o.onProgress?.(written, o.size);
  }
  if (!opener.finished || written !== o.size) throw new ImageRejected('image length');
  const sealedDigest = new Uint8Array(await readExactly(o.input, Buffer.alloc(SEALED_DIGEST_SIZE), SEALED_DIGEST_SIZE, pos));
  ctHash.update(sealedDigest);
  await out.flush();
  return { ciphertextDigest: new Uint8Array(ctHash.digest()), plaintextDigest: new Uint8Array(ptHash.digest()), sealedDigest };
}
