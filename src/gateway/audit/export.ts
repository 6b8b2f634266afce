import { b64u } from '../../core/base64url.js';
import { checkShape, parseCanonical, type Shape } from '../../core/canonical-json.js';
import { EvsealError } from '../../core/errors.js';
import { consistencyPath, MerkleTree, rootAt, verifyConsistency, type PerfectNode } from '../../core/merkle.js';
import { publicKeyFromB64u } from '../identity.js';
import type { AuditEntry, GatewayStore, TreeHead } from '../store/store.js';
import { ENTRY_SHAPE, entryLeafHash, rootBytes, TREE_HEAD_SHAPE, verifyTreeHead } from './leaf.js';
import { SIGNER_SETTINGS } from './log.js';

/**
 * A self-contained copy of a gateway's audit log (docs/audit.md): who signs
 * it, every entry in index order, every signed tree head in size order.
 * Canonical JSON on one line, so it has exactly one encoding.
 */
export interface AuditExport {
  v: 1;
  gateway: { id: string; publicKey: string };
  entries: AuditEntry[];
  treeHeads: TreeHead[];
}

const EXPORT_SHAPE: Shape = [
  ['v', 'int'],
  ['gateway', 'object'],
  ['entries', 'object[]'],
  ['treeHeads', 'object[]'],
];
const GATEWAY_SHAPE: Shape = [
  ['id', 'string'],
  ['publicKey', 'string'],
];
const READ_CHUNK = 4096;

/**
 * Reads the audit log from a store, also while the gateway runs: heads
 * first, then the entry count, then the entries. The gateway appends
 * entries before it signs a head over them, so this order never sees a head
 * that covers entries it did not read.
 */
export async function readAuditLog(store: GatewayStore): Promise<AuditExport> {
  const id = await store.getSetting(SIGNER_SETTINGS.gateway);
  const publicKey = await store.getSetting(SIGNER_SETTINGS.publicKey);
  if (id === undefined || publicKey === undefined) throw new EvsealError('ERR_NOT_FOUND', 'no audit log in this store (the gateway has not run on it)');
  const treeHeads = (await store.treeHeads()).map((h) => ({ size: h.size, root: h.root, time: h.time, sig: h.sig }));
  const size = await store.auditSize();
  const entries: AuditEntry[] = [];
  // A deleted row shows as a short read; what is there is exported, and verification says what is missing.
  for (let from = 0; from < size; from += READ_CHUNK) {
    for (const e of await store.auditEntries(from, Math.min(size, from + READ_CHUNK))) {
      entries.push({ time: e.time, sender: e.sender, recipient: e.recipient, kind: e.kind, size: e.size, msgId: e.msgId, outcome: e.outcome });
    }
  }
  return { v: 1, gateway: { id, publicKey }, entries, treeHeads };
}

export function encodeAuditExport(x: AuditExport): string {
  // objects are built in their shapes' key order: JSON.stringify then is the canonical form
  return JSON.stringify({ v: x.v, gateway: { id: x.gateway.id, publicKey: x.gateway.publicKey }, entries: x.entries, treeHeads: x.treeHeads }) + '\n';
}

export function parseAuditExport(text: string): AuditExport {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const top = parseCanonical(body, EXPORT_SHAPE, 'audit export');
  if (top.v !== 1) throw new EvsealError('ERR_INVALID_INPUT', 'audit export: unsupported version');
  const gateway = checkShape(top.gateway, GATEWAY_SHAPE, 'audit export gateway') as AuditExport['gateway'];
  const entries = (top.entries as unknown[]).map((e, i) => checkShape(e, ENTRY_SHAPE, `audit export entry ${i}`) as unknown as AuditEntry);
  const treeHeads = (top.treeHeads as unknown[]).map((h, i) => checkShape(h, TREE_HEAD_SHAPE, `audit export tree head ${i}`) as unknown as TreeHead);
  return { v: 1, gateway, entries, treeHeads };
}

