// Property tests (fast-check) for the HPKE layer, plus DHKEM interop with @hpke/core.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { EvsealError } from '../../src/core/errors.js';
import { open, seal, setupRecipient, setupSender, suite, type KemKeyPair, type Suite } from '../../src/core/hpke/index.js';

const NUM_RUNS = 50;
const hex = (b: Uint8Array | ArrayBuffer): string => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');
const isOpenFailed = (e: unknown): boolean =>
  e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED' && e.message === 'decryption failed';

const KEM_IDS = [0x0010, 0x0020, 0x647a] as const;
const AEAD_IDS = [0x0001, 0x0002, 0x0003, 0xffff] as const;
// Every (KEM, AEAD) with HKDF-SHA256, plus a couple with the other KDFs.
const SUITES: Suite[] = [
  ...KEM_IDS.flatMap((k) => AEAD_IDS.map((a) => suite(k, 0x0001, a))),
  suite(0x0020, 0x0002, 0x0002),
  suite(0x0010, 0x0003, 0x0003),
];
const SEALING = SUITES.filter((s) => s.aead.nK > 0);

// One recipient and one sender key pair per KEM, made once.
const keys = new Map<number, { r: KemKeyPair; s: KemKeyPair }>();
for (const k of KEM_IDS) {
  const kem = suite(k, 1, 1).kem;
  keys.set(k, { r: kem.generateKeyPair(), s: kem.generateKeyPair() });
}

const bytes = (max: number, min = 0): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: min, maxLength: max });

/** Mode 0..3 as options; auth modes fall back to non-auth for X-Wing (not an authenticated KEM). */
function modeOpts(s: Suite, mode: number, psk: Uint8Array, pskId: Uint8Array) {
  const k = keys.get(s.kem.id)!;
  const auth = (mode & 2) !== 0 && s.kem.authEncap !== undefined;
  const p = (mode & 1) !== 0 ? { psk, pskId } : {};
  return {
    sender: { ...p, ...(auth ? { skS: k.s.privateKey } : {}) },
    recipient: { ...p, ...(auth ? { pkS: k.s.publicKey } : {}) },
  };
}

const caseArb = (suites: Suite[], minAad = 0, minInfo = 0) =>
  fc.record({
    s: fc.constantFrom(...suites),
    mode: fc.integer({ min: 0, max: 3 }),
    pt: bytes(300),
    aad: bytes(40, minAad),
    info: bytes(40, minInfo),
    psk: bytes(48, 32),
    pskId: bytes(16, 1),
  });

test('round trip: every suite and mode, random pt/aad/info', () => {
  fc.assert(
    fc.property(caseArb(SUITES), ({ s, mode, pt, aad, info, psk, pskId }) => {
      const k = keys.get(s.kem.id)!;
      const o = modeOpts(s, mode, psk, pskId);
      const { enc, ctx } = setupSender(s, k.r.publicKey, { info, ...o.sender });
      assert.equal(enc.length, s.kem.nEnc);
      const rc = setupRecipient(s, enc, k.r.privateKey, { info, ...o.recipient });
      assert.equal(hex(rc.export(info, 17)), hex(ctx.export(info, 17)));
      if (s.aead.nK === 0) return;
      for (let i = 0; i < 2; i++) {
        const ct = ctx.seal(pt, aad);
        assert.equal(ct.length, pt.length + s.aead.nT);
        assert.equal(hex(rc.open(ct, aad)), hex(pt));
      }
      const one = seal(s, k.r.publicKey, info, aad, pt, o.sender);
      assert.equal(hex(open(s, one.enc, k.r.privateKey, info, aad, one.ct, o.recipient)), hex(pt));
    }),
    { numRuns: NUM_RUNS },
  );
});

