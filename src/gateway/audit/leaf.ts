import type { KeyObject } from 'node:crypto';
import { b64u, fromB64u } from '../../core/base64url.js';
import { utf8 } from '../../core/bytes.js';
import { encodeCanonical, type Shape } from '../../core/canonical-json.js';
import { EvsealError } from '../../core/errors.js';
import { HASH_SIZE, leafHash } from '../../core/merkle.js';
import { signWith, verifyWith } from '../../core/signature.js';
import type { AuditEntry, TreeHead } from '../store/store.js';

/**
 * The bytes the audit log commits to (docs/audit.md). Both are evseal
 * canonical JSON, UTF-8: keys in the order below, no whitespace, strings and
 * integers as ECMAScript JSON.stringify writes them. That encoding is total
 * and injective over the field values (it escapes lone surrogates), so no
 * two distinct entries share a leaf.
 *
 *   leaf data  {"v":1,"time":T,"sender":S,"recipient":R,"kind":K,"size":N,"msgId":M,"outcome":O}
 *   tree head  {"v":1,"gateway":G,"size":N,"root":B64U,"time":T}
 *
 * A tree head is signed with the 'evseal/v1 audit receipt' context
 * (core/signature.ts), so the signature cannot be taken for any other
 * evseal signature; the gateway id inside it keeps one gateway's heads from
 * being passed off as another's.
 */

export const ENTRY_SHAPE: Shape = [
  ['time', 'int'],
  ['sender', 'string'],
  ['recipient', 'string'],
  ['kind', 'string'],
  ['size', 'int'],
  ['msgId', 'string'],
  ['outcome', 'string'],
];
const LEAF_SHAPE: Shape = [['v', 'int'], ...ENTRY_SHAPE];

/** A stored or exported tree head: the signed fields and the signature. */
export const TREE_HEAD_SHAPE: Shape = [
  ['size', 'int'],
  ['root', 'string'],
  ['time', 'int'],
  ['sig', 'string'],
];
const SIGNED_HEAD_SHAPE: Shape = [
  ['v', 'int'],
  ['gateway', 'string'],
  ['size', 'int'],
  ['root', 'string'],
  ['time', 'int'],
];

const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

export function leafData(e: AuditEntry): Uint8Array {
  if (!isCount(e.time) || !isCount(e.size)) throw new EvsealError('ERR_INVALID_INPUT', 'audit entry: time and size must be non-negative integers');
  for (const k of ['sender', 'recipient', 'kind', 'msgId', 'outcome'] as const) {
    if (typeof e[k] !== 'string') throw new EvsealError('ERR_INVALID_INPUT', `audit entry: ${k} must be a string`);
  }
  return utf8(encodeCanonical({ v: 1, ...e }, LEAF_SHAPE));
}

export const entryLeafHash = (e: AuditEntry): Uint8Array => leafHash(leafData(e));

export function treeHeadData(gateway: string, h: Pick<TreeHead, 'size' | 'root' | 'time'>): Uint8Array {
  return utf8(encodeCanonical({ v: 1, gateway, size: h.size, root: h.root, time: h.time }, SIGNED_HEAD_SHAPE));
}

export function signTreeHead(gateway: string, key: KeyObject, h: Pick<TreeHead, 'size' | 'root' | 'time'>): TreeHead {
  return { size: h.size, root: h.root, time: h.time, sig: b64u(signWith('receipt', key, treeHeadData(gateway, h))) };
}

/** The root as 32 bytes, or undefined unless it is exactly that in canonical base64url. */
export function rootBytes(root: string): Uint8Array | undefined {
  try {
    const r = fromB64u(root);
    return r.length === HASH_SIZE ? r : undefined;
  } catch {
    return undefined;
  }
}

export function verifyTreeHead(gateway: string, key: KeyObject, h: TreeHead): boolean {
  if (!isCount(h.size) || !isCount(h.time) || rootBytes(h.root) === undefined) return false;
  let sig: Uint8Array;
  try {
    sig = fromB64u(h.sig);
  } catch {
    return false;
  }
  return verifyWith('receipt', key, treeHeadData(gateway, h), sig);
}
