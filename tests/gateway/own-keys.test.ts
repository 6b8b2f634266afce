// Records keyed by ids others choose: prototype names are plain data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { own, putOwn } from '../../src/gateway/own-keys.js';

test('own/putOwn: __proto__, constructor and toString are ordinary keys, and survive a JSON round trip', () => {
  const rec: Record<string, { n: number }> = {};
  assert.equal(own(rec, 'constructor'), undefined);
  assert.equal(own(rec, 'toString'), undefined);
  assert.equal(own(rec, '__proto__'), undefined);
  putOwn(rec, '__proto__', { n: 1 });
  putOwn(rec, 'constructor', { n: 2 });
  assert.equal(Object.getPrototypeOf(rec), Object.prototype, 'the prototype is untouched');
  assert.deepEqual(Object.keys(rec), ['__proto__', 'constructor']);
  assert.deepEqual([own(rec, '__proto__')?.n, own(rec, 'constructor')?.n], [1, 2]);
  const back = JSON.parse(JSON.stringify(rec)) as Record<string, { n: number }>;
  assert.deepEqual([own(back, '__proto__')?.n, own(back, 'constructor')?.n], [1, 2]);
  putOwn(back, '__proto__', { n: 3 });
  assert.equal(own(back, '__proto__')?.n, 3);
  assert.equal(({} as Record<string, unknown>).n, undefined, 'Object.prototype untouched');
});
