// The Double Ratchet core (src/core/session/ratchet.ts): conversations,
// out-of-order delivery, replays, the skipped-key bound, forward secrecy,
// post-compromise security, tampering and state serialization.
//
// The forward-secrecy test identifies the real message keys with an
// independent implementation of the receive side of docs/protocol.md §14
// (node's hkdfSync, createHmac, diffieHellman; lp framing written out here):
// a key is accepted as "the message key" only if it opens the recorded
// ciphertext on its own.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, randomBytes } from 'node:crypto';
import { Ratchet, ratchetMessageHeader, type RatchetStateJSON } from '../../src/core/session/ratchet.js';
import { EvsealError } from '../../src/core/errors.js';

const te = new TextEncoder();
const td = new TextDecoder();
const enc = (s: string): Uint8Array => te.encode(s);
const dec = (b: Uint8Array): string => td.decode(b);
const AD = enc('session ad: initiator cert hash | responder cert hash | session id');

function pair(o: { maxSkipped?: number } = {}, sk: Uint8Array = new Uint8Array(randomBytes(32))) {
  const A = Ratchet.initInitiator(sk, AD, o);
  const B = Ratchet.initResponder(sk, AD, A.ratchetPublicKey!, o);
  return { A, B, sk };
}

const snap = (r: Ratchet): string => JSON.stringify(r.toJSON());

/** Asserts the one opaque refusal and that the state did not move. */
function refuses(r: Ratchet, msg: Uint8Array, what = 'message'): void {
  const before = snap(r);
  const count = r.skippedCount;
  assert.throws(
    () => r.decrypt(msg),
    (e: unknown) => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED' && e.message === 'message could not be opened',
    `${what} must be refused`,
  );
  assert.equal(snap(r), before, `${what}: state changed by a refused message`);
  assert.equal(r.skippedCount, count);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ------------------------------------------------------------ independent reference

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const refLp = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts.flatMap((p) => [u32(p.length), Buffer.from(p)]));
const fromB = (s: string): Buffer => Buffer.from(s, 'base64url');
const refHmac = (k: Uint8Array, byte: number): Buffer => createHmac('sha256', k).update(Buffer.of(byte)).digest();
function refX25519(sk: Uint8Array, pk: Uint8Array): Buffer {
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(sk).toString('base64url'), x: '' }, format: 'jwk' });
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(pk).toString('base64url') }, format: 'jwk' });
  return diffieHellman({ privateKey: priv, publicKey: pub });
}

interface RefKeys {
  /** the message key */
  mk: Buffer;
  /** chain keys from which it was derived (gone from any later state) */
  chain: Buffer[];
}

/** The receiver's message key for `msg`, computed from its state JSON as docs/protocol.md §14.5 describes. */
function refMessageKey(S: RatchetStateJSON, msg: Uint8Array): RefKeys {
  const h = ratchetMessageHeader(msg);
  const dh = Buffer.from(h.dh).toString('base64url');
  const s = S.skipped.find((e) => e.dh === dh && e.n === h.n);
  if (s) return { mk: fromB(s.mk), chain: [] };
  let ck: Buffer;
  let from: number;
  if (S.dhr === dh) {
    ck = fromB(S.ckr!);
    from = S.nr;
  } else {
    const okm = Buffer.from(hkdfSync('sha256', refX25519(fromB(S.dhs!), h.dh), fromB(S.rk), 'evseal/v1 ratchet root', 64));
    ck = okm.subarray(32);
    from = 0;
  }
  const chain = [ck];
  for (let i = from; i < h.n; i++) chain.push((ck = refHmac(ck, 2)));
  return { mk: refHmac(ck, 1), chain };
}

/** ENCRYPT's inverse from the spec alone: key || nonce = HKDF(0^32, mk, "evseal/v1 ratchet message", 44). */
function refOpen(mk: Uint8Array, msg: Uint8Array, ad: Uint8Array): Buffer {
  const kn = Buffer.from(hkdfSync('sha256', mk, new Uint8Array(32), 'evseal/v1 ratchet message', 44));
  const header = msg.subarray(1, 41);
  const d = createDecipheriv('aes-256-gcm', kn.subarray(0, 32), kn.subarray(32));
  d.setAAD(refLp(ad, header));
  d.setAuthTag(msg.subarray(msg.length - 16));
  return Buffer.concat([d.update(msg.subarray(41, msg.length - 16)), d.final()]);
}

