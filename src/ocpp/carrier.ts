import { createHash } from 'node:crypto';
import { b64u } from '../core/base64url.js';
import { EvsealError } from '../core/errors.js';
import { canonicalJson, cloneJson, isObject, parseCanonicalJson, type Json, type JsonObject } from './json.js';
import { parsePointer } from './pointer.js';
import type { MessageType, OcppVersion } from './schemas.js';

/**
 * Where sealed fields travel (docs/ocpp.md, "Carriers"):
 *
 * - 2.0.1 and 2.1: in the `customData` of an object of the message itself,
 *   `{"vendorId":"org.evseal","sealed":[ENTRY,…]}`.
 * - 1.6: in a separate DataTransfer `{"vendorId":"org.evseal",
 *   "messageId":"sealed-fields","data":SIDE}` where SIDE is the canonical
 *   JSON text `{"action","message","ocpp","ref","sealed":[ENTRY,…],"v":1}`.
 *
 * ENTRY is `{"env":ENVELOPE,"ptrs":[POINTER,…]}` (the envelope text and the
 * fields it covers) or `{"ptrs":[…]}` for fields withheld from everyone.
 */
export const EVSEAL_VENDOR_ID = 'org.evseal';
export const SIDE_MESSAGE_ID = 'sealed-fields';
/** The `cty` of an envelope that carries sealed OCPP fields. */
export const FIELDS_CONTENT_TYPE = 'application/vnd.evseal.ocpp-fields+json';
const BIND_CONTEXT = 'evseal/v1 ocpp-fields';

export interface SealedEntry {
  /** The envelope text; absent when the fields were withheld (sealed to nobody). */
  env?: string;
  /** The pointers it covers: absolute from the payload root, sorted, at least one. */
  ptrs: string[];
}

/** A 1.6 side message: the DataTransfer request that carries a message's sealed fields. */
export interface SideDataTransfer {
  vendorId: typeof EVSEAL_VENDOR_ID;
  messageId: typeof SIDE_MESSAGE_ID;
  data: string;
}

export interface SideData {
  v: 1;
  ocpp: OcppVersion;
  action: string;
  message: MessageType;
  ref: string;
  sealed: SealedEntry[];
}

const invalid = (why: string): never => {
  throw new EvsealError('ERR_INVALID_INPUT', `evseal carrier: ${why}`);
};

export function parseEntry(v: unknown): SealedEntry {
  if (!isObject(v)) return invalid('an entry is not an object');
  const keys = Object.keys(v).sort();
  if (!(keys.length === 1 && keys[0] === 'ptrs') && !(keys.length === 2 && keys[0] === 'env' && keys[1] === 'ptrs')) return invalid('an entry has members other than env and ptrs');
  const { env, ptrs } = v;
  if (env !== undefined && (typeof env !== 'string' || env.length === 0)) return invalid('env must be an envelope text');
  if (!Array.isArray(ptrs) || ptrs.length === 0 || !ptrs.every((p) => typeof p === 'string')) return invalid('ptrs must be a non-empty array of pointers');
  for (let i = 0; i < ptrs.length; i++) {
    if (parsePointer(ptrs[i] as string).length === 0) invalid('a pointer names the whole message');
    if (i > 0 && !((ptrs[i - 1] as string) < (ptrs[i] as string))) invalid('ptrs must be sorted and unique');
  }
  return env === undefined ? { ptrs: ptrs as string[] } : { env: env as string, ptrs: ptrs as string[] };
}

export function entryToJSON(e: SealedEntry): JsonObject {
  return e.env === undefined ? { ptrs: [...e.ptrs] } : { env: e.env, ptrs: [...e.ptrs] };
}

/** True for the customData of an evseal carrier. */
export function isEvsealCustomData(v: unknown): v is JsonObject {
  return isObject(v) && v.vendorId === EVSEAL_VENDOR_ID;
}

export interface CarrierLocation {
  /** Tokens of the object whose customData holds the entries. */
  path: string[];
  entries: SealedEntry[];
}

