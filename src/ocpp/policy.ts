import { readFileSync } from 'node:fs';
import { EvsealError } from '../core/errors.js';
import { DEFAULT_ROLE_POLICY, isAllowed, isKind, type RolePolicy } from '../core/role-policy.js';
import { ROLES, isRole, isValidId, type Role } from '../core/roles.js';
import { parseStrictJson } from '../core/x509/strict-json.js';
import type { Json } from './json.js';
import { WILDCARD, formatPointer, isArrayIndex, parsePointer } from './pointer.js';
import { placeholderFor } from './placeholders.js';
import { OCPP_VERSIONS, childSchema, isOcppVersion, messageSchema, schemaAt, someNode, type MessageType, type OcppVersion, type Schema } from './schemas.js';

/**
 * The sealing policy (docs/ocpp.md, "The policy file"): for each OCPP
 * version, action and message, which fields are sealed, to whom, and under
 * which envelope kind. It is checked in full against the OCA schemas when
 * it is loaded; a rule that cannot work (an unknown field, a required field
 * without a placeholder, a signed meter value) is refused with the reason.
 */

/** The side of the OCPP connection that sends the message. */
export type Side = 'csms' | 'station';

/** Whom a rule seals to: a role (resolved by the caller to one endpoint id), a fixed id, or the OCPP peer station. */
export type RecipientRef = { role: Role } | { id: string } | { peer: true };

export type WhereValue = string | number | boolean;

export interface PolicyRule {
  ocpp: OcppVersion[];
  action: string;
  message: MessageType;
  from: Side;
  /** JSON Pointers (RFC 6901) from the payload root; a "*" token stands for every array element. */
  fields: string[];
  /** Equality conditions on members of the object that contains each field. */
  where?: Record<string, WhereValue>;
  /** Pointers whose (clear) values are copied into the envelope as context for its recipient. */
  context?: string[];
  to: RecipientRef;
  kind: string;
}

/** One field pattern of one rule, compiled for one OCPP version. */
export interface CompiledField {
  rule: number;
  pattern: string;
  tokens: readonly string[];
  /** Present when the schema requires the field: the value left in its place. */
  placeholder?: Json;
  where?: Readonly<Record<string, WhereValue>>;
  context: readonly (readonly string[])[];
  to: RecipientRef;
  kind: string;
}

const EMPTY: readonly CompiledField[] = Object.freeze([]);
const keyOf = (v: OcppVersion, action: string, message: MessageType, from: Side) => `${v}|${action}|${message}|${from}`;

/** A loaded, checked policy. Build one with `parseOcppPolicy` or `loadOcppPolicy`. */
export class OcppPolicy {
  readonly v = 1 as const;
  readonly rules: readonly PolicyRule[];
  readonly #fields: ReadonlyMap<string, readonly CompiledField[]>;

  /** @internal use parseOcppPolicy / ocppPolicyFromJSON */
  constructor(rules: PolicyRule[], fields: Map<string, CompiledField[]>) {
    this.rules = Object.freeze(rules);
    this.#fields = fields;
  }

  /** The compiled field rules that apply to one message. */
  fieldsFor(version: OcppVersion, action: string, message: MessageType, from: Side): readonly CompiledField[] {
    return this.#fields.get(keyOf(version, action, message, from)) ?? EMPTY;
  }

  toJSON(): { v: 1; rules: readonly PolicyRule[] } {
    return { v: 1, rules: this.rules };
  }
}

export const SIGNED_METER_REFUSAL = 'signed meter values (OCMF) are never sealed: billing integrity needs them verifiable by everyone';

class PolicyError extends EvsealError {
  constructor(where: string, why: string) {
    super('ERR_INVALID_INPUT', `ocpp policy: ${where}: ${why}`);
  }
}

function exactKeys(v: unknown, allowed: readonly string[], required: readonly string[], where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PolicyError(where, 'must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new PolicyError(where, `unknown member ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
  for (const k of required) if (!Object.hasOwn(o, k)) throw new PolicyError(where, `missing member ${JSON.stringify(k)}`);
  return o;
}

function stringArray(v: unknown, where: string, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) throw new PolicyError(where, `${what} must be a non-empty array of strings`);
  if (new Set(v).size !== v.length) throw new PolicyError(where, `${what} lists a value twice`);
  return v as string[];
}

