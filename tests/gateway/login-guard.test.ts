// The failed-login throttle (src/gateway/ocpp/login-guard.ts) on a fake
// clock: per-source budgets, refill, reservation by logins in progress, the
// overall cap, IPv6 /64 grouping, the bound on sources remembered, and a budget shared by cluster nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LoginGuard } from '../../src/gateway/ocpp/login-guard.js';
import { sourceKey } from '../../src/gateway/source-key.js';
import { TokenBuckets } from '../../src/gateway/token-buckets.js';

const clock = () => {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
};
const fail = (g: LoginGuard, addr: string) => {
  const a = g.admit(addr, 'CP-1');
  if (a.ok) a.done(true);
  return a;
};

test('a source gets failureBurst failures, then 429 with the time until one more; other sources are unaffected', () => {
  const c = clock();
  const g = new LoginGuard({ failureBurst: 3, failuresPerMinute: 6, maxPending: 100, now: c.now });
  for (let i = 0; i < 3; i++) assert.equal(fail(g, '10.0.0.1').ok, true);
  const r = g.admit('10.0.0.1', 'CP-1');
  assert.deepEqual(r, { ok: false, status: 429, retryAfterSec: 10 }, '6 per minute: one every 10 s');
  assert.equal(g.admit('10.0.0.2', 'CP-1').ok, true, 'another address has its own budget');
  c.advance(9_000);
  assert.deepEqual(g.admit('10.0.0.1', 'CP-1'), { ok: false, status: 429, retryAfterSec: 1 });
  c.advance(1_000);
  assert.equal(fail(g, '10.0.0.1').ok, true, 'refilled by one after 10 s');
  assert.equal(g.admit('10.0.0.1', 'CP-1').ok, false);
});

test('successful logins cost nothing, even many at once from one source (a fleet behind one NAT); concurrent failures run into debt', () => {
  const c = clock();
  const g = new LoginGuard({ failureBurst: 2, failuresPerMinute: 1, maxPending: 100, now: c.now });
  const many = Array.from({ length: 50 }, () => g.admit('192.0.2.7', 'CP-1'));
  assert.ok(many.every((a) => a.ok));
  for (const a of many) if (a.ok) a.done(false);
  assert.equal(g.tracked, 0, 'nothing remembered for a source that never failed');
  // Five guesses admitted at once, all wrong: the budget of two goes into debt, floored at one burst.
  const guesses = Array.from({ length: 5 }, () => g.admit('192.0.2.7', 'CP-1'));
  assert.equal(g.pending, 5);
  for (const a of guesses) if (a.ok) a.done(true);
  assert.deepEqual(g.admit('192.0.2.7', 'CP-1'), { ok: false, status: 429, retryAfterSec: 180 }, 'three tokens short at one per minute');
  const a = guesses[0]!;
  assert.ok(a.ok);
  a.done(true); // settling twice changes nothing
  assert.equal(g.pending, 0);
  c.advance(180_000);
  assert.equal(g.admit('192.0.2.7', 'CP-1').ok, true);
});

test('at most maxPending logins are checked at once: beyond that 503, Retry-After 1', () => {
  const g = new LoginGuard({ failureBurst: 10, failuresPerMinute: 6, maxPending: 2, now: clock().now });
  const a = g.admit('10.0.0.1', 'CP-1');
  const b = g.admit('10.0.0.2', 'CP-1');
  assert.deepEqual(g.admit('10.0.0.3', 'CP-1'), { ok: false, status: 503, retryAfterSec: 1 });
  assert.ok(a.ok && b.ok);
  a.done(true);
  assert.equal(g.admit('10.0.0.3', 'CP-1').ok, true);
});

test('sources: IPv4-mapped addresses are IPv4, IPv6 counts by /64', () => {
  assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey(undefined), '?');
  const c = clock();
  const g = new LoginGuard({ failureBurst: 1, failuresPerMinute: 1, maxPending: 100, now: c.now });
  assert.equal(fail(g, '2001:db8:1:2::1').ok, true);
  assert.equal(g.admit('2001:db8:1:2::dead:beef', 'CP-1').ok, false, 'same /64, same budget');
  assert.equal(g.admit('2001:db8:1:3::1', 'CP-1').ok, true);
});

