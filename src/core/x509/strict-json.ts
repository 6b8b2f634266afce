import { EvsealError } from '../errors.js';

/**
 * A small strict JSON reader for human-edited configuration (trust
 * policies). It accepts exactly RFC 8259 JSON, and additionally refuses
 * duplicate object member names (which JSON.parse silently resolves to the
 * last one: a policy could otherwise show one "roles" to a reviewer and
 * apply another). Nesting is limited to 32 levels. Objects are returned
 * with own properties only (a member named "__proto__" stays data).
 */
const WS = /[ \t\n\r]*/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const MAX_DEPTH = 32;

export function parseStrictJson(text: string, what: string): unknown {
  let pos = 0;
  const fail = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: ${why} at offset ${pos}`);
  };
  const ws = () => {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    pos = re.lastIndex;
    return m[0];
  };
  const str = (): string => {
    const s = match(STRING);
    if (s === undefined) return fail('invalid string');
    return JSON.parse(s) as string;
  };
  const value = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const obj: Record<string, unknown> = {};
      const keys = new Set<string>();
      ws();
      if (text[pos] === '}') {
        pos++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail('expected a member name');
        const k = str();
        if (keys.has(k)) fail(`duplicate key ${JSON.stringify(k)}`);
        keys.add(k);
        ws();
        if (text[pos] !== ':') fail("expected ':'");
        pos++;
        Object.defineProperty(obj, k, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === '}') {
          pos++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      pos++;
      const arr: unknown[] = [];
      ws();
      if (text[pos] === ']') {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === ']') {
          pos++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(lit, pos)) {
        pos += lit.length;
        return v;
      }
    }
    const n = match(NUMBER);
    if (n !== undefined) return Number(n);
    return fail('unexpected character');
  };
  if (typeof text !== 'string') fail('not a string');
  const v = value(0);
  ws();
  if (pos !== text.length) fail('trailing characters');
  return v;
}