function parseRecipient(v: unknown, where: string): RecipientRef {
  const o = exactKeys(v, ['role', 'id', 'peer'], [], `${where}: to`);
  const keys = Object.keys(o);
  if (keys.length !== 1) throw new PolicyError(where, 'to must have exactly one of "role", "id", "peer"');
  if ('role' in o) {
    if (!isRole(o.role) || o.role === 'gateway') throw new PolicyError(where, `to.role ${JSON.stringify(o.role)} is not an endpoint role (${ROLES.filter((r) => r !== 'gateway').join(', ')})`);
    return { role: o.role };
  }
  if ('id' in o) {
    if (!isValidId(o.id)) throw new PolicyError(where, 'to.id must be an endpoint id ([A-Za-z0-9._:-]{1,64})');
    return { id: o.id };
  }
  if (o.peer !== true) throw new PolicyError(where, 'to.peer must be true');
  return { peer: true };
}

/** Checks that the role policy lets some sender on `from`'s side seal `kind` to the rule's recipient. */
function checkKind(rule: PolicyRule, rp: RolePolicy, where: string): void {
  if (!isKind(rule.kind)) throw new PolicyError(where, 'kind must match [a-z][a-z0-9-]{0,31}');
  if (!rp.rules.some((r) => r.kind === rule.kind)) {
    throw new PolicyError(where, `kind ${JSON.stringify(rule.kind)} is not in the role policy (${[...new Set(rp.rules.map((r) => r.kind))].join(', ')})`);
  }
  const senders: readonly Role[] = rule.from === 'station' ? ['charger'] : ROLES.filter((r) => r !== 'gateway');
  let recipients: readonly Role[];
  if ('role' in rule.to) recipients = [rule.to.role];
  else if ('peer' in rule.to) {
    if (rule.from === 'station') throw new PolicyError(where, "to.peer of a station's message is the CSMS, which is never a recipient of sealed content");
    recipients = ['charger'];
  } else recipients = ROLES.filter((r) => r !== 'gateway');
  if (!senders.some((s) => recipients.some((r) => isAllowed(rp, s, rule.kind, r)))) {
    throw new PolicyError(where, `the role policy allows no ${rule.kind} from ${rule.from === 'station' ? 'a charger' : 'the CSMS side'} to ${'role' in rule.to ? `a ${rule.to.role}` : 'that recipient'}`);
  }
}

function parseRule(v: unknown, i: number, rp: RolePolicy): PolicyRule {
  let where = `rule ${i}`;
  const o = exactKeys(v, ['ocpp', 'action', 'message', 'from', 'fields', 'where', 'context', 'to', 'kind'], ['ocpp', 'action', 'message', 'from', 'fields', 'to', 'kind'], where);
  if (typeof o.action !== 'string' || !/^[A-Za-z0-9]{1,64}$/.test(o.action)) throw new PolicyError(where, 'action must be an OCPP action name');
  where = `rule ${i} (${o.action})`;
  const ocpp = stringArray(o.ocpp, where, 'ocpp');
  for (const x of ocpp) if (!isOcppVersion(x)) throw new PolicyError(where, `unknown OCPP version ${JSON.stringify(x)} (${OCPP_VERSIONS.join(', ')})`);
  if (o.message !== 'request' && o.message !== 'response') throw new PolicyError(where, 'message must be "request" or "response"');
  if (o.from !== 'csms' && o.from !== 'station') throw new PolicyError(where, 'from must be "csms" or "station"');
  const fields = stringArray(o.fields, where, 'fields');
  let whereCond: Record<string, WhereValue> | undefined;
  if (o.where !== undefined) {
    if (typeof o.where !== 'object' || o.where === null || Array.isArray(o.where) || Object.keys(o.where).length === 0) throw new PolicyError(where, 'where must be a non-empty object');
    whereCond = {};
    for (const [k, x] of Object.entries(o.where)) {
      if (typeof x !== 'string' && typeof x !== 'boolean' && !(typeof x === 'number' && Number.isFinite(x))) throw new PolicyError(where, `where.${k} must be a string, number or boolean`);
      whereCond[k] = x;
    }
  }
  const context = o.context === undefined ? undefined : stringArray(o.context, where, 'context');
  const rule: PolicyRule = {
    ocpp: ocpp as OcppVersion[],
    action: o.action,
    message: o.message,
    from: o.from,
    fields,
    ...(whereCond ? { where: whereCond } : {}),
    ...(context ? { context } : {}),
    to: parseRecipient(o.to, where),
    kind: typeof o.kind === 'string' ? o.kind : '',
  };
  checkKind(rule, rp, where);
  return rule;
}