/** Every byte string in a serialized state (all b64u members decoded). */
function stateBytes(S: RatchetStateJSON): string[] {
  const out: string[] = [];
  for (const v of [S.ad, S.rk, S.dhs, S.dhr, S.cks, S.ckr]) if (v) out.push(hex(fromB(v)));
  for (const k of S.skipped) out.push(hex(fromB(k.dh)), hex(fromB(k.mk)));
  return out;
}

// ------------------------------------------------------------ conversations

test('initialisation: the initiator sends on A0 without a DH step, the responder receives on the initiator chain', () => {
  const { A, B } = pair();
  const a0 = A.ratchetPublicKey!;
  assert.equal(a0.length, 32);
  assert.equal(B.ratchetPublicKey, undefined);
  const ms = [0, 1, 2].map((i) => A.encrypt(enc(`hello ${i}`)));
  ms.forEach((m, i) => {
    const h = ratchetMessageHeader(m);
    assert.deepEqual(h, { dh: a0, pn: 0, n: i });
    assert.equal(m[0], 1);
    assert.equal(m.length, 1 + 40 + enc(`hello ${i}`).length + 16);
  });
  ms.forEach((m, i) => assert.equal(dec(B.decrypt(m)), `hello ${i}`));
  assert.equal(B.ratchetPublicKey, undefined, 'no DH step on the initiator chain');
  assert.equal(B.toJSON().nr, 3);
  // The responder's first send makes B1.
  const r = B.encrypt(enc('reply'));
  const b1 = B.ratchetPublicKey!;
  assert.deepEqual(ratchetMessageHeader(r), { dh: b1, pn: 0, n: 0 });
  assert.notDeepEqual(b1, a0);
  assert.equal(dec(A.decrypt(r)), 'reply');
  const a1 = A.ratchetPublicKey!;
  assert.notDeepEqual(a1, a0, 'the initiator took a DH step on B1');
  const m = A.encrypt(enc('again'));
  assert.deepEqual(ratchetMessageHeader(m), { dh: a1, pn: 3, n: 0 });
  assert.equal(dec(B.decrypt(m)), 'again');
});

test('in-order conversation with many direction changes: each change is a DH step with a fresh header key', () => {
  const { A, B } = pair();
  const seen = new Set<string>();
  const lastChainLen = { A: 0, B: 0 };
  let prevDh = '';
  for (let turn = 0; turn < 40; turn++) {
    const [S, R, who] = turn % 2 === 0 ? [A, B, 'A' as const] : [B, A, 'B' as const];
    const burst = 1 + ((turn * 7) % 4);
    let dh = '';
    for (let i = 0; i < burst; i++) {
      const text = `${who} turn ${turn} #${i}`;
      const m = S.encrypt(enc(text));
      const h = ratchetMessageHeader(m);
      if (i === 0) {
        dh = hex(h.dh);
        assert.notEqual(dh, prevDh, 'a direction change changes the header dh');
        assert.ok(!seen.has(dh), 'a ratchet key is never reused');
        seen.add(dh);
        if (turn >= 2) assert.equal(h.pn, lastChainLen[who], 'pn is the length of the previous sending chain');
      }
      assert.equal(hex(h.dh), dh, 'the dh is constant within a chain');
      assert.equal(h.n, i);
      assert.equal(dec(R.decrypt(m)), text);
    }
    lastChainLen[who] = burst;
    prevDh = dh;
  }
  assert.equal(A.skippedCount + B.skippedCount, 0);
});