export interface AuditSummary {
  gateway: string;
  publicKey: string;
  size: number;
  treeHeads: number;
  latest: TreeHead | undefined;
  /** entries after the latest signed head: appended, not yet signed (or a head was removed) */
  unsigned: number;
}

export interface VerifyOptions {
  /** the gateway key the log must be signed with (base64url SPKI), e.g. from an endpoint's pinned configuration */
  key?: string;
  /** a tree size and root the log must contain, e.g. from a receipt an endpoint holds */
  expect?: { size: number; root: string };
}

const invalid = (reason: string): EvsealError => new EvsealError('ERR_INVALID_INPUT', `audit log invalid: ${reason}`);

/**
 * Checks an audit log end to end; throws `audit log invalid: <reason>` at
 * the first fault. Every leaf is recomputed; every tree head must be signed
 * by the gateway key, come in increasing size and non-decreasing time, have
 * the root of the entries it covers, and be consistent with its
 * predecessor. So an edited, inserted, removed or reordered entry changes a
 * signed root, and a truncation leaves a head that covers missing entries;
 * a truncation that also drops those heads needs `expect` (or a pinned `key`
 * against a re-signed forgery).
 */
export function verifyAuditLog(x: AuditExport, o: VerifyOptions = {}): AuditSummary {
  if (o.key !== undefined && o.key !== x.gateway.publicKey) throw invalid('it is signed with another key than the one given');
  let key;
  try {
    key = publicKeyFromB64u(x.gateway.publicKey, 'gateway public key');
  } catch (e) {
    throw invalid((e as Error).message);
  }

  let prev: TreeHead | undefined;
  for (const h of x.treeHeads) {
    if (!verifyTreeHead(x.gateway.id, key, h)) throw invalid(`tree head at size ${h.size} is not signed by gateway '${x.gateway.id}'`);
    if (prev && h.size <= prev.size) throw invalid(`tree head at size ${h.size} follows the one at size ${prev.size}: heads out of order or repeated`);
    if (prev && h.time < prev.time) throw invalid(`tree head at size ${h.size} is older than the one at size ${prev.size}`);
    prev = h;
  }
  const latest = prev;
  const n = x.entries.length;
  if (!latest && n > 0) throw invalid(`${n} entries and no signed tree head`);
  if (latest && latest.size > n) throw invalid(`the tree head at size ${latest.size} covers more entries than the log holds (${n}): entries were removed`);

  const tree = new MerkleTree(0);
  const node: PerfectNode = (level, index) => tree.node(level, index) as Uint8Array;
  let covered = 0;
  for (const h of x.treeHeads) {
    while (tree.size < h.size) tree.append(entryLeafHash(x.entries[tree.size] as AuditEntry));
    if (b64u(tree.root()) !== h.root) {
      throw invalid(`entries ${covered}..${h.size - 1} do not match the signed tree head at size ${h.size}: an entry was edited, removed, inserted or reordered`);
    }
    covered = h.size;
  }
  // What a monitor holding only the heads checks: each is an append-only extension of the one before.
  for (let i = 1; i < x.treeHeads.length; i++) {
    const [a, b] = [x.treeHeads[i - 1] as TreeHead, x.treeHeads[i] as TreeHead];
    const proof = consistencyPath(a.size, b.size, node);
    if (!verifyConsistency(a.size, b.size, rootBytes(a.root) as Uint8Array, rootBytes(b.root) as Uint8Array, proof)) {
      throw invalid(`tree heads at sizes ${a.size} and ${b.size} are not consistent`);
    }
  }
  while (tree.size < n) tree.append(entryLeafHash(x.entries[tree.size] as AuditEntry));

  if (o.expect) {
    if (o.expect.size > n) throw invalid(`the log holds ${n} entries, fewer than the expected ${o.expect.size}: it was truncated`);
    if (b64u(rootAt(o.expect.size, node)) !== o.expect.root) throw invalid(`its first ${o.expect.size} entries do not have the expected root: the log was rewritten`);
  }
  return { gateway: x.gateway.id, publicKey: x.gateway.publicKey, size: n, treeHeads: x.treeHeads.length, latest, unsigned: n - (latest?.size ?? 0) };
}