const isSignedMeterName = (t: string) => t === 'signedMeterValue';
const carriesSignedData = (n: Schema) => Array.isArray(n.enum) && n.enum.includes('SignedData');

/** Checks one field pattern against one version's schema; returns its compiled form. */
function compileField(rule: PolicyRule, i: number, pattern: string, version: OcppVersion, root: Schema, where: string): CompiledField {
  const at = `${where}: field ${JSON.stringify(pattern)} (OCPP ${version})`;
  let tokens: string[];
  try {
    tokens = parsePointer(pattern);
  } catch (e) {
    throw new PolicyError(at, (e as Error).message);
  }
  if (tokens.length === 0) throw new PolicyError(at, 'the whole message cannot be sealed; name its fields');
  if (tokens.some(isSignedMeterName)) throw new PolicyError(at, SIGNED_METER_REFUSAL);
  const last = tokens[tokens.length - 1]!;
  if (last === WILDCARD || isArrayIndex(last)) throw new PolicyError(at, 'an array element cannot be removed (the indices would shift); seal its members, or the whole array');
  tokens.forEach((t, k) => {
    if (t === 'customData' && k === tokens.length - 1) throw new PolicyError(at, 'customData carries the sealed fields and cannot itself be sealed; seal its members');
    if (k > 0 && tokens[k - 1] === 'customData' && (t === 'vendorId' || t === 'sealed')) throw new PolicyError(at, `customData.${t} is part of the evseal carrier`);
  });
  // Walk the schema: every token must exist; "*" only on arrays, never an index.
  const step = schemaAt(root, []);
  let cur = step.ok ? step.schema : root;
  let required = false;
  let parent: Schema = cur;
  for (const t of tokens) {
    if (isArrayIndex(t) && cur.type === 'array') throw new PolicyError(at, `use "*" for array elements, not an index (${t})`);
    const next = childSchema(root, cur, t);
    if (!next.ok) throw new PolicyError(at, `not in the OCPP ${version} ${rule.action} ${rule.message} schema: ${next.why}`);
    parent = cur;
    cur = next.schema;
    required = next.required;
  }
  if (someNode(root, cur, (_n, name) => name !== undefined && isSignedMeterName(name))) throw new PolicyError(at, `${SIGNED_METER_REFUSAL} (the field contains a signedMeterValue)`);
  if (version === '1.6' && someNode(root, cur, carriesSignedData)) throw new PolicyError(at, `${SIGNED_METER_REFUSAL} (in 1.6 a sampled value may hold one, with format SignedData)`);
  let placeholder: Json | undefined;
  if (required) {
    const p = placeholderFor(cur);
    if (!p.ok) throw new PolicyError(at, `the schema requires this field and ${p.why}`);
    placeholder = p.value;
  }
  if (rule.where) {
    for (const [k, x] of Object.entries(rule.where)) {
      if (k === last) throw new PolicyError(at, `where.${k} tests the sealed field itself`);
      if (isSignedMeterName(k)) throw new PolicyError(at, SIGNED_METER_REFUSAL);
      const m = childSchema(root, parent, k);
      if (!m.ok || k === WILDCARD) throw new PolicyError(at, `where.${k}: the object that contains the field has no member ${JSON.stringify(k)}`);
      if (Array.isArray(m.schema.enum) && !m.schema.enum.includes(x)) throw new PolicyError(at, `where.${k}: ${JSON.stringify(x)} is not one of the schema's values`);
      const t = m.schema.type;
      const ok = t === undefined || (t === 'string' && typeof x === 'string') || (t === 'boolean' && typeof x === 'boolean') || ((t === 'integer' || t === 'number') && typeof x === 'number');
      if (!ok) throw new PolicyError(at, `where.${k}: the schema's type is ${String(t)}`);
    }
  }
  const context = (rule.context ?? []).map((c) => {
    const cat = `${where}: context ${JSON.stringify(c)} (OCPP ${version})`;
    let ct: string[];
    try {
      ct = parsePointer(c);
    } catch (e) {
      throw new PolicyError(cat, (e as Error).message);
    }
    if (ct.length === 0) throw new PolicyError(cat, 'must name a field');
    const s = schemaAt(root, ct);
    if (!s.ok) throw new PolicyError(cat, `not in the OCPP ${version} ${rule.action} ${rule.message} schema: ${s.why}`);
    return ct;
  });
  return { rule: i, pattern, tokens, ...(placeholder !== undefined ? { placeholder } : {}), ...(rule.where ? { where: rule.where } : {}), context, to: rule.to, kind: rule.kind };
}