test('out-of-order, lost, duplicated and replayed messages', () => {
  const { A, B } = pair();
  const a = [0, 1, 2, 3, 4, 5].map((i) => A.encrypt(enc(`a${i}`)));
  // Out of order within a chain.
  assert.equal(dec(B.decrypt(a[2]!)), 'a2');
  assert.equal(B.skippedCount, 2);
  assert.equal(dec(B.decrypt(a[0]!)), 'a0');
  assert.equal(B.skippedCount, 1);
  // Duplicate of an in-chain message and of a skipped-key message.
  refuses(B, a[2]!, 'duplicate (current chain)');
  refuses(B, a[0]!, 'duplicate (used skipped key)');
  // a1 is lost for now; a3 continues.
  assert.equal(dec(B.decrypt(a[3]!)), 'a3');
  // Reply and a new chain; a4, a5 of the old chain arrive after the DH step.
  const b = [0, 1].map((i) => B.encrypt(enc(`b${i}`)));
  assert.equal(dec(A.decrypt(b[1]!)), 'b1');
  const a6 = A.encrypt(enc('a6'));
  assert.equal(ratchetMessageHeader(a6).pn, 6);
  assert.equal(dec(B.decrypt(a6)), 'a6');
  assert.equal(B.skippedCount, 3, 'a1, a4, a5 are stored');
  assert.equal(dec(B.decrypt(a[5]!)), 'a5');
  assert.equal(dec(B.decrypt(a[4]!)), 'a4');
  assert.equal(dec(A.decrypt(b[0]!)), 'b0');
  // Replays of every delivered message, in both directions, after the steps.
  for (const m of [a[0], a[2], a[3], a[4], a[5], a6]) refuses(B, m!, 'replay');
  for (const m of b) refuses(A, m, 'replay');
  // The lost a1 finally arrives; then a1 is lost for good if replayed.
  assert.equal(dec(B.decrypt(a[1]!)), 'a1');
  refuses(B, a[1]!, 'replay of a1');
  assert.equal(B.skippedCount, 0);
  // The conversation goes on.
  const last = B.encrypt(enc('still here'));
  assert.equal(dec(A.decrypt(last)), 'still here');
});

test('lost messages never block later ones, across several DH steps', () => {
  const { A, B } = pair();
  for (let round = 0; round < 6; round++) {
    const sent = [0, 1, 2, 3].map((i) => A.encrypt(enc(`A${round}.${i}`)));
    // deliver only the odd ones
    assert.equal(dec(B.decrypt(sent[1]!)), `A${round}.1`);
    assert.equal(dec(B.decrypt(sent[3]!)), `A${round}.3`);
    const back = [0, 1, 2].map((i) => B.encrypt(enc(`B${round}.${i}`)));
    assert.equal(dec(A.decrypt(back[2]!)), `B${round}.2`);
  }
  assert.equal(B.skippedCount, 12, 'two lost per A chain');
  assert.equal(A.skippedCount, 12, 'two lost per B chain');
});

// ------------------------------------------------------------ skipped-key bound

test('skipped-key bound (5): a message needing more is refused with the state unchanged', () => {
  const { A, B } = pair({ maxSkipped: 5 });
  const a = Array.from({ length: 8 }, (_, i) => A.encrypt(enc(`a${i}`)));
  refuses(B, a[6]!, 'a gap of 6');
  refuses(B, a[7]!, 'a gap of 7');
  assert.equal(dec(B.decrypt(a[5]!)), 'a5');
  assert.equal(B.skippedCount, 5);
  assert.equal(dec(B.decrypt(a[6]!)), 'a6', 'an in-order message needs no skipping');
  for (let i = 0; i < 5; i++) assert.equal(dec(B.decrypt(a[i]!)), `a${i}`);
  assert.equal(B.skippedCount, 0);
  assert.equal(dec(B.decrypt(a[7]!)), 'a7');
});

test('skipped-key bound (default 1000): 1001 skipped keys are refused, 1000 are accepted', () => {
  const { A, B } = pair();
  const a = Array.from({ length: 1002 }, () => A.encrypt(enc('x')));
  refuses(B, a[1001]!, 'a gap of 1001');
  assert.equal(B.skippedCount, 0);
  assert.equal(dec(B.decrypt(a[1000]!)), 'x');
  assert.equal(B.skippedCount, 1000);
  // The store is full. A's next chain (pn = 1002) needs a1001 stored, plus n0 for n1: refused...
  A.decrypt(B.encrypt(enc('r')));
  const n0 = A.encrypt(enc('n0'));
  const n1 = A.encrypt(enc('n1'));
  refuses(B, n1, 'two more skipped keys over a full store');
  refuses(B, n0, 'one more skipped key over a full store');
  // ...until using stored keys frees room.
  assert.equal(dec(B.decrypt(a[3]!)), 'x');
  assert.equal(B.skippedCount, 999);
  refuses(B, n1, 'still two too many');
  assert.equal(dec(B.decrypt(n0)), 'n0');
  assert.equal(B.skippedCount, 1000);
  assert.equal(dec(B.decrypt(n1)), 'n1');
  assert.equal(dec(B.decrypt(a[1001]!)), 'x');
  assert.equal(B.skippedCount, 999);
});

