// The Range header parser of the gateway's firmware downloads (RFC 9110 §14):
// fixed cases, and a property over random headers and body sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRange } from '../../src/gateway/firmware/range.js';

test('single ranges: closed, open-ended, suffix, clamped to the body', () => {
  assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange('bytes=2-5', 10), { start: 2, end: 5 });
  assert.deepEqual(parseRange('bytes=7-', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=4-99999999999999999999', 10), { start: 4, end: 9 });
});

test('unsatisfiable: a start at or past the end, an empty suffix, any range of an empty body', () => {
  assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=10-20', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=99999999999999999999-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=-5', 0), 'unsatisfiable');
});

test('ignored (whole body): no header, other units, syntax errors, last < first, multiple ranges', () => {
  for (const h of [undefined, 'items=0-1', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=5-2', 'bytes=0-1,3-4', 'bytes 0-1', 'bytes=1-2-3']) {
    assert.equal(parseRange(h, 10), undefined, String(h));
  }
});

test('property: any answer lies inside the body; a well-formed in-body range comes back exactly', () => {
  fc.assert(
    fc.property(fc.nat(5000), fc.option(fc.nat(6000), { nil: undefined }), fc.option(fc.nat(6000), { nil: undefined }), (total, a, b) => {
      const h = `bytes=${a ?? ''}-${b ?? ''}`;
      const r = parseRange(h, total);
      if (r !== undefined && r !== 'unsatisfiable') {
        assert.ok(r.start >= 0 && r.start <= r.end && r.end < total, `${h} of ${total} gave ${JSON.stringify(r)}`);
      }
      if (a !== undefined && b !== undefined && a <= b && b < total) assert.deepEqual(r, { start: a, end: b });
      if (a !== undefined && a >= total && (b === undefined || b >= a)) assert.equal(r, 'unsatisfiable');
      if (a === undefined && b !== undefined && b > 0 && total > 0) assert.deepEqual(r, { start: Math.max(0, total - b), end: total - 1 });
    }),
  );
});
