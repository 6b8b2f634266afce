import { inspectEnvelope } from '../core/envelope.js';
import { EvsealError } from '../core/errors.js';
import { isValidId } from '../core/roles.js';
import {
  EVSEAL_VENDOR_ID,
  FIELDS_CONTENT_TYPE,
  bindingRef,
  entryToJSON,
  findCarriers,
  isEvsealCustomData,
  sideDataTransfer,
  type SealedEntry,
  type SideDataTransfer,
} from './carrier.js';
import { canonicalJson, cloneJson, isObject, type Json, type JsonObject } from './json.js';
import { checkMessage, isEvsealDataTransfer, matchFields, type Match, type OcppMessage } from './match.js';
import { expandPattern, formatPointer, getAt, parsePointer, removeAt, setAt } from './pointer.js';
import type { OcppPolicy, RecipientRef } from './policy.js';
import { messageSchema, schemaAt, type OcppVersion, type Schema } from './schemas.js';

/**
 * Seals `plaintext` to endpoint `to` and returns the envelope text
 * (docs/protocol.md §7). With an evseal Endpoint:
 * `(to, pt, o) => endpoint.seal(bundleOf(to), pt, o)`.
 */
export type SealFn = (to: string, plaintext: Uint8Array, o: { kind: string; contentType: string }) => string;

/**
 * Names the endpoint a rule's recipient stands for in this message (the
 * PSP of this station, the fleet of this driver, the target charger), or
 * `null` to withhold the fields: they are removed and sent to nobody.
 */
export type ResolveFn = (to: RecipientRef) => string | null;

export interface ProtectOptions {
  policy: OcppPolicy;
  seal: SealFn;
  resolve: ResolveFn;
}

export interface Protected {
  /** The payload to send in place of the original: sealed fields removed or replaced by placeholders, plus the 2.x carriers. */
  payload: JsonObject;
  /** 1.6 only, when fields were sealed: the DataTransfer request payload that carries them. */
  side?: SideDataTransfer;
  /** The message's binding reference (docs/ocpp.md): inside each envelope, and the `ref` of the 1.6 side message. */
  ref: string;
  /** One entry per envelope. */
  sealed: { to: string; kind: string; pointers: string[] }[];
  /** Fields removed and sent to nobody (resolve returned null). */
  withheld: string[];
  /** Fields a rule matched but that belong to a signed meter value: never sealed, left clear. */
  skipped: string[];
}

const encoder = new TextEncoder();

interface Group {
  to: string | null;
  kind: string;
  matches: Match[];
  context: Map<string, readonly string[]>;
}

/**
 * Seals the fields that the policy names in one OCPP message. The result
 * is valid against the OCA schema wherever the input was. The crypto is the
 * caller's (`seal`); everything sealed for one recipient and kind goes in
 * one envelope whose plaintext is canonical JSON (RFC 8785):
 * `{"action","bind","context"?,"fields":{POINTER:VALUE,…},"message","ocpp","v":1}`.
 */