test('the total bound holds across chains, including the rest of an old chain (pn)', () => {
  const { A, B } = pair({ maxSkipped: 5 });
  // chain 1: skip 3
  const c1 = Array.from({ length: 4 }, (_, i) => A.encrypt(enc(`c1.${i}`)));
  assert.equal(dec(B.decrypt(c1[3]!)), 'c1.3');
  assert.equal(B.skippedCount, 3);
  A.decrypt(B.encrypt(enc('r1')));
  // chain 2: a message needing 3 more (total 6) is refused, 2 more (total 5) is accepted
  const c2 = Array.from({ length: 4 }, (_, i) => A.encrypt(enc(`c2.${i}`)));
  refuses(B, c2[3]!, 'total 6 over two chains');
  assert.equal(dec(B.decrypt(c2[2]!)), 'c2.2');
  assert.equal(B.skippedCount, 5);
  assert.equal(dec(B.decrypt(c2[3]!)), 'c2.3');
  A.decrypt(B.encrypt(enc('r2')));
  // chain 3: even one more is refused until stored keys are used
  const c3 = Array.from({ length: 2 }, (_, i) => A.encrypt(enc(`c3.${i}`)));
  refuses(B, c3[1]!, 'total 6 over three chains');
  assert.equal(dec(B.decrypt(c1[0]!)), 'c1.0');
  assert.equal(dec(B.decrypt(c3[1]!)), 'c3.1');
  assert.equal(B.skippedCount, 5);
  for (const m of [c1[1], c1[2], c2[0], c2[1], c3[0]]) B.decrypt(m!);
  assert.equal(B.skippedCount, 0);

  // The rest of an old chain counts too: bound 2, three messages left behind a DH step.
  const p = pair({ maxSkipped: 2 });
  const o = Array.from({ length: 4 }, (_, i) => p.A.encrypt(enc(`o${i}`)));
  p.B.decrypt(o[0]!);
  p.A.decrypt(p.B.encrypt(enc('r')));
  const n = p.A.encrypt(enc('new chain'));
  assert.equal(ratchetMessageHeader(n).pn, 4);
  refuses(p.B, n, 'pn needs 3 skipped keys of the old chain');
  assert.equal(dec(p.B.decrypt(o[1]!)), 'o1');
  assert.equal(dec(p.B.decrypt(n)), 'new chain', 'now only 2 are needed');
  assert.equal(p.B.skippedCount, 2);
});

test('the per-chain gap is bounded before anything is derived (n = 2^32 - 1)', () => {
  const { A, B } = pair({ maxSkipped: 1000 });
  const m = A.encrypt(enc('x'));
  const forged = new Uint8Array(m);
  forged.set([0xff, 0xff, 0xff, 0xff], 37);
  const t = process.hrtime.bigint();
  refuses(B, forged, 'n = 2^32 - 1');
  assert.ok(Number(process.hrtime.bigint() - t) < 2e9, 'refused without walking the chain');
  assert.equal(dec(B.decrypt(m)), 'x');
});

// ------------------------------------------------------------ forward secrecy, PCS

