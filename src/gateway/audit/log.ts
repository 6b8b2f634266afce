import type { KeyObject } from 'node:crypto';
import { b64u } from '../../core/base64url.js';
import { EvsealError } from '../../core/errors.js';
import { consistencyPath, inclusionPath, MerkleTree, rootOf, verifyConsistency, verifyInclusion, type PerfectNode } from '../../core/merkle.js';
import type { Receipt } from '../context.js';
import type { AuditEntry, GatewayStore, TreeHead } from '../store/store.js';
import { entryLeafHash, rootBytes, signTreeHead, verifyTreeHead } from './leaf.js';

/** The key that signs tree heads and the gateway id inside them. */
export interface AuditSignerKey {
  id: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Where the store records who signs its tree heads, so `evseal audit` can check them without the private key. */
export const SIGNER_SETTINGS = { gateway: 'audit.gateway', publicKey: 'audit.publicKey' } as const;

/**
 * Perfect subtrees of 2^8 leaves and up stay in memory (a quarter of a byte
 * per entry); the few hashes below that a proof needs are recomputed from
 * the entries of at most two blocks of 256, read from the store.
 */
const BLOCK_LEVEL = 8;
const BLOCK = 2 ** BLOCK_LEVEL;
const READ_CHUNK = 4096;

const spki = (k: KeyObject): string => b64u(k.export({ type: 'spki', format: 'der' }));

/**
 * The gateway's append-only Merkle log of audit entries (RFC 9162 tree).
 * The store appends the entries, inside its own mailbox transactions;
 * sync() folds the new ones into the tree in index order and signs a tree
 * head. Receipts and proofs refer to those signed heads.
 */
export class AuditLog {
  readonly #store: GatewayStore;
  readonly #signer: AuditSignerKey;
  readonly #now: () => number;
  readonly #tree = new MerkleTree(BLOCK_LEVEL);
  #head: TreeHead | undefined;
  #running: Promise<TreeHead> | undefined;
  #next: Promise<TreeHead> | undefined;
  /** Leaf hashes of entries a caller just committed, by index, not yet in the tree: folded in without reading them back. */
  readonly #handed = new Map<number, Uint8Array>();
  /** The size the next run must reach at least; undefined: ask the store. */
  #want: number | undefined = 0;

  private constructor(store: GatewayStore, signer: AuditSignerKey, now: () => number) {
    this.#store = store;
    this.#signer = signer;
    this.#now = now;
  }

  /**
   * Rebuilds the tree from every stored entry and checks it against the
   * latest stored tree head (its size, root and signature): a store edited
   * or truncated while the gateway was down is refused with ERR_STATE.
   * Then signs a head over any entries appended after it (a crash between
   * a commit and its sync), so the log always has a current signed head.
   */
  static async open(store: GatewayStore, signer: AuditSignerKey, now: () => number = Date.now): Promise<AuditLog> {
    const log = new AuditLog(store, signer, now);
    const recorded = await log.#checkSigner();
    const latest = await store.latestTreeHead();
    const size = await store.auditSize();
    if (latest) {
      if (latest.size > size) throw new EvsealError('ERR_STATE', `audit log: the latest tree head covers ${latest.size} entries but the store holds ${size}`);
      await log.#incorporate(latest.size);
      const root = b64u(log.#tree.root());
      if (root !== latest.root) throw new EvsealError('ERR_STATE', `audit log: the entries do not match the tree head at size ${latest.size}`);
      if (!verifyTreeHead(signer.id, signer.publicKey, latest)) throw new EvsealError('ERR_STATE', `audit log: the tree head at size ${latest.size} is not signed by this gateway key`);
      log.#head = latest;
    }
    if (!recorded) {
      await store.putSetting(SIGNER_SETTINGS.gateway, signer.id);
      await store.putSetting(SIGNER_SETTINGS.publicKey, spki(signer.publicKey));
    }
    await log.sync();
    return log;
  }

  /** Refuses a signer other than the one recorded; returns whether one is recorded. */
  async #checkSigner(): Promise<boolean> {
    const id = await this.#store.getSetting(SIGNER_SETTINGS.gateway);
    const key = await this.#store.getSetting(SIGNER_SETTINGS.publicKey);
    if (id === undefined && key === undefined) return false;
    if (id !== this.#signer.id || key !== spki(this.#signer.publicKey)) {
      throw new EvsealError('ERR_STATE', `audit log: this store's tree heads are signed as gateway '${id}' with another key; it cannot be continued as '${this.#signer.id}' with this one`);
    }
    return true;
  }

