// checkShape accepts exactly the objects whose keys are the shape's names in order
// (absent optional names skipped), compared with the rule written out directly.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { checkShape, type Shape } from '../../src/core/canonical-json.js';

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