test('any single-bit flip in enc, ct, aad or info makes open throw ERR_OPEN_FAILED', () => {
  fc.assert(
    fc.property(
      caseArb(SEALING, 1, 1),
      fc.constantFrom('enc', 'ct', 'aad', 'info'),
      fc.nat(),
      ({ s, mode, pt, aad, info, psk, pskId }, where, bit) => {
        const k = keys.get(s.kem.id)!;
        const o = modeOpts(s, mode, psk, pskId);
        const m = seal(s, k.r.publicKey, info, aad, pt, o.sender);
        const parts = { enc: m.enc.slice(), ct: m.ct.slice(), aad: aad.slice(), info: info.slice() };
        const target = parts[where];
        const b = bit % (target.length * 8);
        target[b >> 3]! ^= 1 << (b & 7);
        assert.throws(() => open(s, parts.enc, k.r.privateKey, parts.info, parts.aad, parts.ct, o.recipient), isOpenFailed);
        // And the unmodified message still opens.
        assert.equal(hex(open(s, m.enc, k.r.privateKey, info, aad, m.ct, o.recipient)), hex(pt));
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

test('wrong key, wrong psk, wrong sender key: ERR_OPEN_FAILED', () => {
  fc.assert(
    fc.property(caseArb(SEALING), ({ s, mode, pt, aad, info, psk, pskId }) => {
      const k = keys.get(s.kem.id)!;
      const o = modeOpts(s, mode, psk, pskId);
      const m = seal(s, k.r.publicKey, info, aad, pt, o.sender);
      // The sender's key pair is some other recipient's.
      assert.throws(() => open(s, m.enc, k.s.privateKey, info, aad, m.ct, o.recipient), isOpenFailed);
      if ('psk' in o.recipient) {
        const psk2 = psk.slice();
        psk2[0]! ^= 1;
        assert.throws(() => open(s, m.enc, k.r.privateKey, info, aad, m.ct, { ...o.recipient, psk: psk2 }), isOpenFailed);
      }
      if ('pkS' in o.recipient) {
        assert.throws(() => open(s, m.enc, k.r.privateKey, info, aad, m.ct, { ...o.recipient, pkS: k.r.publicKey }), isOpenFailed);
      }
      // Truncated ciphertexts and encs.
      assert.throws(() => open(s, m.enc, k.r.privateKey, info, aad, m.ct.subarray(0, m.ct.length - 1), o.recipient), isOpenFailed);
      assert.throws(() => open(s, m.enc.subarray(1), k.r.privateKey, info, aad, m.ct, o.recipient), isOpenFailed);
      assert.throws(() => open(s, m.enc, k.r.privateKey, info, aad, new Uint8Array(0), o.recipient), isOpenFailed);
    }),
    { numRuns: NUM_RUNS },
  );
});

test('messages of one context opened out of order fail; in order they open', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SEALING),
      fc.array(bytes(64), { minLength: 2, maxLength: 6 }),
      fc.infiniteStream(fc.nat()),
      (s, pts, rand) => {
        const k = keys.get(s.kem.id)!;
        const { enc, ctx } = setupSender(s, k.r.publicKey);
        const cts = pts.map((p) => ctx.seal(p));
        // A random permutation that is not the identity.
        const order = pts.map((_, i) => i);
        const it = rand[Symbol.iterator]();
        for (let i = order.length - 1; i > 0; i--) {
          const j = it.next().value! % (i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        if (order.every((v, i) => v === i)) [order[0], order[1]] = [order[1]!, order[0]!];
        const rc = setupRecipient(s, enc, k.r.privateKey);
        const first = order.findIndex((v, i) => v !== i);
        for (let i = 0; i < first; i++) assert.equal(hex(rc.open(cts[order[i]!]!)), hex(pts[order[i]!]!));
        assert.throws(() => rc.open(cts[order[first]!]!), isOpenFailed);
        // The failure did not advance the sequence number: the rest opens in order.
        for (let i = first; i < cts.length; i++) assert.equal(hex(rc.open(cts[i]!)), hex(pts[i]!));
        // A replay of any message now fails.
        assert.throws(() => rc.open(cts[0]!), isOpenFailed);
      },
    ),
    { numRuns: NUM_RUNS },
  );
});

for (const [kemId, name] of [
  [0x0020, 'DHKEM(X25519)'],
  [0x0010, 'DHKEM(P-256)'],
] as const) {
  test(`${name} base mode interop with @hpke/core, both directions`, async () => {
    const theirKem = kemId === 0x0020 ? new DhkemX25519HkdfSha256() : new DhkemP256HkdfSha256();
    const kp = keys.get(kemId)!.r;
    const hpk = await theirKem.deserializePublicKey(kp.publicKey);
    const hsk = await theirKem.deserializePrivateKey(kp.privateKey);
    const theirs = {
      0x0001: new CipherSuite({ kem: theirKem, kdf: new HkdfSha256(), aead: new Aes128Gcm() }),
      0x0002: new CipherSuite({ kem: theirKem, kdf: new HkdfSha256(), aead: new Aes256Gcm() }),
    } as const;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0x0001, 0x0002), bytes(300), bytes(40), bytes(40), async (aeadId, pt, aad, info) => {
        const s = suite(kemId, 0x0001, aeadId);
        const them = theirs[aeadId];
        // ours -> @hpke/core
        const m = seal(s, kp.publicKey, info, aad, pt);
        assert.equal(hex(await them.open({ recipientKey: hsk, enc: m.enc, info }, m.ct, aad)), hex(pt));
        // @hpke/core -> ours
        const r = await them.seal({ recipientPublicKey: hpk, info }, pt, aad);
        assert.equal(hex(open(s, new Uint8Array(r.enc), kp.privateKey, info, aad, new Uint8Array(r.ct))), hex(pt));
        // Exports agree.
        const { enc, ctx } = setupSender(s, kp.publicKey, { info });
        const rc = await them.createRecipientContext({ recipientKey: hsk, enc, info });
        assert.equal(hex(await rc.export(aad, 32)), hex(ctx.export(aad, 32)));
      }),
      { numRuns: NUM_RUNS },
    );
  });
}
