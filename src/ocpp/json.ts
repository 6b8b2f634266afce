import { EvsealError } from '../core/errors.js';

/** A JSON value as JSON.parse returns it. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

const MAX_DEPTH = 64;

/**
 * True for plain JSON data: null, booleans, finite numbers, strings, arrays
 * and plain objects (prototype Object or null), at most 64 levels deep.
 */
export function isJson(v: unknown, depth = 0): v is Json {
  if (depth > MAX_DEPTH) return false;
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isJson(x, depth + 1));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    return Object.values(v as object).every((x) => isJson(x, depth + 1));
  }
  return false;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy (the input must be JSON data). Members named "__proto__" stay data. */
export function cloneJson<T extends Json>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * RFC 8785 (JCS) canonical JSON: object members sorted by their UTF-16 code
 * units, no whitespace, strings and numbers as ECMAScript's JSON.stringify
 * writes them (JCS's number form is ECMAScript's Number::toString).
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new EvsealError('ERR_INVALID_INPUT', 'canonical JSON: non-finite number');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new EvsealError('ERR_INVALID_INPUT', `canonical JSON: ${typeof v} is not JSON`);
}

/** Parses text that must already be in canonical form (JCS); anything else is refused. */
export function parseCanonicalJson(text: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not JSON`);
  }
  if (!isJson(v) || canonicalJson(v) !== text) throw new EvsealError('ERR_INVALID_INPUT', `${what}: not canonical JSON (RFC 8785)`);
  return v;
}

/** Structural equality of two JSON values. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
