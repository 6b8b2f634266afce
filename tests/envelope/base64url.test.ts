// The strict base64url decoder, and isB64uOfLength, which must agree with it without decoding.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { b64u, fromB64u, isB64uOfLength } from '../../src/core/base64url.js';

/** The reference: fromB64u accepts the text and decodes it to exactly n bytes. */
const decodesTo = (s: unknown, n: number): boolean => {
  try {
    return fromB64u(s).length === n;
  } catch {
    return false;
  }
};

test('every byte string round-trips through its one encoding', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      assert.deepEqual(fromB64u(b64u(b)), b);
    }),
    { numRuns: 500 },
  );
});

test('non-canonical spellings are refused', () => {
  for (const s of ['AA==', 'AB', 'A', '+/8', 'AA AA', 'QUJD\n']) assert.equal(decodesTo(s, Buffer.from(s, 'base64url').length), false, s);
});

test('isB64uOfLength agrees with fromB64u, for near-base64url strings around 16 and 32 bytes', () => {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= ';
  const near = (len: number) => fc.array(fc.constantFrom(...chars), { minLength: len - 1, maxLength: len + 1 }).map((a) => a.join(''));
  fc.assert(
    fc.property(fc.oneof(near(22), near(43), near(3), fc.string({ maxLength: 45 })), fc.constantFrom(1, 2, 16, 32), (s, n) =>
      assert.equal(isB64uOfLength(s, n), decodesTo(s, n), `${JSON.stringify(s)} ${n}`),
    ),
    { numRuns: 5000 },
  );
});

test('isB64uOfLength: every last character of a 16- and a 32-byte encoding', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/';
  for (const [n, prefix] of [[16, 'A'.repeat(21)], [32, 'A'.repeat(42)], [1, 'A'], [2, 'AA']] as const) {
    for (const c of alphabet) assert.equal(isB64uOfLength(prefix + c, n), decodesTo(prefix + c, n), prefix + c);
  }
  assert.equal(isB64uOfLength(42, 16), false);
});
