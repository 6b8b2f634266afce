// checkShape accepts exactly the objects whose keys are the shape's names in order
// (absent optional names skipped), compared with the rule written out directly.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { checkShape, encodeCanonical, parseCanonical, type Shape } from '../../src/core/canonical-json.js';

const SHAPE: Shape = [
  ['a', 'string'],
  ['b', 'int', true],
  ['c', 'string'],
  ['d', 'string', true],
];

const keysOk = (obj: Record<string, unknown>): boolean => {
  const expected = SHAPE.filter(([n, , opt]) => !opt || n in obj).map(([n]) => n);
  const keys = Object.keys(obj);
  return keys.length === expected.length && keys.every((k, i) => k === expected[i]);
};
const accepted = (obj: Record<string, unknown>): boolean => {
  try {
    checkShape(obj, SHAPE, 't');
    return true;
  } catch {
    return false;
  }
};

test('key order and presence: the fast check equals the reference rule', () => {
  const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'toString');
  fc.assert(
    fc.property(fc.uniqueArray(key, { maxLength: 6 }), (names) => {
      const obj: Record<string, unknown> = {};
      for (const n of names) obj[n] = n === 'b' ? 1 : 'x';
      assert.equal(accepted(obj), keysOk(obj), JSON.stringify(names));
    }),
    { numRuns: 2000 },
  );
});

// parseCanonical reads flat shapes (every field a required string or int, as
// envelope headers are) without JSON.parse when nothing needs escaping; the
// rule it must equal is the one written out directly: JSON, the shape, and
// re-encoding gives back the exact text.
const FLAT: Shape = [
  ['v', 'int'],
  ['s', 'string'],
  ['n', 'int'],
  ['t', 'string'],
];
const reference = (text: string): Record<string, unknown> | 'refused' => {
  try {
    const obj = checkShape(JSON.parse(text), FLAT, 't');
    return JSON.stringify(obj) === text ? obj : 'refused';
  } catch {
    return 'refused';
  }
};
const parsed = (text: string): Record<string, unknown> | 'refused' => {
  try {
    return parseCanonical(text, FLAT, 't');
  } catch {
    return 'refused';
  }
};

test('flat shapes: parseCanonical equals the reference rule on canonical texts and on their mutations', () => {
  const str = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('', 'a"b', 'a\\b', '\u0000', '\ud800', '😀', ',"t":"x'));
  const int = fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constantFrom(0, 10));
  const canonical = fc.record({ v: int, s: str, n: int, t: str }).map((o) => JSON.stringify(o));
  const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 3 }), ins: fc.constantFrom('', '"', '\\', ' ', '0', '-', '1', '}', ',', ':', 'é', '\n', '\udc00', '"v":1,', '9') });
  fc.assert(
    fc.property(canonical, fc.array(edit, { maxLength: 3 }), (text, edits) => {
      let t = text;
      for (const e of edits) {
        const at = e.at % (t.length + 1);
        t = t.slice(0, at) + e.ins + t.slice(at + e.del);
      }
      assert.deepEqual(parsed(t), reference(t), JSON.stringify(t));
      // an unmutated text is always accepted, as itself
      assert.deepEqual(parsed(text), JSON.parse(text));
    }),
    { numRuns: 5000 },
  );
});

test('flat shapes: a value holding an escape, control character or surrogate still parses through the full rule', () => {
  for (const s of ['a"b', 'a\\b', 'tab\there', '\ud83d\ude00', '\ud800']) {
    const text = JSON.stringify({ v: 1, s, n: 2, t: 'x' });
    assert.deepEqual(parseCanonical(text, FLAT, 't'), { v: 1, s, n: 2, t: 'x' });
  }
  assert.throws(() => parseCanonical('{"v":01,"s":"a","n":2,"t":"x"}', FLAT, 't'), /not JSON/);
  assert.throws(() => parseCanonical('{"v":1,"s":"a","n":2,"t":"x"} ', FLAT, 't'), /canonical/);
  assert.throws(() => parseCanonical('{"v":9007199254740993,"s":"a","n":2,"t":"x"}', FLAT, 't'), /canonical|must be int/);
});

test('encodeCanonical: the same text whatever order, extra fields or undefined values the object has', () => {
  const canonical = '{"v":1,"s":"a","n":2,"t":"x"}';
  assert.equal(encodeCanonical({ v: 1, s: 'a', n: 2, t: 'x' }, FLAT), canonical);
  assert.equal(encodeCanonical({ t: 'x', n: 2, s: 'a', v: 1 }, FLAT), canonical);
  assert.equal(encodeCanonical({ v: 1, s: 'a', n: 2, t: 'x', extra: true }, FLAT), canonical);
  assert.throws(() => encodeCanonical({ v: 1, s: 'a', n: 2, t: undefined }, FLAT), /missing field t/);
  assert.equal(encodeCanonical({ a: 'x', b: undefined, c: 'y' }, SHAPE), '{"a":"x","c":"y"}');
});
