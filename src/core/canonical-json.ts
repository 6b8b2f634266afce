import { EvsealError } from './errors.js';

/**
 * evseal's wire JSON has exactly one encoding: the object's keys in the order
 * the spec lists them, no whitespace, strings and integers as ECMAScript
 * JSON.stringify writes them. Parsing therefore checks the key set and then
 * that re-serialising gives back the exact input; this rejects duplicate
 * keys, unknown keys, reordering, whitespace and alternative escapes in one
 * rule (age's "parse then serialise is the identity").
 */
export type FieldType = 'string' | 'int' | 'string[]' | 'object' | 'object[]';
export type Shape = readonly (readonly [name: string, type: FieldType, optional?: boolean])[];

export function encodeCanonical(obj: Record<string, unknown>, shape: Shape): string {
  // An object built with exactly the shape's fields, in order (as message headers are), is already in canonical order.
  if (inShapeOrder(obj, shape)) return JSON.stringify(obj);
  const ordered: Record<string, unknown> = {};
  for (const [name, , optional] of shape) {
    if (obj[name] === undefined) {
      if (optional) continue;
      throw new EvsealError('ERR_USAGE', `canonical JSON: missing field ${name}`);
    }
    ordered[name] = obj[name];
  }
  return JSON.stringify(ordered);
}

function inShapeOrder(obj: Record<string, unknown>, shape: Shape): boolean {
  const keys = Object.keys(obj);
  if (keys.length !== shape.length) return false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (k !== shape[i]![0] || obj[k] === undefined) return false;
  }
  return true;
}

function typeOk(v: unknown, t: FieldType): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'int':
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'object[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));
  }
}

/**
 * Parse `text` as a canonical object of `shape`. Nested objects are returned
 * as plain values for the caller to check with their own shape via
 * `checkShape` (their canonical form is implied by the outer re-serialisation).
 */
export function parseCanonical(text: string, shape: Shape, what: string): Record<string, unknown> {
  const flat = scanFlat(text, shape);
  if (flat !== undefined) return flat;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not JSON`);
  }
  const obj = checkShape(v, shape, what);
  if (JSON.stringify(obj) !== text) {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not in canonical form (duplicate, unordered or extra keys, or whitespace)`);
  }
  return obj;
}

/** Characters that JSON.stringify escapes (or, for surrogates, may): a text holding one takes the full parse. */
const MAY_ESCAPE = /[\\\u0000-\u001f\ud800-\udfff]/;

/** Per flat shape (every field a required string or int): the text before each value, `{"name":` then `,"name":`. */
const flatPrefixes = new WeakMap<Shape, readonly string[] | null>();

function prefixesOf(shape: Shape): readonly string[] | null {
  let p = flatPrefixes.get(shape);
  if (p === undefined) {
    const flat = shape.every(([, type, optional]) => !optional && (type === 'string' || type === 'int'));
    p = flat ? shape.map(([name], i) => `${i === 0 ? '{' : ','}${JSON.stringify(name)}:`) : null;
    flatPrefixes.set(shape, p);
  }
  return p;
}

/**
 * The common case of parseCanonical without JSON.parse and the re-encoding
 * (headers parsed once per message): for a flat shape and a text with
 * nothing JSON would escape, reads the exact layout JSON.stringify writes,
 * key by key. Anything else, valid or not, returns undefined and takes the
 * full parse, which alone decides what is refused and why. What it accepts
 * is exactly that canonical text: each string value is verbatim between its
 * quotes (no backslash, control character or surrogate anywhere), each int
 * is digits with no leading zero that JSON.stringify prints back the same.
 */
function scanFlat(text: string, shape: Shape): Record<string, unknown> | undefined {
  const prefixes = prefixesOf(shape);
  if (prefixes === null || MAY_ESCAPE.test(text)) return undefined;
  const out: Record<string, unknown> = {};
  let pos = 0;
  for (let i = 0; i < shape.length; i++) {
    const prefix = prefixes[i]!;
    if (!text.startsWith(prefix, pos)) return undefined;
    pos += prefix.length;
    const [name, type] = shape[i]!;
    if (type === 'string') {
      if (text.charCodeAt(pos) !== 0x22) return undefined;
      const end = text.indexOf('"', pos + 1);
      if (end < 0) return undefined;
      out[name] = text.slice(pos + 1, end);
      pos = end + 1;
    } else {
      let end = pos;
      for (let c = text.charCodeAt(end); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++end));
      if (end === pos || end - pos > 16 || (text.charCodeAt(pos) === 0x30 && end > pos + 1)) return undefined;
      const n = Number(text.slice(pos, end));
      if (!Number.isSafeInteger(n)) return undefined;
      out[name] = n;
      pos = end;
    }
  }
  return pos === text.length - 1 && text.charCodeAt(pos) === 0x7d ? out : undefined;
}

/** Exact key set, in order, with types. */
export function checkShape(v: unknown, shape: Shape, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not an object`);
  }
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj);
  // The keys must be exactly the shape's names (an absent optional one skipped), in order.
  let k = 0;
  let inOrder = true;
  for (const [name, , optional] of shape) {
    if (optional && !(name in obj)) continue;
    if (keys[k++] !== name) {
      inOrder = false;
      break;
    }
  }
  if (!inOrder || k !== keys.length) {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: unexpected, missing or misordered keys`);
  }
  for (const [name, type] of shape) {
    if (name in obj && !typeOk(obj[name], type)) {
      throw new EvsealError('ERR_INVALID_INPUT', `${what}: field ${name} must be ${type}`);
    }
  }
  return obj;
}
