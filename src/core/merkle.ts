import * as nodeCrypto from 'node:crypto';
import { equalBytes } from './bytes.js';

/**
 * The Merkle Tree Hash of RFC 9162 §2.1 (the same tree as RFC 6962), with
 * SHA-256: the tree Certificate Transparency logs use, so any CT tooling can
 * check our roots and proofs.
 *
 *   MTH({})       = SHA-256()
 *   MTH({d})      = SHA-256(0x00 || d)
 *   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k the largest power of two < n
 *
 * The 0x00/0x01 prefixes keep a leaf from ever being read as an inner node.
 * Sizes and indexes are JavaScript numbers, so the arithmetic below divides
 * instead of shifting (bit operators would wrap at 2^31).
 */

export const HASH_SIZE = 32;

/** crypto.hash (Node >= 20.12) hashes a short input in one native call; older Node 20 falls back to createHash. */
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;

function sha256(...parts: Uint8Array[]): Uint8Array {
  if (oneShot) return new Uint8Array(oneShot('sha256', parts.length === 1 ? parts[0]! : Buffer.concat(parts), 'buffer'));
  const h = nodeCrypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const LEAF = new Uint8Array([0]);
const NODE = new Uint8Array([1]);

export const emptyRoot = (): Uint8Array => sha256();
export const leafHash = (data: Uint8Array): Uint8Array => sha256(LEAF, data);
export const nodeHash = (left: Uint8Array, right: Uint8Array): Uint8Array => sha256(NODE, left, right);

/** log2(n) when n is a power of two, else -1. */
function exactLog2(n: number): number {
  let level = 0;
  for (let p = 1; p <= n; p *= 2, level++) if (p === n) return level;
  return -1;
}
const isPow2 = (n: number): boolean => exactLog2(n) >= 0;
/** The largest power of two strictly smaller than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
const half = (n: number): number => Math.floor(n / 2);
const odd = (n: number): boolean => n % 2 === 1;

/** MTH over leaf hashes by the definition's recursion: O(n), for small ranges (a block of a log). */
export function rootOf(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  const k = splitPoint(leaves.length);
  return nodeHash(rootOf(leaves.slice(0, k)), rootOf(leaves.slice(k)));
}

/**
 * The hash of the perfect subtree of 2^level leaves that starts at leaf
 * index * 2^level. Proofs are assembled from these, whoever stores them.
 */
export type PerfectNode = (level: number, index: number) => Uint8Array;

/**
 * MTH(D[start:start+count]) for the ranges the RFC's recursions visit: start
 * is a multiple of a power of two >= count, so the range splits into at most
 * log2(count) perfect subtrees.
 */
function rangeHash(start: number, count: number, node: PerfectNode): Uint8Array {
  const level = exactLog2(count);
  if (level >= 0) return node(level, start / count);
  const k = splitPoint(count);
  return nodeHash(node(exactLog2(k), start / k), rangeHash(start + k, count - k, node));
}

/** The root of the tree of the first `size` leaves. */
export function rootAt(size: number, node: PerfectNode): Uint8Array {
  return size === 0 ? emptyRoot() : rangeHash(0, size, node);
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`merkle: ${what} must be a non-negative integer`);
}

/** RFC 9162 §2.1.3.1: the inclusion path of leaf `index` in the tree of `size` leaves, leaf side first. */
export function inclusionPath(index: number, size: number, node: PerfectNode): Uint8Array[] {
  checkSize(index, 'index');
  checkSize(size, 'size');
  if (index >= size) throw new RangeError('merkle: index must be below the tree size');
  const path: Uint8Array[] = [];
  // PATH(m, D[start:start+n]), unrolled from the root down; siblings are collected root first.
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      path.push(rangeHash(start + k, n - k, node));
      n = k;
    } else {
      path.push(rangeHash(start, k, node));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return path.reverse();
}

/** RFC 9162 §2.1.4.1: the consistency proof from the tree of `from` leaves to the tree of `to` leaves. */
export function consistencyPath(from: number, to: number, node: PerfectNode): Uint8Array[] {
  checkSize(from, 'from');
  checkSize(to, 'to');
  if (from > to) throw new RangeError('merkle: from must not exceed to');
  if (from === 0 || from === to) return [];
  // SUBPROOF(m, D[start:start+n], b), unrolled from the root down.
  const path: Uint8Array[] = [];
  let start = 0;
  let n = to;
  let m = from;
  let whole = true; // b: the old tree's root is the subtree itself, so the verifier already has it
  while (m !== n) {
    const k = splitPoint(n);
    if (m <= k) {
      path.push(rangeHash(start + k, n - k, node));
      n = k;
    } else {
      path.push(rangeHash(start, k, node));
      start += k;
      m -= k;
      n -= k;
      whole = false;
    }
  }
  if (!whole) path.push(rangeHash(start, m, node));
  return path.reverse();
}

