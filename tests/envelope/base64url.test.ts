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

test('fromB64u equals its definition (decode, re-encode, compare) on near-base64url text, two-byte characters included', () => {
  const reference = (s: string): Uint8Array | 'refused' => {
    const b = Buffer.from(s, 'base64url');
    return b.toString('base64url') === s ? new Uint8Array(b) : 'refused';
  };
  const decoded = (s: string): Uint8Array | 'refused' => {
    try {
      return new Uint8Array(fromB64u(s));
    } catch {
      return 'refused';
    }
  };
  // '\u012b' and '\u0141' are '+' and 'A' in their low byte; '\u00c1' is Latin-1; '\ud83d' a lone surrogate.
  const odd = ['+', '/', '=', ' ', '\n', '!', '.', '\u0000', '\u007f', '\u0080', '\u00c1', '\u00ff', '\u012b', '\u0141', '\u4141', '\ud83d', '\ude00'];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const valid = fc.uint8Array({ maxLength: 40 }).map(b64u);
  const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 2 }), ins: fc.oneof(fc.constantFrom(...odd), fc.constantFrom(...alphabet)) });
  fc.assert(
    fc.property(valid, fc.array(edit, { maxLength: 3 }), (text, edits) => {
      let s = text;
      for (const e of edits) {
        const at = e.at % (s.length + 1);
        s = s.slice(0, at) + e.ins + s.slice(at + e.del);
      }
      assert.deepEqual(decoded(s), reference(s), JSON.stringify(s));
    }),
    { numRuns: 20000 },
  );
  for (const s of ['QUJ\u0141', '\u0141UJD', 'QUJ\u012b', 'QUJD\u0141UJD', 'QUI=', 'QUJD=', 'QQ', 'QR', 'QUI', 'QUJ']) assert.deepEqual(decoded(s), reference(s), s);
});