  /** Appends the entries [tree size, to) to the tree: those handed in from memory, the others read from the store. */
  async #incorporate(to: number): Promise<void> {
    while (this.#tree.size < to) {
      const from = this.#tree.size;
      const known = this.#handed.get(from);
      if (known) {
        this.#handed.delete(from);
        this.#tree.append(known);
        continue;
      }
      let end = Math.min(to, from + READ_CHUNK);
      for (let i = from + 1; i < end; i++) if (this.#handed.has(i)) end = i;
      const entries = await this.#store.auditEntries(from, end);
      if (entries.length !== end - from) throw new EvsealError('ERR_STATE', `audit log: entries ${from}..${end - 1} are not all in the store`);
      for (const e of entries) this.#tree.append(entryLeafHash(e));
    }
  }

  /**
   * Entries the caller has just committed, at these indexes: the next sync
   * folds them in from here instead of reading them back from the store.
   * They must be exactly what the store wrote (the router builds both from
   * the same values); a mismatch shows as a root that the stored entries do
   * not reproduce, which AuditLog.open and `evseal audit verify` refuse.
   */
  committed(items: readonly { index: number; entry: AuditEntry }[]): void {
    for (const { index, entry } of items) if (index >= this.#tree.size) this.#handed.set(index, entryLeafHash(entry));
  }

  /**
   * Folds in the entries appended since the last call and, if there are
   * any, signs and stores a new tree head; returns the latest head, which
   * covers every entry appended before the call (with `upTo`: at least the
   * entries below that index, without asking the store for its size).
   * Calls never interleave, and those that arrive while one runs share the
   * next run: one signature per batch. The store may keep only the newest of several heads signed
   * between its transactions (see SqliteStore.putTreeHead).
   */
  sync(upTo?: number): Promise<TreeHead> {
    // A caller that names the entries it needs (indexes below upTo) spares the store a size query.
    this.#want = upTo === undefined || this.#want === undefined ? undefined : Math.max(this.#want, upTo);
    if (this.#next) return this.#next;
    if (!this.#running) return this.#start();
    const after = this.#running.catch(() => undefined);
    this.#next = after.then(() => {
      this.#next = undefined;
      return this.#start();
    });
    return this.#next;
  }

  #start(): Promise<TreeHead> {
    const run = this.#syncOnce().finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #syncOnce(): Promise<TreeHead> {
    const want = this.#want;
    this.#want = 0;
    const size = want === undefined ? await this.#store.auditSize() : Math.max(want, this.#tree.size);
    if (size < this.#tree.size) throw new EvsealError('ERR_STATE', `audit log: the store holds ${size} entries, fewer than the ${this.#tree.size} already in the tree`);
    await this.#incorporate(size);
    if (this.#head && this.#head.size === this.#tree.size) return this.#head;
    // never earlier than the previous head, whatever the clock does
    const time = Math.max(this.#now(), this.#head?.time ?? 0);
    const head = signTreeHead(this.#signer.id, this.#signer.privateKey, { size: this.#tree.size, root: b64u(this.#tree.root()), time });
    await this.#store.putTreeHead(head);
    this.#head = head;
    return head;
  }

  /** The receipt for the entry at `index`: the signed head that covers it, and the index. */
  receipt(index: number, head: TreeHead): Receipt {
    if (!Number.isSafeInteger(index) || index < 0 || index >= head.size) throw new EvsealError('ERR_USAGE', `audit receipt: index ${index} is not covered by the tree head of size ${head.size}`);
    return { index, size: head.size, root: head.root, time: head.time, sig: head.sig };
  }

  /** RFC 9162 inclusion path (base64url hashes, leaf side first) of entry `index` in the tree of `size` entries. */
  async inclusionProof(index: number, size: number): Promise<string[]> {
    this.#checkSize(size, 1);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new EvsealError('ERR_INVALID_INPUT', 'audit proof: index must be below size');
    const node = await this.#nodes([index, size - 1], size);
    return inclusionPath(index, size, node).map(b64u);
  }

  /** RFC 9162 consistency proof (base64url hashes) from the tree of `from` entries to the tree of `to`. */
  async consistencyProof(from: number, to: number): Promise<string[]> {
    this.#checkSize(to, 0);
    if (!Number.isSafeInteger(from) || from < 0 || from > to) throw new EvsealError('ERR_INVALID_INPUT', 'audit proof: from must be between 0 and to');
    if (from === 0 || from === to) return [];
    const node = await this.#nodes([from - 1, to - 1], to);
    return consistencyPath(from, to, node).map(b64u);
  }

  #checkSize(size: number, min: number): void {
    if (!Number.isSafeInteger(size) || size < min || size > this.#tree.size) {
      throw new EvsealError('ERR_INVALID_INPUT', `audit proof: size must be between ${min} and ${this.#tree.size}`);
    }
  }

  /**
   * A node source for proofs in the tree of `size` entries. Every node below
   * BLOCK_LEVEL that such a proof needs lies in the block of a path's leaf
   * (siblings) or in the last block (the ragged right edge), so reading the
   * blocks of those leaves is enough.
   */
  async #nodes(leaves: number[], size: number): Promise<PerfectNode> {
    const blocks = new Map<number, Uint8Array[]>();
    for (const leaf of leaves) {
      const b = Math.floor(leaf / BLOCK);
      if (blocks.has(b)) continue;
      const from = b * BLOCK;
      const to = Math.min(from + BLOCK, size);
      const entries = await this.#store.auditEntries(from, to);
      if (entries.length !== to - from) throw new EvsealError('ERR_STATE', `audit log: entries ${from}..${to - 1} are not all in the store`);
      blocks.set(b, entries.map(entryLeafHash));
    }
    return (level, index) => {
      const found = level >= BLOCK_LEVEL ? this.#tree.node(level, index) : this.#fromBlock(blocks, level, index);
      if (!found) throw new EvsealError('ERR_STATE', `audit log: no node at level ${level}, index ${index}`);
      return found;
    };
  }

  #fromBlock(blocks: Map<number, Uint8Array[]>, level: number, index: number): Uint8Array | undefined {
    const first = index * 2 ** level;
    const leaves = blocks.get(Math.floor(first / BLOCK));
    if (!leaves) return undefined;
    const offset = first % BLOCK;
    return offset + 2 ** level <= leaves.length ? rootOf(leaves.slice(offset, offset + 2 ** level)) : undefined;
  }
}

/**
 * An endpoint's check of a receipt: the gateway's signature over the tree
 * head, and an index inside it. The index itself is not signed; that the
 * entry is there is what an inclusion proof against the root shows.
 */
export function verifyReceipt(receipt: Receipt, gatewayPublicKey: KeyObject, gatewayId: string): boolean {
  const { index, size } = receipt;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  return verifyTreeHead(gatewayId, gatewayPublicKey, { size, root: receipt.root, time: receipt.time, sig: receipt.sig });
}

function pathBytes(path: readonly string[]): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  for (const p of path) {
    const h = rootBytes(p);
    if (!h) return undefined;
    out.push(h);
  }
  return out;
}

/** Checks an inclusion proof from the gateway: `entry` is leaf `index` of the tree with `head`'s size and root. */
export function checkInclusion(entry: AuditEntry, index: number, head: Pick<TreeHead, 'size' | 'root'>, path: readonly string[]): boolean {
  const root = rootBytes(head.root);
  const p = pathBytes(path);
  return root !== undefined && p !== undefined && verifyInclusion(index, head.size, entryLeafHash(entry), p, root);
}

/** Checks a consistency proof from the gateway: the older head's tree is a prefix of the newer head's. */
export function checkConsistency(older: Pick<TreeHead, 'size' | 'root'>, newer: Pick<TreeHead, 'size' | 'root'>, path: readonly string[]): boolean {
  const r1 = rootBytes(older.root);
  const r2 = rootBytes(newer.root);
  const p = pathBytes(path);
  return r1 !== undefined && r2 !== undefined && p !== undefined && verifyConsistency(older.size, newer.size, r1, r2, p);
}