test('forward secrecy: a later state holds none of the earlier keys and opens none of the earlier messages', () => {
  const { A, B } = pair();
  const received: { msg: Uint8Array; text: string; keys: RefKeys; before: RatchetStateJSON }[] = [];
  const deliverToB = (msg: Uint8Array, text: string) => {
    const before = B.toJSON();
    const beforeSecrets = B.secretsForTesting().map(hex);
    const keys = refMessageKey(before, msg);
    // The reference key really is this message's key: it opens the ciphertext on its own.
    assert.equal(refOpen(keys.mk, msg, AD).toString(), text);
    if (keys.chain.length === 0) assert.ok(beforeSecrets.includes(hex(keys.mk)), 'a skipped key is held until used');
    assert.equal(dec(B.decrypt(msg)), text);
    received.push({ msg, text, keys, before });
  };
  // A conversation with direction changes and out-of-order delivery (so skipped keys exist and are used).
  for (let round = 0; round < 5; round++) {
    const texts = [0, 1, 2, 3].map((i) => `A r${round} m${i}`);
    const ms = texts.map((t) => A.encrypt(enc(t)));
    for (const i of [2, 0, 3, 1]) deliverToB(ms[i]!, texts[i]!);
    const r = B.encrypt(enc(`B r${round}`));
    A.decrypt(r);
  }
  // One more exchange, so that B has taken a DH step since every recorded message.
  assert.equal(dec(B.decrypt(A.encrypt(enc('end')))), 'end');
  const later = B.toJSON();
  const laterBytes = new Set([...stateBytes(later), ...B.secretsForTesting().map(hex)]);
  const laterText = JSON.stringify(later);
  for (const { msg, keys, before } of received) {
    assert.ok(!laterBytes.has(hex(keys.mk)), 'a used message key is gone');
    assert.ok(!laterText.includes(keys.mk.toString('base64url')));
    for (const ck of keys.chain) assert.ok(!laterBytes.has(hex(ck)), 'a used chain key is gone');
    // The root key and DH private key of every earlier step are gone too.
    if (before.dhs) assert.ok(!laterBytes.has(hex(fromB(before.dhs))), 'an old ratchet private key is gone');
    assert.ok(!laterBytes.has(hex(fromB(before.rk))), 'an old root key is gone');
    // And the later state cannot open the recorded ciphertext.
    refuses(Ratchet.fromJSON(JSON.parse(JSON.stringify(later))), msg, 'an earlier message under a later state');
  }
  assert.ok(received.length === 20);
});

test('post-compromise security: a copy of B taken at t opens nothing new after A→B, B→A, A→B', () => {
  const { A, B } = pair();
  for (let i = 0; i < 3; i++) {
    B.decrypt(A.encrypt(enc(`warm-up a${i}`)));
    A.decrypt(B.encrypt(enc(`warm-up b${i}`)));
  }
  const stolen = JSON.stringify(B.toJSON()); // the compromise at time t

  // Right after t the copy reads A's next message: the compromise is real.
  const m1 = A.encrypt(enc('A→B 1'));
  assert.equal(dec(Ratchet.fromJSON(JSON.parse(stolen)).decrypt(m1)), 'A→B 1');
  assert.equal(dec(B.decrypt(m1)), 'A→B 1');
  const m2 = B.encrypt(enc('B→A'));
  assert.equal(dec(A.decrypt(m2)), 'B→A');
  const m3 = A.encrypt(enc('A→B 2'));
  const m4 = A.encrypt(enc('A→B 3'));
  assert.equal(dec(B.decrypt(m3)), 'A→B 2');
  assert.equal(dec(B.decrypt(m4)), 'A→B 3');

  // The attacker's copy, even fed every message it saw on the wire, cannot follow.
  const copy = Ratchet.fromJSON(JSON.parse(stolen));
  assert.equal(dec(copy.decrypt(m1)), 'A→B 1');
  refuses(copy, m3, 'healed message (copy after m1)');
  refuses(copy, m4, 'healed message (copy after m1)');
  refuses(Ratchet.fromJSON(JSON.parse(stolen)), m3, 'healed message (fresh copy)');
  // Nor can it impersonate B to A.
  const forged = Ratchet.fromJSON(JSON.parse(stolen)).encrypt(enc('forged'));
  refuses(A, forged, 'a message from the stale copy');
});

// ------------------------------------------------------------ tampering

test('tamper: every single bit flip is refused with the state unchanged, then the original opens', () => {
  const { A, B } = pair();
  const check = (R: Ratchet, m: Uint8Array, text: string) => {
    for (let i = 0; i < m.length * 8; i++) {
      const t = new Uint8Array(m);
      t[i >> 3]! ^= 1 << (i & 7);
      refuses(R, t, `bit ${i}`);
    }
    assert.equal(dec(R.decrypt(m)), text);
  };
  // 1. initiator chain at a responder that has not sent (a flipped dh cannot cause a step)
  check(B, A.encrypt(enc('first')), 'first');
  // 2. a message that makes the initiator take a DH step
  check(A, B.encrypt(enc('step')), 'step');
  // 3. a symmetric-step message, 4. one opened with a skipped key
  const x = A.encrypt(enc('skipped'));
  const y = A.encrypt(enc('symmetric'));
  check(B, y, 'symmetric');
  check(B, x, 'skipped');
});