export function protect(msg: OcppMessage, o: ProtectOptions): Protected {
  const m = checkMessage(msg);
  const payload = cloneJson(m.payload);
  const result = (extra: Partial<Protected> = {}): Protected => ({ payload, ref: bindingRef(m.version, m.action, m.message, payload), sealed: [], withheld: [], skipped: [], ...extra });
  if (isEvsealDataTransfer(m)) return result();
  if (findCarriers(payload).length > 0) throw new EvsealError('ERR_INVALID_INPUT', 'ocpp message: already carries sealed fields');

  const { matches, skipped } = matchFields(o.policy.fieldsFor(m.version, m.action, m.message, m.from), payload, m.version);
  if (matches.length === 0) return result({ skipped });

  // Resolve each rule's recipient once, and group the fields by (recipient, kind).
  const resolved = new Map<number, string | null>();
  const groups = new Map<string, Group>();
  for (const match of matches) {
    const f = match.field;
    let to = resolved.get(f.rule);
    if (to === undefined) {
      to = o.resolve(f.to);
      if (to !== null && !isValidId(to)) throw new EvsealError('ERR_USAGE', `resolve returned ${JSON.stringify(to)} for ${JSON.stringify(f.to)}: not an endpoint id`);
      resolved.set(f.rule, to);
    }
    const key = to === null ? '' : `${to}\u0000${f.kind}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { to, kind: f.kind, matches: [], context: new Map() }));
    g.matches.push(match);
    for (const c of f.context) g.context.set(formatPointer(c), c);
  }

  // Take the values (and the clear context), then remove the fields or put placeholders in.
  const values = new Map<string, Json>(matches.map((x) => [x.pointer, cloneJson(getAt(payload, x.tokens)!)]));
  const contexts = new Map<Group, Record<string, Json>>();
  for (const g of groups.values()) {
    const ctx: Record<string, Json> = {};
    for (const pattern of g.context.values()) {
      for (const t of expandPattern(payload, pattern)) ctx[formatPointer(t)] = cloneJson(getAt(payload, t)!);
    }
    contexts.set(g, ctx);
  }
  for (const x of matches) {
    const ok = x.field.placeholder !== undefined ? setAt(payload, x.tokens, x.field.placeholder) : removeAt(payload, x.tokens);
    if (!ok) throw new EvsealError('ERR_USAGE', `cannot remove ${x.pointer}`);
  }

  const ref = bindingRef(m.version, m.action, m.message, payload);
  const entries: SealedEntry[] = [];
  const sealed: Protected['sealed'] = [];
  const withheld: string[] = [];
  for (const g of groups.values()) {
    const ptrs = g.matches.map((x) => x.pointer).sort();
    if (g.to === null) {
      entries.push({ ptrs });
      withheld.push(...ptrs);
      continue;
    }
    const fields: Record<string, Json> = {};
    for (const p of ptrs) fields[p] = values.get(p)!;
    const ctx = contexts.get(g)!;
    const plaintext = canonicalJson({ action: m.action, bind: ref, ...(Object.keys(ctx).length > 0 ? { context: ctx } : {}), fields, message: m.message, ocpp: m.version, v: 1 });
    const env = o.seal(g.to, encoder.encode(plaintext), { kind: g.kind, contentType: FIELDS_CONTENT_TYPE });
    const hdr = inspectEnvelope(env);
    if (hdr.to !== g.to || hdr.kind !== g.kind || hdr.cty !== FIELDS_CONTENT_TYPE) {
      throw new EvsealError('ERR_USAGE', `seal returned an envelope to ${hdr.to} (${hdr.kind}, ${hdr.cty}), not to ${g.to} (${g.kind}, ${FIELDS_CONTENT_TYPE})`);
    }
    entries.push({ env, ptrs });
    sealed.push({ to: g.to, kind: g.kind, pointers: ptrs });
  }

  if (m.version === '1.6') {
    const side = sideDataTransfer({ v: 1, ocpp: '1.6', action: m.action, message: m.message, ref, sealed: entries });
    return { payload, side, ref, sealed, withheld, skipped };
  }
  const root = messageSchema(m.version, m.action, m.message);
  if (!root) throw new EvsealError('ERR_USAGE', `OCPP ${m.version} has no ${m.action} ${m.message}`);
  for (const e of entries) placeCarrier(payload, e, root, m.version);
  return { payload, ref, sealed, withheld, skipped };
}

/**
 * Puts an entry into the customData of the deepest object that contains
 * every field it covers and whose schema has a customData member. An object
 * whose customData belongs to another vendor is passed over for its parent.
 */
function placeCarrier(payload: JsonObject, e: SealedEntry, root: Schema, version: OcppVersion): void {
  const parents = e.ptrs.map((p) => parsePointer(p).slice(0, -1));
  let lca = parents[0]!;
  for (const p of parents.slice(1)) {
    let n = 0;
    while (n < lca.length && n < p.length && lca[n] === p[n]) n++;
    lca = lca.slice(0, n);
  }
  for (let len = lca.length; len >= 0; len--) {
    const path = lca.slice(0, len);
    const obj = getAt(payload, path);
    if (!isObject(obj)) continue;
    const s = schemaAt(root, path);
    if (!s.ok || !isObject(s.schema.properties as Json) || !Object.hasOwn(s.schema.properties as object, 'customData')) continue;
    const cd = obj.customData;
    if (cd === undefined) {
      obj.customData = { vendorId: EVSEAL_VENDOR_ID, sealed: [entryToJSON(e)] };
      return;
    }
    if (isEvsealCustomData(cd)) {
      const prev = Array.isArray(cd.sealed) ? cd.sealed : [];
      cd.sealed = [...prev, entryToJSON(e)];
      return;
    }
  }
  throw new EvsealError('ERR_USAGE', `OCPP ${version}: no object of the message can carry the sealed fields (every customData on the way belongs to another vendor)`);
}
