// JSON Pointer (RFC 6901), strict, plus the "*" pattern token; and the
// RFC 8785 canonical JSON used for sealed-field plaintexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expandPattern, formatPointer, getAt, matchesPattern, parsePointer, removeAt, setAt } from '../../src/ocpp/pointer.js';
import { canonicalJson, parseCanonicalJson, type Json } from '../../src/ocpp/json.js';

// RFC 6901 §5
const DOC: Json = { foo: ['bar', 'baz'], '': 0, 'a/b': 1, 'c%d': 2, 'e^f': 3, 'g|h': 4, 'i\\j': 5, 'k"l': 6, ' ': 7, 'm~n': 8 };

test('RFC 6901 section 5 examples', () => {
  const cases: [string, Json][] = [
    ['', DOC],
    ['/foo', ['bar', 'baz']],
    ['/foo/0', 'bar'],
    ['/', 0],
    ['/a~1b', 1],
    ['/c%d', 2],
    ['/e^f', 3],
    ['/g|h', 4],
    ['/i\\j', 5],
    ['/k"l', 6],
    ['/ ', 7],
    ['/m~0n', 8],
  ];
  for (const [p, v] of cases) {
    assert.deepEqual(getAt(DOC, parsePointer(p)), v, p);
    assert.equal(formatPointer(parsePointer(p)), p);
  }
});

test('strict parsing refuses bad pointers, and get refuses bad indices', () => {
  for (const p of ['foo', '/~', '/~2', '/a~', '#/foo', '/'.repeat(1025)]) assert.throws(() => parsePointer(p), { code: 'ERR_INVALID_INPUT' }, p);
  for (const p of ['/foo/-', '/foo/01', '/foo/2', '/foo/x', '/foo/0/x', '/nope', '/foo/1e0']) assert.equal(getAt(DOC, parsePointer(p)), undefined, p);
});

test('set replaces or adds members, never creates parents; remove deletes object members only', () => {
  const d: Json = { a: { b: 1 }, l: [1, 2] };
  assert.equal(setAt(d, ['a', 'c'], 2), true);
  assert.equal(setAt(d, ['l', '1'], 5), true);
  assert.equal(setAt(d, ['l', '2'], 5), false, 'no append');
  assert.equal(setAt(d, ['x', 'y'], 1), false, 'no parent');
  assert.equal(removeAt(d, ['l', '0']), false, 'no array removal');
  assert.equal(removeAt(d, ['a', 'b']), true);
  assert.equal(removeAt(d, ['a', 'b']), false);
  assert.deepEqual(d, { a: { c: 2 }, l: [1, 5] });
  // "__proto__" is data, never the prototype
  const p = JSON.parse('{"__proto__":{"x":1}}') as Json;
  assert.equal(setAt(p, ['__proto__', 'y'], 2), true);
  assert.equal(setAt(p, ['q'], 1), true);
  assert.equal(({} as Record<string, unknown>).y, undefined);
  assert.equal(canonicalJson(p), '{"__proto__":{"x":1,"y":2},"q":1}');
});

test('"*" expands over array elements only', () => {
  const d: Json = { m: [{ s: [{ v: 1 }, { v: 2 }] }, { s: [{ w: 3 }] }], o: { '*': { v: 9 } } };
  assert.deepEqual(expandPattern(d, parsePointer('/m/*/s/*/v')).map(formatPointer), ['/m/0/s/0/v', '/m/0/s/1/v']);
  assert.deepEqual(expandPattern(d, parsePointer('/o/*/v')), []);
  assert.equal(matchesPattern(parsePointer('/m/*/s/*/v'), parsePointer('/m/3/s/0/v')), true);
  assert.equal(matchesPattern(parsePointer('/m/*/s/*/v'), parsePointer('/m/x/s/0/v')), false);
});

test('format and parse are inverse for any tokens', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', '/', '~', '0', '1', '*', ' ', 'é') })), (tokens) => {
      assert.deepEqual(parsePointer(formatPointer(tokens)), tokens);
    }),
  );
});

test('canonical JSON is RFC 8785: sorted members, no whitespace, ECMAScript numbers; parse refuses other forms', () => {
  assert.equal(canonicalJson({ b: [1e21, 0.1, -0, 1.5e-7], a: 'é\u0001', '\u20ac': null, '\r': true }), '{"\\r":true,"a":"é\\u0001","b":[1e+21,0.1,0,1.5e-7],"€":null}');
  assert.throws(() => parseCanonicalJson('{"b":1,"a":2}', 'x'), { code: 'ERR_INVALID_INPUT' });
  assert.throws(() => parseCanonicalJson('{"a": 1}', 'x'), { code: 'ERR_INVALID_INPUT' });
  assert.throws(() => parseCanonicalJson('{"a":1.0}', 'x'), { code: 'ERR_INVALID_INPUT' });
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = canonicalJson(v);
      assert.equal(canonicalJson(parseCanonicalJson(c, 'x')), c);
    }),
  );
});