const wellFormed = (hashes: readonly Uint8Array[]): boolean => hashes.every((h) => h.length === HASH_SIZE);

/** RFC 9162 §2.1.3.2. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, path: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (leaf.length !== HASH_SIZE || root.length !== HASH_SIZE || !wellFormed(path)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false; // more hashes than the tree has levels
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      // climb past the levels where this node has no right sibling
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalBytes(r, root);
}

/** RFC 9162 §2.1.4.2. */
export function verifyConsistency(from: number, to: number, fromRoot: Uint8Array, toRoot: Uint8Array, path: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || from > to) return false;
  if (fromRoot.length !== HASH_SIZE || toRoot.length !== HASH_SIZE || !wellFormed(path)) return false;
  if (from === to) return path.length === 0 && equalBytes(fromRoot, toRoot);
  if (from === 0) return path.length === 0;
  if (path.length === 0) return false;
  const proof = isPow2(from) ? [fromRoot, ...path] : [...path];
  let fn = from - 1;
  let sn = to - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = proof[0] as Uint8Array;
  let sr = fr;
  for (const c of proof.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalBytes(fr, fromRoot) && equalBytes(sr, toRoot);
}

/** A growable array of 32-byte hashes in one buffer: no per-hash object. */
class HashArray {
  #buf = new Uint8Array(HASH_SIZE * 64);
  length = 0;
  push(h: Uint8Array): void {
    if ((this.length + 1) * HASH_SIZE > this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
    }
    this.#buf.set(h, this.length * HASH_SIZE);
    this.length++;
  }
  at(i: number): Uint8Array | undefined {
    return i < this.length ? this.#buf.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE) : undefined;
  }
}

/**
 * An append-only Merkle tree kept as its frontier (the compact range [0, size):
 * one perfect subtree root per set bit of size), which gives the root after
 * each append in O(log n). Perfect subtrees of height >= `keepFrom` are also
 * retained, for proofs: keepFrom 0 keeps every node (2 hashes per leaf); a
 * larger value keeps 2^-keepFrom of that and leaves the lower levels to be
 * recomputed from the leaves of one block.
 */
export class MerkleTree {
  readonly keepFrom: number;
  #size = 0;
  /** roots of the frontier's perfect subtrees, largest (leftmost) first */
  readonly #frontier: Uint8Array[] = [];
  readonly #levels: HashArray[] = [];

  constructor(keepFrom = 0) {
    if (!Number.isInteger(keepFrom) || keepFrom < 0 || keepFrom > 30) throw new RangeError('merkle: keepFrom out of range');
    this.keepFrom = keepFrom;
  }

  get size(): number {
    return this.#size;
  }

  append(leaf: Uint8Array): void {
    if (leaf.length !== HASH_SIZE) throw new RangeError('merkle: a leaf hash is 32 bytes');
    let h = leaf;
    let level = 0;
    let index = this.#size;
    this.#keep(level, h);
    // Each odd index completes a perfect subtree with the frontier's last one.
    while (odd(index)) {
      h = nodeHash(this.#frontier.pop() as Uint8Array, h);
      level++;
      index = half(index);
      this.#keep(level, h);
    }
    this.#frontier.push(h);
    this.#size++;
  }

  #keep(level: number, h: Uint8Array): void {
    if (level < this.keepFrom) return;
    const l = level - this.keepFrom;
    while (this.#levels.length <= l) this.#levels.push(new HashArray());
    (this.#levels[l] as HashArray).push(h);
  }

  /** The current root (MTH of every leaf so far). */
  root(): Uint8Array {
    if (this.#size === 0) return emptyRoot();
    let r = this.#frontier[this.#frontier.length - 1] as Uint8Array;
    for (let i = this.#frontier.length - 2; i >= 0; i--) r = nodeHash(this.#frontier[i] as Uint8Array, r);
    return r;
  }

  /** A retained perfect subtree, or undefined when it is below keepFrom or not complete yet. */
  node(level: number, index: number): Uint8Array | undefined {
    if (level < this.keepFrom) return undefined;
    return this.#levels[level - this.keepFrom]?.at(index);
  }
}
