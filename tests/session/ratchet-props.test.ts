// Property tests of the Double Ratchet over random conversations and random
// delivery schedules: each direction's in-flight messages are delivered in a
// random order, some are dropped, delivered ones are replayed.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Ratchet, ratchetMessageHeader, type RatchetStateJSON } from '../../src/core/session/ratchet.js';
import { EvsealError } from '../../src/core/errors.js';

const te = new TextEncoder();
const td = new TextDecoder();
const AD = te.encode('props ad');

type Party = 0 | 1; // 0 = initiator A, 1 = responder B
type Op =
  | { kind: 'send'; who: Party; len: number }
  | { kind: 'deliver'; to: Party; pick: number }
  | { kind: 'drop'; to: Party; pick: number }
  | { kind: 'dup'; to: Party; pick: number };

const party = fc.constantFrom<Party>(0, 1);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('send' as const), who: party, len: fc.nat({ max: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: party, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), to: party, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dup' as const), to: party, pick: fc.nat() }) },
);
const schedule = fc.record({
  ops: fc.array(op, { minLength: 1, maxLength: 36 }),
  // the order in which whatever is still in flight at the end is delivered
  flush: fc.array(fc.nat(), { minLength: 36, maxLength: 36 }),
});

interface InFlight {
  msg: Uint8Array;
  text: string;
}

const isOpenFailed = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED';

/** Skipped keys the receiver must store to open `msg` (docs/protocol.md §14.6); 0 if its key is stored. */
function needed(S: RatchetStateJSON, msg: Uint8Array): number {
  const h = ratchetMessageHeader(msg);
  const dh = Buffer.from(h.dh).toString('base64url');
  if (S.skipped.some((k) => k.dh === dh && k.n === h.n)) return 0;
  if (S.dhr === dh) return h.n - S.nr;
  return (S.ckr !== null ? Math.max(0, h.pn - S.nr) : 0) + h.n;
}

/**
 * Runs one schedule. With `exact`, a first delivery must open if and only if
 * the keys it needs fit the bound (else it is refused with the state
 * unchanged and stays in flight for a later attempt); without, every first
 * delivery must open.
 */
function run(ops: Op[], flush: number[], maxSkipped: number | undefined, exact: boolean): void {
  const sk = new Uint8Array(randomBytes(32));
  const o = maxSkipped === undefined ? {} : { maxSkipped };
  const bound = maxSkipped ?? 1000;
  const A = Ratchet.initInitiator(sk, AD, o);
  const P = [A, Ratchet.initResponder(sk, AD, A.ratchetPublicKey!, o)] as const;
  const inFlight: InFlight[][] = [[], []];
  const delivered: InFlight[][] = [[], []];
  let counter = 0;

  const deliver = (to: Party, idx: number): void => {
    const q = inFlight[to]!;
    const [m] = q.splice(idx, 1) as [InFlight];
    const R = P[to];
    const before = R.toJSON();
    const need = needed(before, m.msg);
    if (exact && before.skipped.length + need > bound) {
      const s = JSON.stringify(before);
      assert.throws(() => R.decrypt(m.msg), isOpenFailed, 'a message over the bound is refused');
      assert.equal(JSON.stringify(R.toJSON()), s, 'a refused message leaves the state unchanged');
      q.push(m); // it may open later, once stored keys are used
      return;
    }
    assert.equal(td.decode(R.decrypt(m.msg)), m.text, 'a first delivery opens to its plaintext');
    delivered[to]!.push(m);
  };

  for (const step of ops) {
    if (step.kind === 'send') {
      const text = `${step.who === 0 ? 'A' : 'B'}${counter++}:${'x'.repeat(step.len)}`;
      inFlight[step.who === 0 ? 1 : 0]!.push({ msg: P[step.who].encrypt(te.encode(text)), text });
    } else if (step.kind === 'deliver') {
      const q = inFlight[step.to]!;
      if (q.length > 0) deliver(step.to, step.pick % q.length);
    } else if (step.kind === 'drop') {
      const q = inFlight[step.to]!;
      if (q.length > 0) q.splice(step.pick % q.length, 1);
    } else {
      const d = delivered[step.to]!;
      if (d.length > 0) {
        const R = P[step.to];
        const s = JSON.stringify(R.toJSON());
        assert.throws(() => R.decrypt(d[step.pick % d.length]!.msg), isOpenFailed, 'a duplicate is refused');
        assert.equal(JSON.stringify(R.toJSON()), s);
      }
    }
    assert.ok(P[0].skippedCount <= bound && P[1].skippedCount <= bound, 'skippedCount stays within the bound');
  }
  // Deliver whatever is still in flight, in a random order.
  for (let i = 0; i < flush.length; i++) {
    for (const to of [0, 1] as const) {
      const q = inFlight[to]!;
      if (q.length > 0) deliver(to, flush[i]! % q.length);
    }
  }
  if (!exact) {
    for (const to of [0, 1] as const) {
      while (inFlight[to]!.length > 0) deliver(to, 0);
    }
  }
  assert.ok(P[0].skippedCount <= bound && P[1].skippedCount <= bound);
  // Whatever happened, the two sides still talk, both ways.
  for (const [s, r] of [[0, 1], [1, 0], [0, 1]] as const) {
    const R = P[r];
    const S = R.toJSON();
    const m = P[s].encrypt(te.encode('final'));
    if (exact && S.skipped.length + needed(S, m) > bound) continue;
    assert.equal(td.decode(R.decrypt(m)), 'final');
  }
}

test('random schedules (default bound): every first delivery opens, duplicates are refused', () => {
  fc.assert(
    fc.property(schedule, ({ ops, flush }) => run(ops, flush, undefined, false)),
    { numRuns: 100 },
  );
});

test('random schedules with a small bound: a delivery is refused exactly when its skipped keys would exceed the bound', () => {
  fc.assert(
    fc.property(schedule, fc.integer({ min: 0, max: 4 }), ({ ops, flush }, max) => run(ops, flush, max, true)),
    { numRuns: 100 },
  );
});

test('random schedules survive a serialization round trip at every step', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom<Party>(0, 1), fc.boolean()), { minLength: 1, maxLength: 20 }), (script) => {
      const sk = new Uint8Array(randomBytes(32));
      let A = Ratchet.initInitiator(sk, AD);
      let B = Ratchet.initResponder(sk, AD, A.ratchetPublicKey!);
      const held: { to: Party; msg: Uint8Array; text: string }[] = [];
      let i = 0;
      for (const [who, hold] of script) {
        A = Ratchet.fromJSON(JSON.parse(JSON.stringify(A.toJSON())));
        B = Ratchet.fromJSON(JSON.parse(JSON.stringify(B.toJSON())));
        const text = `m${i++}`;
        const msg = (who === 0 ? A : B).encrypt(te.encode(text));
        if (hold) held.push({ to: who === 0 ? 1 : 0, msg, text });
        else assert.equal(td.decode((who === 0 ? B : A).decrypt(msg)), text);
      }
      for (const h of held.reverse()) assert.equal(td.decode((h.to === 0 ? A : B).decrypt(h.msg)), h.text);
      assert.equal(A.skippedCount + B.skippedCount, 0);
    }),
    { numRuns: 60 },
  );
});
