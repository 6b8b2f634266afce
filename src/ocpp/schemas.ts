import { createRequire } from 'node:module';
import { EvsealError } from '../core/errors.js';
import { WILDCARD, isArrayIndex } from './pointer.js';

/**
 * The OCA JSON schemas of OCPP 1.6 (with the security extension), 2.0.1 and
 * 2.1, as ocpp-rpc ships them. This layer reads them to check policies
 * (every sealed field must exist, a required one gets a placeholder that
 * satisfies its schema) and to find where a customData carrier may go.
 * It does not validate messages: the OCPP stack does that (the gateway with
 * ocpp-rpc in strict mode).
 */

export const OCPP_VERSIONS = ['1.6', '2.0.1', '2.1'] as const;
export type OcppVersion = (typeof OCPP_VERSIONS)[number];
export type MessageType = 'request' | 'response';

export function isOcppVersion(v: unknown): v is OcppVersion {
  return (OCPP_VERSIONS as readonly unknown[]).includes(v);
}

/** Accepts "2.0.1" as well as the OCPP-J subprotocol name "ocpp2.0.1". */
export function normaliseVersion(v: unknown): OcppVersion {
  const s = typeof v === 'string' && v.startsWith('ocpp') ? v.slice(4) : v;
  if (!isOcppVersion(s)) throw new EvsealError('ERR_USAGE', `unknown OCPP version ${JSON.stringify(v)} (1.6, 2.0.1 or 2.1)`);
  return s;
}

export type Schema = Record<string, unknown>;

const FILES: Record<OcppVersion, string> = {
  '1.6': 'ocpp-rpc/lib/schemas/ocpp1_6.json',
  '2.0.1': 'ocpp-rpc/lib/schemas/ocpp2_0_1.json',
  '2.1': 'ocpp-rpc/lib/schemas/ocpp2_1.json',
};

let index: Map<OcppVersion, Map<string, Schema>> | undefined;

/**
 * `urn:<Action>.req` / `.conf` (1.6, 2.0.1) and `urn:<Action>Request` /
 * `Response` (2.1) both map to "<Action>.request" / "<Action>.response".
 */
function keyOf(id: string): string | undefined {
  const m = /^urn:(.+?)(?:\.(req|conf)|(Request|Response))?$/.exec(id);
  if (!m) return undefined;
  const kind = m[2] === 'conf' || m[3] === 'Response' ? 'response' : 'request';
  return `${m[1]}.${kind}`;
}

function load(): Map<OcppVersion, Map<string, Schema>> {
  const require = createRequire(import.meta.url);
  const out = new Map<OcppVersion, Map<string, Schema>>();
  for (const v of OCPP_VERSIONS) {
    const m = new Map<string, Schema>();
    for (const s of require(FILES[v]) as Schema[]) {
      const k = keyOf(String(s.$id));
      if (k !== undefined) m.set(k, s);
    }
    out.set(v, m);
  }
  return out;
}

/** The schema of one message, or undefined when the version has no such action. */
export function messageSchema(version: OcppVersion, action: string, message: MessageType): Schema | undefined {
  index ??= load();
  return index.get(version)!.get(`${action}.${message}`);
}

/** A schema node whose members are not constrained (customData extensions, 2.x DataTransfer data). */
export const OPEN: Schema = Object.freeze({});

function isSchema(x: unknown): x is Schema {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Follows local `#/definitions/…` references. */
export function deref(root: Schema, s: Schema): Schema {
  let cur = s;
  for (let i = 0; i < 16 && typeof cur.$ref === 'string'; i++) {
    const m = /^#\/definitions\/(.+)$/.exec(cur.$ref);
    const defs = root.definitions;
    const next = m && isSchema(defs) ? (defs as Record<string, unknown>)[m[1]!] : undefined;
    if (!isSchema(next)) throw new EvsealError('ERR_INVALID_INPUT', `schema reference ${cur.$ref} does not resolve`);
    cur = next;
  }
  return cur;
}

export function isObjectSchema(s: Schema): boolean {
  return s.type === 'object' || isSchema(s.properties);
}

function isOpen(s: Schema): boolean {
  return s === OPEN || (s.type === undefined && s.properties === undefined && s.items === undefined && s.enum === undefined);
}

export type Step =
  | { ok: true; schema: Schema; required: boolean }
  | { ok: false; why: string };

/** The schema of member/element `token` of a value of schema `s` (already dereferenced). */
export function childSchema(root: Schema, s: Schema, token: string): Step {
  if (isOpen(s)) return { ok: true, schema: OPEN, required: false };
  if (s.type === 'array') {
    if (token !== WILDCARD && !isArrayIndex(token)) return { ok: false, why: `an array has no member ${JSON.stringify(token)}` };
    const items = s.items;
    return isSchema(items) ? { ok: true, schema: deref(root, items), required: false } : { ok: true, schema: OPEN, required: false };
  }
  if (isObjectSchema(s)) {
    if (token === WILDCARD) return { ok: false, why: '"*" matches array elements, and this is an object' };
    const props = isSchema(s.properties) ? s.properties : {};
    const required = Array.isArray(s.required) && s.required.includes(token);
    if (Object.hasOwn(props, token)) {
      const p = props[token];
      return { ok: true, schema: isSchema(p) ? deref(root, p) : OPEN, required };
    }
    if (s.additionalProperties === false) return { ok: false, why: `no member ${JSON.stringify(token)} in the schema` };
    // An extensible object (CustomDataType): any other member is free-form.
    return { ok: true, schema: OPEN, required: false };
  }
  return { ok: false, why: `a ${String(s.type)} has no members` };
}

/** Walks `tokens` from the message root; `'*'` and indices select array elements. */
export function schemaAt(root: Schema, tokens: readonly string[]): Step {
  let cur: Step = { ok: true, schema: deref(root, root), required: true };
  for (const t of tokens) {
    if (!cur.ok) return cur;
    cur = childSchema(root, cur.schema, t);
  }
  return cur;
}

/** True if any schema node reachable from `s` (through references) satisfies `pred`. */
export function someNode(root: Schema, s: Schema, pred: (node: Schema, name: string | undefined) => boolean): boolean {
  const seen = new Set<Schema>();
  const visit = (n: Schema, name: string | undefined): boolean => {
    const d = deref(root, n);
    if (pred(d, name)) return true;
    if (seen.has(d)) return false;
    seen.add(d);
    if (isSchema(d.properties)) {
      for (const [k, p] of Object.entries(d.properties)) if (isSchema(p) && visit(p, k)) return true;
    }
    if (isSchema(d.items) && visit(d.items, undefined)) return true;
    return false;
  };
  return visit(s, undefined);
}