test('property: a source is refused exactly when one more failure would exceed burst + refill over some interval', () => {
  // The token bucket's defining property: failures in any interval [t1, t] never exceed
  // burst + rate * (t - t1), and a login is refused only when one more would.
  const burst = 4;
  const perMs = 6 / 60_000;
  let refused = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          src: fc.integer({ min: 0, max: 2 }),
          wait: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: 120_000 })),
          ok: fc.oneof(fc.constant(false), fc.constant(false), fc.constant(true)), // mostly failures, to reach the limit
        }),
        { minLength: 10, maxLength: 150, size: 'max' },
      ),
      (steps) => {
        const c = clock();
        const g = new LoginGuard({ failureBurst: burst, failuresPerMinute: 6, maxPending: 1000, now: c.now });
        const failedAt = new Map<number, number[]>();
        // the largest (failures in [t1, now]) - rate * (now - t1) over t1 = each earlier failure
        const worst = (times: number[], now: number) => Math.max(0, ...times.map((t1, k) => times.length - k - perMs * (now - t1)));
        for (const s of steps) {
          c.advance(s.wait);
          const now = c.now();
          const times = failedAt.get(s.src) ?? [];
          const wouldExceed = worst([...times, now], now) > burst + 1e-9;
          const a = g.admit(`10.0.0.${s.src}`, 'CP-1');
          assert.equal(!a.ok, wouldExceed, `refused ${!a.ok}, one more failure would exceed ${wouldExceed}`);
          if (!a.ok) refused++;
          else {
            a.done(!s.ok);
            if (!s.ok) failedAt.set(s.src, [...times, now]);
          }
          assert.equal(g.pending, 0);
        }
      },
    ),
  );
  assert.ok(refused > 0, 'the schedules reached the limit');
});

test('each station id has a budget per source of its own, registered or not', () => {
  const g = new LoginGuard({ failureBurst: 2, failuresPerMinute: 1, maxPending: 100, now: clock().now });
  const fail = (id: string) => {
    const a = g.admit('10.9.9.9', id);
    if (a.ok) a.done(true);
    return a.ok;
  };
  // A misconfigured charger behind a shared address exhausts its own budget only.
  assert.deepEqual([fail('CP-bad'), fail('CP-bad'), fail('CP-bad')], [true, true, false]);
  assert.equal(g.admit('10.9.9.9', 'CP-good').ok, true, 'another station behind the same address is not throttled');
  assert.equal(g.admit('10.9.9.10', 'CP-bad').ok, true, 'the same station from another address has its own budget');
});

test('sources remembered are bounded: the oldest is forgotten first', () => {
  const g = new LoginGuard({ failureBurst: 1, failuresPerMinute: 1, maxPending: 100, now: clock().now, maxTracked: 4 });
  for (let i = 0; i < 10; i++) assert.equal(fail(g, `10.0.1.${i}`).ok, true);
  assert.equal(g.tracked, 4);
  assert.equal(g.admit('10.0.1.9', 'CP-1').ok, false, 'the newest is still held');
  assert.equal(g.admit('10.0.1.0', 'CP-1').ok, true, 'the oldest was forgotten');
});

test('in a cluster, failures on any node spend the shared budget, which each node checks after its own', async () => {
  const c = clock();
  // one budget kept for the cluster (the store's, in a real one), two nodes
  const shared = new TokenBuckets({ burst: 3, perMinute: 6, now: c.now });
  const [a, b] = [0, 1].map(() => new LoginGuard({ failureBurst: 3, failuresPerMinute: 6, maxPending: 100, now: c.now, shared }));
  assert.equal(await a!.sharedWait('10.0.0.1', 'CP-1'), 0);
  // two failures through a, one through b: each node's own budget still has tokens, the cluster's none
  fail(a!, '10.0.0.1');
  fail(a!, '10.0.0.1');
  fail(b!, '10.0.0.1');
  assert.equal(a!.admit('10.0.0.1', 'CP-1').ok, true, "a's own budget: one left");
  assert.equal(await a!.sharedWait('10.0.0.1', 'CP-1'), 10);
  assert.equal(await b!.sharedWait('10.0.0.1', 'CP-1'), 10);
  assert.equal(await b!.sharedWait('10.0.0.2', 'CP-1'), 0, 'another source');
  c.advance(10_000);
  assert.equal(await b!.sharedWait('10.0.0.1', 'CP-1'), 0, 'refilled by one');
  // a success spends nothing
  const ok = b!.admit('10.0.0.1', 'CP-1');
  assert.ok(ok.ok);
  ok.done(false);
  assert.equal(await a!.sharedWait('10.0.0.1', 'CP-1'), 0);
  // one node alone has no shared budget
  assert.equal(await new LoginGuard({ failureBurst: 1, failuresPerMinute: 1, maxPending: 1 }).sharedWait('10.0.0.1', 'CP-1'), 0);
});
