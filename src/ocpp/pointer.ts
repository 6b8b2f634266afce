import { EvsealError } from '../core/errors.js';
import { isObject, type Json } from './json.js';

/**
 * JSON Pointer (RFC 6901), strict: a pointer is "" (the whole document) or a
 * sequence of "/"-prefixed reference tokens in which "~" appears only as
 * "~0" (for "~") or "~1" (for "/"). An array index is "0" or a decimal
 * integer without leading zeros, below the array's length; "-" (the element
 * after the last) is refused everywhere, as are indices into non-arrays and
 * member names on arrays.
 *
 * Patterns (policy fields) use the same syntax plus one extension: a token
 * that is exactly "*" stands for every element of an array. It never
 * matches an object member (no OCPP member is named "*").
 */

export const MAX_POINTER_CHARS = 1024;
const ARRAY_INDEX = /^(?:0|[1-9][0-9]{0,8})$/;
const BAD_ESCAPE = /~(?![01])/;
export const WILDCARD = '*';

function bad(p: string, why: string): never {
  throw new EvsealError('ERR_INVALID_INPUT', `JSON pointer ${JSON.stringify(p.length > 80 ? `${p.slice(0, 80)}…` : p)}: ${why}`);
}

/** The reference tokens of a pointer, unescaped. */
export function parsePointer(p: string): string[] {
  if (typeof p !== 'string') bad(String(p), 'not a string');
  if (p.length > MAX_POINTER_CHARS) bad(p, `longer than ${MAX_POINTER_CHARS} characters`);
  if (p === '') return [];
  if (!p.startsWith('/')) bad(p, 'must start with "/"');
  return p
    .slice(1)
    .split('/')
    .map((t) => {
      if (BAD_ESCAPE.test(t)) bad(p, '"~" must be followed by 0 or 1');
      return t.replace(/~1/g, '/').replace(/~0/g, '~');
    });
}

export function formatPointer(tokens: readonly string[]): string {
  return tokens.map((t) => `/${t.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

export function isArrayIndex(t: string): boolean {
  return ARRAY_INDEX.test(t);
}

/** The value at `tokens`, or undefined when there is none. */
export function getAt(doc: Json, tokens: readonly string[]): Json | undefined {
  let cur: Json = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      if (!isArrayIndex(t) || Number(t) >= cur.length) return undefined;
      cur = cur[Number(t)]!;
    } else if (isObject(cur)) {
      if (!Object.hasOwn(cur, t)) return undefined;
      cur = cur[t]!;
    } else {
      return undefined;
    }
  }
  return cur;
}

/** The container (object or array) that holds the last token, or undefined. */
function parentOf(doc: Json, tokens: readonly string[]): Json | undefined {
  if (tokens.length === 0) return undefined;
  return getAt(doc, tokens.slice(0, -1));
}

/**
 * Sets the value at `tokens` in place: an existing array element or object
 * member is replaced, a missing object member is added. The parent must
 * exist. Returns false (changing nothing) when it cannot.
 */
export function setAt(doc: Json, tokens: readonly string[], value: Json): boolean {
  const parent = parentOf(doc, tokens);
  const last = tokens[tokens.length - 1]!;
  if (Array.isArray(parent)) {
    if (!isArrayIndex(last) || Number(last) >= parent.length) return false;
    parent[Number(last)] = value;
    return true;
  }
  if (isObject(parent)) {
    // defineProperty: a member named "__proto__" is data, never the prototype.
    Object.defineProperty(parent, last, { value, enumerable: true, writable: true, configurable: true });
    return true;
  }
  return false;
}

/** Removes an object member in place. Array elements are never removed (indices would shift). */
export function removeAt(doc: Json, tokens: readonly string[]): boolean {
  const parent = parentOf(doc, tokens);
  const last = tokens[tokens.length - 1]!;
  if (!isObject(parent) || !Object.hasOwn(parent, last)) return false;
  delete parent[last];
  return true;
}

/**
 * Every concrete path matching a pattern whose target exists in `doc`, in
 * document order. "*" expands over the elements of an array.
 */
export function expandPattern(doc: Json, pattern: readonly string[]): string[][] {
  const out: string[][] = [];
  const walk = (cur: Json, i: number, path: string[]) => {
    if (i === pattern.length) {
      out.push(path);
      return;
    }
    const t = pattern[i]!;
    if (t === WILDCARD) {
      if (Array.isArray(cur)) cur.forEach((x, k) => walk(x, i + 1, [...path, String(k)]));
      return;
    }
    if (Array.isArray(cur)) {
      if (isArrayIndex(t) && Number(t) < cur.length) walk(cur[Number(t)]!, i + 1, [...path, t]);
    } else if (isObject(cur) && Object.hasOwn(cur, t)) {
      walk(cur[t]!, i + 1, [...path, t]);
    }
  };
  walk(doc, 0, []);
  return out;
}

/** True when the concrete path `tokens` is matched by `pattern` ("*" matching array indices). */
export function matchesPattern(pattern: readonly string[], tokens: readonly string[]): boolean {
  return pattern.length === tokens.length && pattern.every((p, i) => (p === WILDCARD ? isArrayIndex(tokens[i]!) : p === tokens[i]));
}