/** Every 2.0.1/2.1 carrier in a payload, in document order. Malformed carriers are refused (ERR_INVALID_INPUT). */
export function findCarriers(payload: Json): CarrierLocation[] {
  const out: CarrierLocation[] = [];
  const walk = (v: Json, path: string[], depth: number) => {
    if (depth > 64) invalid('nesting too deep');
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, [...path, String(i)], depth + 1));
      return;
    }
    if (!isObject(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'customData' && isEvsealCustomData(x) && Object.hasOwn(x, 'sealed')) {
        const s = x.sealed;
        if (!Array.isArray(s) || s.length === 0) invalid('sealed must be a non-empty array');
        out.push({ path, entries: (s as Json[]).map(parseEntry) });
        for (const [k2, y] of Object.entries(x)) if (k2 !== 'sealed') walk(y, [...path, k, k2], depth + 2);
        continue;
      }
      walk(x, [...path, k], depth + 1);
    }
  };
  walk(payload, [], 0);
  return out;
}

/**
 * The clear view of a payload, which the envelopes bind: the payload with
 * every evseal carrier removed (the `sealed` member of each org.evseal
 * customData, and then any org.evseal customData left with only its
 * vendorId). Protect computes it before adding carriers, unprotect after
 * receiving them, so both see the same value.
 */
export function clearView(payload: Json): Json {
  const copy = cloneJson(payload);
  const walk = (v: Json) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!isObject(v)) return;
    const cd = v.customData;
    if (isEvsealCustomData(cd)) {
      delete cd.sealed;
      if (Object.keys(cd).length === 1) delete v.customData;
    }
    Object.values(v).forEach(walk);
  };
  walk(copy);
  return copy;
}

/**
 * `ref` = b64u(SHA-256(utf8("evseal/v1 ocpp-fields") || 0x00 || utf8(JCS({action, message, ocpp, payload: clear view}))))
 * It is bound inside every envelope of the message, and is the `ref` of a 1.6 side message.
 */
export function bindingRef(version: OcppVersion, action: string, message: MessageType, payload: Json): string {
  const body = canonicalJson({ action, message, ocpp: version, payload: clearView(payload) });
  return b64u(createHash('sha256').update(BIND_CONTEXT).update(new Uint8Array([0])).update(body).digest());
}

export function isSideDataTransfer(payload: unknown): boolean {
  return isObject(payload) && payload.vendorId === EVSEAL_VENDOR_ID && payload.messageId === SIDE_MESSAGE_ID;
}

export function sideDataTransfer(d: SideData): SideDataTransfer {
  const data = canonicalJson({ action: d.action, message: d.message, ocpp: d.ocpp, ref: d.ref, sealed: d.sealed.map(entryToJSON), v: 1 });
  return { vendorId: EVSEAL_VENDOR_ID, messageId: SIDE_MESSAGE_ID, data };
}

/** Parses a 1.6 side DataTransfer request payload strictly (ERR_INVALID_INPUT when malformed). */
export function parseSideDataTransfer(payload: unknown): SideData {
  if (!isObject(payload) || !isSideDataTransfer(payload)) return invalid('not an org.evseal sealed-fields DataTransfer');
  const keys = Object.keys(payload).sort().join(',');
  if (keys !== 'data,messageId,vendorId' || typeof payload.data !== 'string') return invalid('the side DataTransfer must have vendorId, messageId and a string data');
  const d = parseCanonicalJson(payload.data, 'evseal side data');
  if (!isObject(d) || Object.keys(d).join(',') !== 'action,message,ocpp,ref,sealed,v') return invalid('side data members');
  if (d.v !== 1 || d.ocpp !== '1.6' || typeof d.action !== 'string' || (d.message !== 'request' && d.message !== 'response') || typeof d.ref !== 'string') return invalid('side data values');
  if (!Array.isArray(d.sealed) || d.sealed.length === 0) return invalid('side data has no entries');
  return { v: 1, ocpp: '1.6', action: d.action, message: d.message, ref: d.ref, sealed: d.sealed.map(parseEntry) };
}

/**
 * The envelope texts in a message, for an intermediary that routes them
 * (each envelope's clear header names its recipient: inspectEnvelope). It
 * reads 2.0.1/2.1 customData carriers anywhere in the payload and the data
 * of a 1.6 side DataTransfer. Withheld entries have no envelope. A
 * malformed carrier is refused with ERR_INVALID_INPUT.
 */
export function extractEnvelopes(payload: unknown): string[] {
  if (isSideDataTransfer(payload)) return parseSideDataTransfer(payload).sealed.flatMap((e) => (e.env === undefined ? [] : [e.env]));
  if (!isObject(payload)) return [];
  return findCarriers(payload).flatMap((c) => c.entries.flatMap((e) => (e.env === undefined ? [] : [e.env])));
}
