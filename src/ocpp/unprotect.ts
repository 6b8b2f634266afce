import { inspectEnvelope } from '../core/envelope.js';
import { EvsealError } from '../core/errors.js';
import { isValidId } from '../core/roles.js';
import {
  FIELDS_CONTENT_TYPE,
  bindingRef,
  entryToJSON,
  findCarriers,
  isEvsealCustomData,
  parseSideDataTransfer,
  sideDataTransfer,
  type SealedEntry,
  type SideData,
  type SideDataTransfer,
} from './carrier.js';
import { cloneJson, isObject, parseCanonicalJson, type Json, type JsonObject } from './json.js';
import { checkMessage, isEvsealDataTransfer, matchFields, type OcppMessage } from './match.js';
import { getAt, matchesPattern, parsePointer, setAt } from './pointer.js';
import type { CompiledField, OcppPolicy } from './policy.js';
import type { MessageType, OcppVersion } from './schemas.js';

/**
 * Opens one envelope addressed to this endpoint. `check` validates the
 * plaintext; an opener that can, calls it before it commits the envelope's
 * replay record, so a refused message can be opened again. With an evseal
 * Endpoint: `(env, check) => endpoint.open(env, { beforeCommit: (x) => check(x.plaintext) })`.
 * Any failure must throw; evseal's Endpoint throws one opaque ERR_OPEN_FAILED.
 */
export type OpenFn = (envelope: string, check: (plaintext: Uint8Array) => void) => { plaintext: Uint8Array; sender: { id: string; role: string } };

export interface UnprotectOptions {
  /** The policy this endpoint expects: every field it seals must arrive sealed (or withheld), never in the clear. */
  policy: OcppPolicy;
  /** This endpoint's id: envelopes to others are left in place. */
  me: string;
  open: OpenFn;
  /** Told the precise reason of a refusal (for a security log); the thrown error stays opaque. */
  onRefused?: (reason: string) => void;
}

export interface Unprotected {
  /** The payload with this endpoint's fields restored and its entries removed from the carriers. */
  payload: JsonObject;
  /** 1.6: the side DataTransfer left after this endpoint's entries were taken out; absent when none remain. */
  side?: SideDataTransfer;
  ref: string;
  restored: { pointer: string; from: string; role: string; kind: string }[];
  /** Envelopes for other endpoints, untouched; their fields still hold placeholders (or are absent). */
  pending: { to: string; kind: string; pointers: string[] }[];
  /** Fields sealed to nobody: they still hold placeholders (or are absent). */
  withheld: string[];
}

export interface OpenedFields {
  ocpp: OcppVersion;
  action: string;
  message: MessageType;
  /** The binding reference of the message the fields were taken from. */
  ref: string;
  fields: Record<string, Json>;
  context: Record<string, Json>;
  sender: { id: string; role: string };
  kind: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

class Refusal extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}
const refusal = (reason: string): never => {
  throw new Refusal(reason);
};

/** The envelope plaintext of docs/ocpp.md, parsed strictly. */
function parsePlaintext(pt: Uint8Array): Omit<OpenedFields, 'sender' | 'kind'> {
  let text: string;
  try {
    text = decoder.decode(pt);
  } catch {
    return refusal('plaintext-not-utf8');
  }
  let v: Json;
  try {
    v = parseCanonicalJson(text, 'sealed fields');
  } catch {
    return refusal('plaintext-not-canonical');
  }
  if (!isObject(v)) return refusal('plaintext-shape');
  const keys = Object.keys(v).join(',');
  if (keys !== 'action,bind,context,fields,message,ocpp,v' && keys !== 'action,bind,fields,message,ocpp,v') return refusal('plaintext-shape');
  const { action, bind, fields, message, ocpp } = v;
  const context = v.context ?? {};
  if (v.v !== 1 || typeof action !== 'string' || typeof bind !== 'string' || (message !== 'request' && message !== 'response')) return refusal('plaintext-shape');
  if (ocpp !== '1.6' && ocpp !== '2.0.1' && ocpp !== '2.1') return refusal('plaintext-shape');
  if (!isObject(fields) || Object.keys(fields).length === 0 || !isObject(context)) return refusal('plaintext-shape');
  for (const p of [...Object.keys(fields), ...Object.keys(context)]) {
    try {
      if (parsePointer(p).length === 0) refusal('plaintext-pointer');
    } catch {
      refusal('plaintext-pointer');
    }
  }
  return { ocpp, action, message, ref: bind, fields, context };
}