/** Two patterns can reach the same field, or one field inside the other. */
function overlaps(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x === y) continue;
    if ((x === WILDCARD && isArrayIndex(y)) || (y === WILDCARD && isArrayIndex(x))) continue;
    return false;
  }
  return true;
}

function disjointWhere(a: CompiledField, b: CompiledField): boolean {
  if (a.tokens.length !== b.tokens.length || !a.where || !b.where) return false;
  return Object.entries(a.where).some(([k, x]) => b.where !== undefined && Object.hasOwn(b.where, k) && b.where[k] !== x);
}

/** Checks and compiles a policy given as parsed JSON. */
export function ocppPolicyFromJSON(v: unknown, o: { rolePolicy?: RolePolicy } = {}): OcppPolicy {
  const rp = o.rolePolicy ?? DEFAULT_ROLE_POLICY;
  const top = exactKeys(v, ['v', 'rules'], ['v', 'rules'], 'top level');
  if (top.v !== 1) throw new PolicyError('top level', 'v must be 1');
  if (!Array.isArray(top.rules)) throw new PolicyError('top level', 'rules must be an array');
  const rules = top.rules.map((r, i) => parseRule(r, i, rp));
  const fields = new Map<string, CompiledField[]>();
  rules.forEach((rule, i) => {
    const where = `rule ${i} (${rule.action})`;
    for (const version of rule.ocpp) {
      const root = messageSchema(version, rule.action, rule.message);
      if (!root) throw new PolicyError(where, `OCPP ${version} has no ${rule.action} ${rule.message}`);
      const k = keyOf(version, rule.action, rule.message, rule.from);
      const list = fields.get(k) ?? [];
      for (const f of rule.fields) list.push(compileField(rule, i, f, version, root, where));
      fields.set(k, list);
    }
  });
  // No field may be claimed by two patterns, and context must not reveal a sealed field.
  for (const [k, list] of fields) {
    const [version, action, message] = k.split('|');
    for (let a = 0; a < list.length; a++) {
      for (let b = a + 1; b < list.length; b++) {
        const x = list[a]!;
        const y = list[b]!;
        if (overlaps(x.tokens, y.tokens) && !disjointWhere(x, y)) {
          throw new PolicyError(`rule ${y.rule} (${action})`, `field ${JSON.stringify(y.pattern)} overlaps ${JSON.stringify(x.pattern)} of rule ${x.rule} in OCPP ${version} ${message}s`);
        }
      }
    }
    for (const f of list) {
      for (const c of f.context) {
        const hit = list.find((g) => overlaps(g.tokens, c));
        if (hit) throw new PolicyError(`rule ${f.rule} (${action})`, `context ${JSON.stringify(formatPointer(c))} overlaps the sealed field ${JSON.stringify(hit.pattern)} (OCPP ${version})`);
      }
    }
  }
  return new OcppPolicy(rules, fields);
}

/** Parses a policy file's text: strict JSON (duplicate member names refused), then checked like ocppPolicyFromJSON. */
export function parseOcppPolicy(text: string, o: { rolePolicy?: RolePolicy } = {}): OcppPolicy {
  return ocppPolicyFromJSON(parseStrictJson(text, 'ocpp policy'), o);
}

export function loadOcppPolicy(path: string, o: { rolePolicy?: RolePolicy } = {}): OcppPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new EvsealError('ERR_NOT_FOUND', `ocpp policy: cannot read ${path}`, { cause: e });
  }
  return parseOcppPolicy(text, o);
}
