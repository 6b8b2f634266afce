// The KEMs keep imported handles of static keys per key buffer (src/core/hpke/dhkem.ts,
// xwing.ts). A buffer changed in place must be used with its new bytes, never the cached key.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { EvsealError } from '../../src/core/errors.js';
import { open, seal, suite } from '../../src/core/hpke/index.js';
import { lp, prefixedLp, i2osp, concat, utf8 } from '../../src/core/bytes.js';
import { signLp, signWith, verifyLp, verifyWith } from '../../src/core/signature.js';
import { generateKeyPairSync } from 'node:crypto';

const EMPTY = new Uint8Array(0);
const pt = utf8('static key cache');
const isOpenFailed = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED';

for (const kemId of [0x0010, 0x0020, 0x647a]) {
  const s = suite(kemId, 0x0001, 0x0002);
  test(`${s.kem.name}: a recipient key buffer rewritten in place opens with its new key only`, () => {
    const a = s.kem.generateKeyPair();
    const b = s.kem.generateKeyPair();
    const sk = new Uint8Array(a.privateKey);
    const toA = seal(s, a.publicKey, EMPTY, EMPTY, pt);
    const toB = seal(s, b.publicKey, EMPTY, EMPTY, pt);
    assert.deepEqual(open(s, toA.enc, sk, EMPTY, EMPTY, toA.ct), pt); // imports and keeps a's handle
    sk.set(b.privateKey);
    assert.deepEqual(open(s, toB.enc, sk, EMPTY, EMPTY, toB.ct), pt);
    assert.throws(() => open(s, toA.enc, sk, EMPTY, EMPTY, toA.ct), isOpenFailed);
  });

  test(`${s.kem.name}: a recipient key buffer wiped to zeros never opens again, however often it is tried`, () => {
    const a = s.kem.generateKeyPair();
    const sk = new Uint8Array(a.privateKey);
    const toA = seal(s, a.publicKey, EMPTY, EMPTY, pt);
    assert.deepEqual(open(s, toA.enc, sk, EMPTY, EMPTY, toA.ct), pt); // imports and keeps a's handle
    sk.fill(0);
    for (let i = 0; i < 3; i++) assert.throws(() => open(s, toA.enc, sk, EMPTY, EMPTY, toA.ct), EvsealError, `attempt ${i + 1}`);
  });

  test(`${s.kem.name}: a recipient public key buffer rewritten in place seals to its new key only`, () => {
    const a = s.kem.generateKeyPair();
    const b = s.kem.generateKeyPair();
    const pk = new Uint8Array(a.publicKey);
    const first = seal(s, pk, EMPTY, EMPTY, pt);
    assert.deepEqual(open(s, first.enc, a.privateKey, EMPTY, EMPTY, first.ct), pt);
    pk.set(b.publicKey);
    const second = seal(s, pk, EMPTY, EMPTY, pt);
    assert.deepEqual(open(s, second.enc, b.privateKey, EMPTY, EMPTY, second.ct), pt);
    assert.throws(() => open(s, second.enc, a.privateKey, EMPTY, EMPTY, second.ct), isOpenFailed);
  });
}

test('DHKEM(X25519) auth mode: sender key buffers rewritten in place are used with their new bytes', () => {
  const s = suite(0x0020, 0x0001, 0x0002);
  const r = s.kem.generateKeyPair();
  const a = s.kem.generateKeyPair();
  const b = s.kem.generateKeyPair();
  const skS = new Uint8Array(a.privateKey);
  const pkS = new Uint8Array(a.publicKey);
  const one = seal(s, r.publicKey, EMPTY, EMPTY, pt, { skS });
  assert.deepEqual(open(s, one.enc, r.privateKey, EMPTY, EMPTY, one.ct, { pkS }), pt);
  skS.set(b.privateKey);
  pkS.set(b.publicKey);
  const two = seal(s, r.publicKey, EMPTY, EMPTY, pt, { skS });
  assert.deepEqual(open(s, two.enc, r.privateKey, EMPTY, EMPTY, two.ct, { pkS }), pt);
  assert.throws(() => open(s, one.enc, r.privateKey, EMPTY, EMPTY, one.ct, { pkS }), isOpenFailed);
});

test('lp and prefixedLp frame each part with its u32 big-endian length', () => {
  const parts = [utf8('abc'), EMPTY, new Uint8Array(300).fill(7)];
  const manual = concat(...parts.flatMap((p) => [i2osp(p.length, 4), p]));
  assert.deepEqual(lp(...parts), manual);
  assert.deepEqual(prefixedLp(utf8('ctx\0'), parts), concat(utf8('ctx\0'), manual));
  assert.deepEqual(lp(), EMPTY);
});

test('signLp/verifyLp are signWith/verifyWith over lp(...parts)', () => {
  const parts = [utf8('header'), new Uint8Array(32).fill(1), new Uint8Array(1000).fill(2)];
  for (const kp of [generateKeyPairSync('ed25519'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' })]) {
    const a = signLp('envelope', kp.privateKey, parts);
    assert.equal(verifyWith('envelope', kp.publicKey, lp(...parts), a), true);
    const b = signWith('envelope', kp.privateKey, lp(...parts));
    assert.equal(verifyLp('envelope', kp.publicKey, parts, b), true);
    // Domain separation and framing still bind: another context or a moved byte fails.
    assert.equal(verifyLp('prekey', kp.publicKey, parts, a), false);
    assert.equal(verifyLp('envelope', kp.publicKey, [concat(parts[0]!, parts[1]!.subarray(0, 1)), parts[1]!.subarray(1), parts[2]!], a), false);
  }
});