/**
 * Restores the fields of one received message that were sealed to this
 * endpoint (`me`). Every check is made before anything is returned:
 *
 * - the carriers are well formed and no field is claimed twice;
 * - every field the local policy seals is covered by a carrier entry (a
 *   value put in the clear where a sealed one belongs is refused);
 * - each envelope to `me` opens (the caller's `open`), has the fields
 *   content type, a kind the local policy gives those fields, and a
 *   plaintext for this version, action and message whose `bind` equals the
 *   binding reference of the message as received and whose fields are
 *   exactly the entry's pointers.
 *
 * Any failure is one opaque ERR_OPEN_FAILED (the reason goes to
 * `onRefused`). Envelopes to other endpoints are left where they are. For
 * 1.6, pass the side DataTransfer request payload as `side`.
 */
export function unprotect(msg: OcppMessage & { side?: unknown }, o: UnprotectOptions): Unprotected {
  const m = checkMessage(msg);
  if (!isValidId(o.me)) throw new EvsealError('ERR_USAGE', 'unprotect: me must be an endpoint id');
  if (m.version !== '1.6' && msg.side !== undefined) throw new EvsealError('ERR_USAGE', 'unprotect: a side DataTransfer exists only in OCPP 1.6');
  const payload = cloneJson(m.payload);
  const ref = bindingRef(m.version, m.action, m.message, payload);
  if (isEvsealDataTransfer(m)) return { payload, ref, restored: [], pending: [], withheld: [] };
  try {
    return unprotectChecked(m, payload, ref, msg.side, o);
  } catch (e) {
    const reason = e instanceof Refusal ? e.reason : e instanceof EvsealError ? `${e.code}: ${e.message}` : undefined;
    if (reason === undefined) throw e;
    o.onRefused?.(reason);
    throw new EvsealError('ERR_OPEN_FAILED', 'sealed OCPP fields could not be opened');
  }
}