test('malformed messages, wrong version, wrong AD, all-zero DH', () => {
  const { A, B, sk } = pair();
  const m = A.encrypt(enc('hi'));
  for (const bad of [new Uint8Array(0), m.subarray(0, 56), m.subarray(0, m.length - 1), new Uint8Array([...m, 0])]) refuses(B, bad, 'malformed');
  const v2 = new Uint8Array(m);
  v2[0] = 2;
  refuses(B, v2, 'version 2');
  refuses(B, 'not bytes' as unknown as Uint8Array, 'a string');
  // wrong AD on the receiving side
  const Bx = Ratchet.initResponder(sk, enc('another session'), A.ratchetPublicKey!);
  refuses(Bx, m, 'wrong AD');
  // wrong session secret
  const By = Ratchet.initResponder(new Uint8Array(32).fill(1), AD, A.ratchetPublicKey!);
  refuses(By, m, 'wrong sk');
  assert.equal(dec(B.decrypt(m)), 'hi');
  // Low-order points as a new ratchet key: the initiator would take a DH step.
  const r = B.encrypt(enc('r'));
  const lowOrder = ['00'.repeat(32), '01' + '00'.repeat(31), 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'];
  for (const p of lowOrder) {
    const t = new Uint8Array(r);
    t.set(Buffer.from(p, 'hex'), 1);
    refuses(A, t, `low-order dh ${p.slice(0, 8)}`);
  }
  assert.equal(dec(A.decrypt(r)), 'r');
  // A responder initialised with a low-order initiator key cannot send (and its state does not move).
  const Bz = Ratchet.initResponder(sk, AD, new Uint8Array(32));
  const before = snap(Bz);
  assert.throws(() => Bz.encrypt(enc('x')), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_CRYPTO');
  assert.equal(snap(Bz), before);
});

test('usage errors at construction', () => {
  const usage = (e: unknown) => e instanceof EvsealError && e.code === 'ERR_USAGE';
  assert.throws(() => Ratchet.initInitiator(new Uint8Array(31), AD), usage);
  assert.throws(() => Ratchet.initInitiator(new Uint8Array(32), AD, { maxSkipped: -1 }), usage);
  assert.throws(() => Ratchet.initInitiator(new Uint8Array(32), AD, { maxSkipped: 1.5 }), usage);
  assert.throws(() => Ratchet.initInitiator(new Uint8Array(32), AD, { keygen: () => new Uint8Array(31) }), usage);
  assert.throws(() => Ratchet.initResponder(new Uint8Array(32), AD, new Uint8Array(33)), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_INVALID_INPUT');
  assert.throws(() => ratchetMessageHeader(new Uint8Array(10)), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_INVALID_INPUT');
  // maxSkipped 0: nothing may be skipped, in-order still works
  const { A, B } = pair({ maxSkipped: 0 });
  const a0 = A.encrypt(enc('0'));
  const a1 = A.encrypt(enc('1'));
  refuses(B, a1, 'any gap');
  B.decrypt(a0);
  B.decrypt(a1);
});

// ------------------------------------------------------------ serialization

const roundTrip = (r: Ratchet, o?: { maxSkipped?: number }): Ratchet => Ratchet.fromJSON(JSON.parse(JSON.stringify(r.toJSON())), o);

test('toJSON/fromJSON round trip mid-conversation, with skipped keys, continues correctly', () => {
  let { A, B } = pair();
  // fresh states round-trip too (initiator before a reply, responder before its first send)
  A = roundTrip(A);
  B = roundTrip(B);
  assert.equal(B.ratchetPublicKey, undefined);
  const a = [0, 1, 2, 3].map((i) => A.encrypt(enc(`a${i}`)));
  B.decrypt(a[3]!);
  const r = B.encrypt(enc('r'));
  A.decrypt(r);
  const a4 = A.encrypt(enc('a4'));
  const a5 = A.encrypt(enc('a5'));
  B.decrypt(a5);
  assert.equal(B.skippedCount, 4);
  const j = B.toJSON();
  assert.equal(j.v, 1);
  assert.equal(j.skipped.length, 4);
  const B2 = roundTrip(B);
  assert.deepEqual(B2.toJSON(), j);
  assert.deepEqual(B2.ratchetPublicKey, B.ratchetPublicKey);
  assert.equal(B2.skippedCount, 4);
  for (const [m, t] of [[a[1], 'a1'], [a4, 'a4'], [a[0], 'a0'], [a[2], 'a2']] as const) assert.equal(dec(B2.decrypt(m!)), t);
  refuses(B2, a5, 'replay after the round trip');
  const A2 = roundTrip(A);
  for (let i = 0; i < 4; i++) {
    assert.equal(dec(A2.decrypt(B2.encrypt(enc(`b${i}`)))), `b${i}`);
    assert.equal(dec(B2.decrypt(A2.encrypt(enc(`a${i}`)))), `a${i}`);
  }
});

test('fromJSON rejects malformed state with ERR_STATE', () => {
  const { A, B } = pair();
  const ms = [0, 1, 2].map((i) => A.encrypt(enc(`${i}`)));
  B.decrypt(ms[2]!);
  A.decrypt(B.encrypt(enc('r')));
  B.decrypt(A.encrypt(enc('s')));
  const good = B.toJSON();
  assert.equal(good.skipped.length, 2);
  const isState = (e: unknown) => e instanceof EvsealError && e.code === 'ERR_STATE';
  const bad = (mut: (j: any) => unknown, what: string, o?: { maxSkipped?: number }) => {
    const j = JSON.parse(JSON.stringify(good));
    const r = mut(j);
    assert.throws(() => Ratchet.fromJSON(r === undefined ? j : r, o), isState, what);
  };
  Ratchet.fromJSON(good); // control
  bad(() => null, 'null');
  bad(() => [], 'array');
  bad(() => 'x', 'string');
  bad(() => Object.assign(Object.create({ evil: 1 }), good), 'non-plain prototype');
  bad((j) => { j.v = 2; }, 'version');
  bad((j) => { j.extra = 1; }, 'unknown member');
  bad((j) => { delete j.pn; }, 'missing member');
  bad((j) => { j.rk = j.rk + '='; }, 'padded b64u');
  bad((j) => { j.rk = '+' + j.rk.slice(1); }, 'non-url alphabet');
  bad((j) => { j.ad = j.ad + ' '; }, 'whitespace');
  bad((j) => { j.rk = j.rk.slice(0, -2); }, 'short rk');
  bad((j) => { j.rk = 7; }, 'rk not a string');
  bad((j) => { j.ckr = null; }, 'dhr without ckr');
  bad((j) => { j.cks = null; }, 'dhs without cks');
  bad((j) => { j.dhs = null; j.cks = null; }, 'no DHs after sending');
  bad((j) => { j.dhs = null; j.cks = null; j.dhr = null; j.ckr = null; }, 'no chains at all');
  bad((j) => { j.dhr = null; j.ckr = null; }, 'skipped keys and nr without a receiving chain');
  bad((j) => { j.ns = -1; }, 'negative ns');
  bad((j) => { j.nr = 1.5; }, 'fractional nr');
  bad((j) => { j.pn = 2 ** 32; }, 'pn beyond u32');
  bad((j) => { j.ns = '1'; }, 'ns as string');
  bad((j) => { j.skipped = {}; }, 'skipped not an array');
  bad((j) => { j.skipped.push(j.skipped[0]); }, 'duplicate skipped key');
  bad((j) => { j.skipped[0].extra = 1; }, 'skipped entry member');
  bad((j) => { j.skipped[0].mk = j.skipped[0].mk.slice(0, 10); }, 'short skipped mk');
  bad((j) => { j.skipped[0].n = -1; }, 'negative skipped n');
  bad((j) => { j.skipped.push({ dh: j.dhr, n: j.nr, mk: j.skipped[0].mk }); }, 'skipped key ahead of the receiving chain');
  bad(() => good, 'more skipped keys than maxSkipped', { maxSkipped: 1 });
  // A responder before its first send with a sending counter is inconsistent.
  const fresh = Ratchet.initResponder(new Uint8Array(32), AD, A.ratchetPublicKey!).toJSON();
  assert.throws(() => Ratchet.fromJSON({ ...fresh, ns: 1 }), isState);
  Ratchet.fromJSON(fresh);
});
