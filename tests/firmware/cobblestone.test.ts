// C2SP chunked encryption (Cobblestone-128/256): every Wycheproof vector read
// in place from ../shared/vectors/wycheproof/, applied as that folder's
// c2sp_chunked_encryption.md says (streaming decryption with the
// PartialPlaintext rules, raw mode, encryption by salt injection and by raw
// mode), plus fast-check round-trip and tamper properties.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  CHUNK_SIZE,
  ChunkSealer,
  HEADER_SIZE,
  SEALED_CHUNK_SIZE,
  StreamDecryptor,
  beginDecryption,
  beginEncryption,
  ciphertextLength,
  type CobblestoneAead,
} from '../../src/core/chunked/cobblestone.js';
import { EvsealError } from '../../src/core/errors.js';

const DIR = fileURLToPath(new URL('../../../shared/vectors/wycheproof/', import.meta.url));

interface Vector {
  tcId: number;
  comment: string;
  key: string;
  ctx: string;
  ct: string;
  aeadKey?: string;
  baseNonce?: string;
  msgLength?: number;
  msgSha512?: string;
  result: 'valid' | 'invalid';
  flags: string[];
}
interface File {
  algorithm: string;
  numberOfTests: number;
  testGroups: { aead: CobblestoneAead; sha: string; tests: Vector[] }[];
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex');

/** Every chunk of `msg` through a sealer, the final one short (possibly empty). */
function sealAll(sealer: ChunkSealer, msg: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [];
  let off = 0;
  for (; off + CHUNK_SIZE <= msg.length; off += CHUNK_SIZE) out.push(sealer.seal(msg.subarray(off, off + CHUNK_SIZE)));
  out.push(sealer.seal(msg.subarray(off)));
  return Buffer.concat(out);
}

function encrypt(aead: CobblestoneAead, key: Uint8Array, ctx: Uint8Array, msg: Uint8Array, salt?: Uint8Array): Uint8Array {
  const { header, sealer } = beginEncryption(aead, key, ctx, salt);
  return Buffer.concat([header, sealAll(sealer, msg)]);
}

/**
 * Streams `ct` through a decryptor in pieces of `piece` bytes. Returns what
 * it emitted and the error, if any; after an error it checks that further
 * pushes and ends keep failing.
 */
function stream(d: StreamDecryptor, ct: Uint8Array, piece: number): { out: Uint8Array; err?: unknown } {
  const out: Uint8Array[] = [];
  try {
    for (let off = 0; off < ct.length; off += piece) out.push(d.push(ct.subarray(off, off + piece)));
    out.push(d.end());
    return { out: Buffer.concat(out) };
  } catch (err) {
    assert.throws(() => d.push(new Uint8Array(SEALED_CHUNK_SIZE)), EvsealError, 'keeps failing on push');
    assert.throws(() => d.end(), EvsealError, 'keeps failing on end');
    return { out: Buffer.concat(out), err };
  }
}

for (const name of ['c2sp_chunked_encryption_aes_128_gcm_test.json', 'c2sp_chunked_encryption_aes_256_gcm_test.json']) {
  const file = JSON.parse(readFileSync(DIR + name, 'utf8')) as File;
  test(`${file.algorithm}: every Wycheproof vector`, () => {
    let count = 0;
    for (const g of file.testGroups) {
      assert.equal(g.sha, 'SHA-512');
      for (const v of g.tests) {
        count++;
        const where = `${file.algorithm} tc ${v.tcId} (${v.comment})`;
        const key = hex(v.key);
        const ctx = hex(v.ctx);
        const ct = new Uint8Array(inflateSync(Buffer.from(v.ct, 'hex')));

        if (v.flags.includes('InvalidKeySize')) {
          assert.throws(() => new StreamDecryptor(g.aead, { inputKey: key, context: ctx }), EvsealError, where);
          assert.throws(() => beginDecryption(g.aead, key, ctx, ct.subarray(0, HEADER_SIZE)), EvsealError, where);
          continue;
        }
        for (const piece of [ct.length || 1, 1000, SEALED_CHUNK_SIZE]) {
          const r = stream(new StreamDecryptor(g.aead, { inputKey: key, context: ctx }), ct, piece);
          checkResult(v, r, `${where}, pieces of ${piece}`);
        }
        if (v.flags.includes('HeaderFailure')) {
          // Rejected while processing the header, before any chunk.
          if (ct.length >= HEADER_SIZE) assert.throws(() => beginDecryption(g.aead, key, ctx, ct.subarray(0, HEADER_SIZE)), EvsealError, where);
          continue;
        }
        // Raw mode: the same ciphertext without its header, under aeadKey/baseNonce.
        const raw = { key: hex(v.aeadKey!), baseNonce: hex(v.baseNonce!) };
        const rr = stream(new StreamDecryptor(g.aead, { raw }), ct.subarray(HEADER_SIZE), 4096);
        checkResult(v, rr, `${where}, raw mode`);

        if (v.result === 'valid') {
          const msg = rr.out;
          // Encryption 1: raw mode is deterministic.
          assert.ok(Buffer.from(sealAll(new ChunkSealer(g.aead, raw.key, raw.baseNonce), msg)).equals(ct.subarray(HEADER_SIZE)), `${where}: raw re-encryption`);
          // Encryption 2: salt injection reproduces the whole ciphertext.
          assert.ok(Buffer.from(encrypt(g.aead, key, ctx, msg, ct.subarray(0, 24))).equals(ct), `${where}: salt-injected re-encryption`);
          assert.equal(ciphertextLength(msg.length), ct.length, where);
        }
      }
    }
    assert.equal(count, file.numberOfTests);
  });
}

function checkResult(v: Vector, r: { out: Uint8Array; err?: unknown }, where: string): void {
  if (v.result === 'valid') {
    assert.equal(r.err, undefined, `${where}: ${String(r.err)}`);
    assert.equal(r.out.length, v.msgLength, where);
    assert.equal(sha512(r.out), v.msgSha512, where);
    return;
  }
  assert.ok(r.err instanceof EvsealError, `${where}: must fail`);
  if (v.flags.includes('PartialPlaintext')) {
    // At most the valid prefix, never a byte beyond it.
    assert.ok(r.out.length <= v.msgLength!, `${where}: emitted ${r.out.length} > ${v.msgLength}`);
    if (r.out.length === v.msgLength) assert.equal(sha512(r.out), v.msgSha512, where);
  } else {
    assert.equal(r.out.length, 0, `${where}: nothing may be emitted`);
  }
}

// --- properties ---------------------------------------------------------------

const AEADS: CobblestoneAead[] = ['AEAD_AES_128_GCM', 'AEAD_AES_256_GCM'];
const keyFor = (a: CobblestoneAead): Uint8Array => randomBytes(a === 'AEAD_AES_128_GCM' ? 16 : 32);
/** Lengths around the chunk boundaries, up to three chunks. */
const msgLen = fc.oneof(fc.integer({ min: 0, max: 3 * CHUNK_SIZE + 17 }), fc.constantFrom(0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE));

test('round trip through streaming decryption, any piece size', () => {
  fc.assert(
    fc.property(fc.constantFrom(...AEADS), msgLen, fc.integer({ min: 1, max: 40000 }), fc.uint8Array({ maxLength: 40 }), (aead, n, piece, ctx) => {
      const key = keyFor(aead);
      const msg = randomBytes(n);
      const ct = encrypt(aead, key, ctx, msg);
      assert.equal(ct.length, ciphertextLength(n));
      const r = stream(new StreamDecryptor(aead, { inputKey: key, context: ctx }), ct, piece);
      assert.equal(r.err, undefined);
      assert.ok(Buffer.from(r.out).equals(msg));
    }),
    { numRuns: 60 },
  );
});

/** A refused ciphertext fails and emits only a chunk-aligned prefix of the true message. */
function assertRefused(aead: CobblestoneAead, key: Uint8Array, ct: Uint8Array, msg: Uint8Array, piece: number): void {
  const r = stream(new StreamDecryptor(aead, { inputKey: key }), ct, piece);
  assert.ok(r.err instanceof EvsealError, 'must fail');
  assert.ok(r.out.length <= msg.length && r.out.length % CHUNK_SIZE === 0);
  assert.ok(Buffer.from(r.out).equals(msg.subarray(0, r.out.length)));
}

test('any flipped bit is refused', () => {
  fc.assert(
    fc.property(fc.constantFrom(...AEADS), msgLen, fc.nat(), fc.integer({ min: 0, max: 7 }), (aead, n, at, bit) => {
      const key = keyFor(aead);
      const msg = randomBytes(n);
      const ct = Buffer.from(encrypt(aead, key, new Uint8Array(0), msg));
      ct[at % ct.length]! ^= 1 << bit;
      assertRefused(aead, key, ct, msg, 5000);
    }),
    { numRuns: 80 },
  );
});

test('truncation, appended bytes and chunk reordering are refused', () => {
  fc.assert(
    fc.property(fc.constantFrom(...AEADS), fc.integer({ min: CHUNK_SIZE, max: 3 * CHUNK_SIZE + 100 }), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 20000 }), (aead, n, cut, extra) => {
      const key = keyFor(aead);
      const msg = randomBytes(n);
      const ct = encrypt(aead, key, new Uint8Array(0), msg);
      assertRefused(aead, key, ct.subarray(0, cut % ct.length), msg, 7000);
      assertRefused(aead, key, Buffer.concat([ct, extra]), msg, 7000);
      // swap the first two chunks
      const c0 = ct.subarray(HEADER_SIZE, HEADER_SIZE + SEALED_CHUNK_SIZE);
      const rest = ct.subarray(HEADER_SIZE + SEALED_CHUNK_SIZE);
      const c1 = rest.subarray(0, Math.min(SEALED_CHUNK_SIZE, rest.length));
      const swapped = Buffer.concat([ct.subarray(0, HEADER_SIZE), c1, c0, rest.subarray(c1.length)]);
      if (!swapped.equals(ct)) assertRefused(aead, key, swapped, msg, 7000);
    }),
    { numRuns: 40 },
  );
});

test('the sealer enforces the chunking rules', () => {
  const { sealer } = beginEncryption('AEAD_AES_256_GCM', randomBytes(32), new Uint8Array(0));
  assert.throws(() => sealer.seal(new Uint8Array(CHUNK_SIZE + 1)), EvsealError);
  sealer.seal(new Uint8Array(CHUNK_SIZE));
  sealer.seal(new Uint8Array(5));
  assert.throws(() => sealer.seal(new Uint8Array(1)), EvsealError, 'nothing after the final chunk');
});