function unprotectChecked(
  m: ReturnType<typeof checkMessage>,
  payload: JsonObject,
  ref: string,
  sideIn: unknown,
  o: UnprotectOptions,
): Unprotected {
  // 1. The entries, from the 2.x carriers or the 1.6 side message.
  const carriers = findCarriers(payload);
  let side: SideData | undefined;
  let entries: SealedEntry[];
  if (m.version === '1.6') {
    if (carriers.length > 0) refusal('carrier-in-1.6-message');
    if (sideIn !== undefined) {
      side = parseSideDataTransfer(sideIn);
      if (side.action !== m.action || side.message !== m.message) refusal('side-for-another-message');
      if (side.ref !== ref) refusal('side-ref-mismatch');
    }
    entries = side?.sealed ?? [];
  } else {
    entries = carriers.flatMap((c) => c.entries);
  }
  const covered = new Set<string>();
  for (const e of entries) for (const p of e.ptrs) {
    if (covered.has(p)) refusal('field-sealed-twice');
    covered.add(p);
  }

  // 2. Every field the local policy seals must be covered.
  const fields = o.policy.fieldsFor(m.version, m.action, m.message, m.from);
  for (const x of matchFields(fields, payload, m.version).matches) if (!covered.has(x.pointer)) refusal('policy-field-in-clear');

  // 3. Open the envelopes addressed to me.
  const restored: Unprotected['restored'] = [];
  const pending: Unprotected['pending'] = [];
  const withheld: string[] = [];
  const mine = new Set<SealedEntry>();
  const writes: { tokens: string[]; value: Json }[] = [];
  for (const e of entries) {
    if (e.env === undefined) {
      withheld.push(...e.ptrs);
      continue;
    }
    let hdr: ReturnType<typeof inspectEnvelope>;
    try {
      hdr = inspectEnvelope(e.env);
    } catch {
      return refusal('malformed-envelope');
    }
    if (hdr.to !== o.me) {
      pending.push({ to: hdr.to, kind: hdr.kind, pointers: [...e.ptrs] });
      continue;
    }
    if (hdr.cty !== FIELDS_CONTENT_TYPE) refusal('wrong-content-type');
    for (const p of e.ptrs) {
      const f = ruleFor(fields, payload, parsePointer(p));
      if (!f) refusal('field-not-in-local-policy');
      else if (f.kind !== hdr.kind) refusal('kind-not-the-policy-kind');
    }
    const check = (pt: Uint8Array) => {
      const x = parsePlaintext(pt);
      if (x.ocpp !== m.version || x.action !== m.action || x.message !== m.message) refusal('plaintext-for-another-message');
      if (x.ref !== ref) refusal('binding-mismatch');
      if (Object.keys(x.fields).join('\u0000') !== e.ptrs.join('\u0000')) refusal('pointers-mismatch');
    };
    let opened: ReturnType<OpenFn>;
    try {
      opened = o.open(e.env, check);
    } catch (err) {
      if (err instanceof Refusal) throw err;
      if (err instanceof EvsealError) refusal('envelope-refused');
      throw err;
    }
    check(opened.plaintext);
    const x = parsePlaintext(opened.plaintext);
    for (const p of e.ptrs) {
      writes.push({ tokens: parsePointer(p), value: x.fields[p]! });
      restored.push({ pointer: p, from: opened.sender.id, role: opened.sender.role, kind: hdr.kind });
    }
    mine.add(e);
  }

  // 4. Take my entries out of the carriers, restore the values, drop empty carriers.
  let outSide: SideDataTransfer | undefined;
  if (side) {
    const rest = side.sealed.filter((e) => !mine.has(e));
    if (rest.length > 0) outSide = sideDataTransfer({ ...side, sealed: rest });
  } else {
    for (const c of carriers) {
      const cd = getAt(payload, [...c.path, 'customData']);
      if (!isEvsealCustomData(cd)) continue;
      const rest = c.entries.filter((e) => !mine.has(e));
      if (rest.length > 0) cd.sealed = rest.map(entryToJSON);
      else delete cd.sealed;
    }
  }
  for (const w of writes) if (!setAt(payload, w.tokens, cloneJson(w.value))) refusal('field-has-no-place');
  for (const c of carriers) {
    const holder = getAt(payload, c.path);
    if (isObject(holder) && isEvsealCustomData(holder.customData) && Object.keys(holder.customData).length === 1) delete holder.customData;
  }
  return { payload, ...(outSide ? { side: outSide } : {}), ref, restored, pending, withheld };
}

/** The local rule that covers a concrete field: its pattern matches and its `where` holds on the received message. */
function ruleFor(fields: readonly CompiledField[], payload: Json, tokens: string[]): CompiledField | undefined {
  const container = getAt(payload, tokens.slice(0, -1));
  return fields.find(
    (f) => matchesPattern(f.tokens, tokens) && (!f.where || (isObject(container) && Object.entries(f.where).every(([k, v]) => container[k] === v))),
  );
}

/**
 * Opens one sealed-fields envelope on its own, for a recipient that gets
 * the envelope without the message (the gateway routed it there). The
 * result names the message it came from (`ocpp`, `action`, `message`,
 * `ref`) and holds the sealed values and any clear context the policy
 * copied in. Failures are opaque ERR_OPEN_FAILED.
 */
export function openFields(envelope: string, o: { open: OpenFn; me?: string; onRefused?: (reason: string) => void }): OpenedFields {
  try {
    let hdr: ReturnType<typeof inspectEnvelope>;
    try {
      hdr = inspectEnvelope(envelope);
    } catch {
      return refusal('malformed-envelope');
    }
    if (o.me !== undefined && hdr.to !== o.me) refusal('not-for-me');
    if (hdr.cty !== FIELDS_CONTENT_TYPE) refusal('wrong-content-type');
    let opened: ReturnType<OpenFn>;
    try {
      opened = o.open(envelope, (pt) => void parsePlaintext(pt));
    } catch (err) {
      if (err instanceof Refusal) throw err;
      if (err instanceof EvsealError) refusal('envelope-refused');
      throw err;
    }
    return { ...parsePlaintext(opened.plaintext), sender: { id: opened.sender.id, role: opened.sender.role }, kind: hdr.kind };
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    o.onRefused?.(e.reason);
    throw new EvsealError('ERR_OPEN_FAILED', 'sealed OCPP fields could not be opened');
  }
}
