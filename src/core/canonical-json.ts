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
