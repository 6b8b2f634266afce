// Station reports that reach a cluster node not holding their rollout
// (RolloutManager parking, takeParked, takeAllParked): parked in the shared
// store and announced; the holder applies each once, in order, and removes it;
// a report parked while its rollout's node is gone is applied by the node that
// takes the rollout over; a parked report older than the status recorded
// changes nothing; the node taken from leaves it for the new holder; stale and
// malformed records are removed; security events are parked only for stations
// in an open rollout; on one node nothing is parked. And a property: for any mix
// of direct and parked reports taken at any later time, the owner is told
// statuses in report order and the last report stands.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParkedReport, RolloutEvent } from '../../src/gateway/firmware/rollouts.js';
import type { Metrics } from '../../src/gateway/metrics.js';
import { owner, PID, rolloutWorld } from './rollout-world.js';

const tmp = mkdtempSync(join(tmpdir(), 'evseal-parked-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PREFIX = 'rollout-report.';

/** A node's evseal_firmware_reports_parked_total by outcome. */
const parkedMetric = async (n: { metrics: Metrics }) => Object.fromEntries((await n.metrics.parkedReports.get()).values.map((v) => [v.labels.outcome, v.value]));

/** Nodes a and b; a holds rollout `id` for CP-1; b's announcements are collected instead of sent. */
async function held(id: string, stations = ['CP-1']) {
  const w = await rolloutWorld(tmp);
  const r = await w.a.m.start(owner, { id, packageId: PID, stations, lifetimeMs: 60_000 });
  await w.a.m.flush();
  const announced: ParkedReport[] = [];
  w.b.m.onParked = (p) => announced.push(p);
  const events: string[] = [];
  const record = (e: RolloutEvent) => events.push('status' in e ? e.status : `security:${e.security}`);
  w.a.m.subscribe(owner.id, record);
  w.b.m.subscribe(owner.id, record);
  const parked = async () => (await w.store.settingsWithPrefix(PREFIX)).map(([k]) => k);
  const status = async (m = w.a.m) => (await m.get(owner, id)).stations['CP-1']!.status;
  /** Parking is asynchronous (the CSMS answers the station at once): waits for `n` announcements. */
  const announcedN = async (n: number) => {
    for (let i = 0; i < 200 && announced.length < n; i++) await new Promise((res) => setTimeout(res, 5));
    assert.equal(announced.length, n, 'announcements');
  };
  return { ...w, r, announced, announcedN, events, parked, status };
}

test('a report reaching a node that does not hold its rollout is parked, announced, and applied once by the holder', async () => {
  const w = await held('p-1');
  w.b.m.firmwareStatus('CP-1', 'Downloading', w.r.requestId);
  w.b.m.securityEvent('CP-1', 'InvalidFirmwareSignature');
  await w.announcedN(2);
  assert.equal((await w.parked()).length, 2);
  assert.deepEqual(w.announced.map((p) => p.report.station), ['CP-1', 'CP-1']);
  // b holds no rollout: it takes nothing; a takes both, in order
  assert.equal(await w.b.m.takeParked(w.announced[0]!), false);
  assert.deepEqual(await Promise.all(w.announced.map((p) => w.a.m.takeParked(p))), [true, true]);
  assert.equal(await w.status(), 'Downloading');
  assert.deepEqual(w.events, ['Downloading', 'security:InvalidFirmwareSignature']);
  // taken again before the rollout is written (the announcement, a look at the store): applied once
  assert.equal(await w.a.m.takeParked(w.announced[1]!), true);
  await w.a.m.takeAllParked(60_000);
  assert.equal((await w.parked()).length, 2, 'kept until the rollout is written with them');
  await w.a.m.flush();
  assert.deepEqual(await w.parked(), [], 'removed once written');
  const copy = JSON.parse((await w.store.getSetting('rollout.p-1'))!) as { rollout: { stations: Record<string, { status: string; securityEvents?: string[] }> } };
  assert.equal(copy.rollout.stations['CP-1']!.status, 'Downloading', "in the store's copy before the record went");
  assert.deepEqual(copy.rollout.stations['CP-1']!.securityEvents, ['InvalidFirmwareSignature']);
  // and after: nothing more
  assert.equal(await w.a.m.takeParked(w.announced[1]!), false);
  await w.a.m.takeAllParked(60_000);
  assert.deepEqual(w.events, ['Downloading', 'security:InvalidFirmwareSignature']);
  assert.deepEqual([await parkedMetric(w.a), await parkedMetric(w.b)], [{ taken: 2 }, { parked: 2 }]);
  await w.store.close();
});

test("reports parked while the rollout's node is gone are applied, in order, by the node that takes it over", async () => {
  const w = await held('p-2');
  // a is gone; CP-1, now on b, reports; nobody holds the rollout, so nobody takes them
  for (const s of ['Downloading', 'Downloaded', 'Installing']) w.b.m.firmwareStatus('CP-1', s, w.r.requestId);
  await w.announcedN(3);
  for (const p of w.announced) assert.equal(await w.b.m.takeParked(p), false);
  assert.equal((await w.parked()).length, 3);
  // b takes the rollout over, then looks at the store
  assert.deepEqual(await w.b.m.syncHolders(new Set(['http://a'])), ['p-2']);
  await w.b.m.takeAllParked(60_000);
  await w.b.m.flush();
  assert.equal(await w.status(w.b.m), 'Installing');
  assert.deepEqual(w.events, ['Downloading', 'Downloaded', 'Installing']);
  assert.deepEqual(await w.parked(), []);
  // from now on b applies CP-1's reports as they come
  w.b.m.firmwareStatus('CP-1', 'Installed', w.r.requestId);
  await w.b.m.flush();
  assert.equal(await w.status(w.b.m), 'Installed');
  assert.equal(w.announced.length, 3, 'nothing more parked');
  await w.store.close();
});

test('a parked report older than the status recorded changes nothing; one applied again (after a crash) changes nothing either', async () => {
  const w = await held('p-3');
  w.b.m.firmwareStatus('CP-1', 'Downloading', w.r.requestId);
  await w.announcedN(1);
  await new Promise((res) => setTimeout(res, 5));
  // a later report reaches a directly before the parked one is taken
  w.a.m.firmwareStatus('CP-1', 'Downloaded', w.r.requestId);
  assert.equal(await w.a.m.takeParked(w.announced[0]!), true);
  await w.a.m.flush();
  assert.equal(await w.status(), 'Downloaded');
  assert.deepEqual(w.events, ['Downloaded']);
  assert.deepEqual(await w.parked(), []);
  // applied, but the process died before the record was removed: the same record is applied again
  w.b.m.firmwareStatus('CP-1', 'Installing', w.r.requestId);
  await w.announcedN(2);
  const again = w.announced[1]!;
  assert.equal(await w.a.m.takeParked(again), true);
  await w.a.m.flush();
  await w.store.putSetting(again.key, JSON.stringify({ report: again.report, at: again.at }));
  assert.equal(await w.a.m.takeParked(again), true);
  await w.a.m.flush();
  assert.equal(await w.status(), 'Installing');
  assert.deepEqual(w.events, ['Downloaded', 'Installing'], 'one event');
  await w.store.close();
});

test('the node a rollout was taken from leaves its parked reports for the node that took it', async () => {
  const w = await held('p-4');
  w.b.m.firmwareStatus('CP-1', 'Downloading', w.r.requestId);
  await w.announcedN(1);
  // b took the rollout over while a was silent; a does not know yet
  const c = w.node('c');
  assert.deepEqual(await c.m.syncHolders(new Set(['http://a'])), ['p-4']);
  const parkedByA: ParkedReport[] = [];
  w.a.m.onParked = (p) => parkedByA.push(p);
  assert.equal(await w.a.m.takeParked(w.announced[0]!), true, 'applied: a does not know yet');
  await w.a.m.flush(); // its write of the copy finds the rollout lost
  // the record is left, and the status it applied meanwhile parked again (below): the same status, at the same time
  for (let i = 0; i < 200 && parkedByA.length === 0; i++) await new Promise((res) => setTimeout(res, 5));
  assert.deepEqual(parkedByA.map((p) => [p.report, p.at]), [[w.announced[0]!.report, w.announced[0]!.at]]);
  assert.equal((await w.parked()).length, 2);
  await c.m.takeAllParked(60_000);
  await c.m.flush();
  assert.equal(await w.status(c.m), 'Downloading');
  assert.deepEqual(await w.parked(), []);
  assert.deepEqual(w.events, ['Downloading'], 'applied by a (which then lost it), then once by c, whose clients are not subscribed here');
  await w.store.close();
});

test('the node a rollout was taken from parks the statuses it applied before it noticed, for the node that took it', async () => {
  const w = await held('p-7');
  const c = w.node('c');
  c.m.subscribe(owner.id, (e) => w.events.push('status' in e ? e.status : e.security));
  const parkedByA: ParkedReport[] = [];
  w.a.m.onParked = (p) => parkedByA.push(p);
  // c takes the rollout over while a is silent; a, not knowing, applies CP-1's report and writes the rollout
  assert.deepEqual(await c.m.syncHolders(new Set(['http://a'])), ['p-7']);
  w.a.m.firmwareStatus('CP-1', 'Downloaded', w.r.requestId);
  await w.a.m.flush();
  for (let i = 0; i < 200 && parkedByA.length === 0; i++) await new Promise((res) => setTimeout(res, 5));
  assert.deepEqual(parkedByA.map((p) => p.report), [{ station: 'CP-1', status: 'Downloaded', requestId: w.r.requestId }]);
  assert.equal(await c.m.takeParked(parkedByA[0]!), true);
  assert.equal(await w.status(c.m), 'Downloaded');
  assert.deepEqual(w.events, ['Downloaded', 'Downloaded'], "a told its clients, then c (the clients of a rollout's owner are on one node or the other)");
  await w.store.close();
});

test('records no node holds a rollout for are removed once older than the limit; malformed ones at once', async () => {
  const w = await held('p-5');
  const key = (at: number, n: number) => `${PREFIX}${String(at).padStart(15, '0')}.${String(n).padStart(9, '0')}.0123456789ab`;
  const now = Date.now();
  const report = { station: 'CP-9', status: 'Downloading' };
  await w.store.putSetting(key(now - 10_000, 1), JSON.stringify({ report, at: now - 10_000 }));
  await w.store.putSetting(key(now - 100, 2), JSON.stringify({ report, at: now - 100 }));
  await w.store.putSetting(key(now - 100, 3), '{"report":{"station":"CP 9","status":"x"},"at":1}');
  await w.store.putSetting(`${PREFIX}not-a-key`, JSON.stringify({ report, at: now }));
  await w.a.m.takeAllParked(5_000);
  assert.deepEqual(await w.parked(), [key(now - 100, 2)]);
  assert.deepEqual(await parkedMetric(w.a), { aged: 3 });
  await w.store.close();
});

test("a security event is parked only for a station with an open place in another node's rollout", async () => {
  // CP-2 is in the rollout too, but has a final status at once (no key slot in the package: NotInPackage)
  const w = await held('p-6', ['CP-1', 'CP-2']);
  assert.equal((await w.a.m.get(owner, 'p-6')).stations['CP-2']!.status, 'NotInPackage');
  // b has not looked at the store yet: a security event alone is taken to concern no rollout
  w.b.m.securityEvent('CP-1', 'StartupOfTheDevice');
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(w.announced.length, 0);
  // once b has read the copies, CP-1's are parked, CP-2's (done) still not
  await w.b.m.syncHolders(new Set());
  w.b.m.securityEvent('CP-2', 'StartupOfTheDevice');
  w.b.m.securityEvent('CP-1', 'InvalidFirmwareSignature');
  await w.announcedN(1);
  assert.deepEqual(w.announced[0]!.report, { station: 'CP-1', security: 'InvalidFirmwareSignature' });
  // a status is parked whatever b read, and CP-2's security events are parked after it
  w.b.m.firmwareStatus('CP-2', 'Downloading', 99);
  w.b.m.securityEvent('CP-2', 'InvalidFirmwareSignature');
  await w.announcedN(3);
  // once CP-1 has a final status, b's next look at the store drops it
  assert.equal(await w.a.m.takeParked(w.announced[0]!), true);
  w.a.m.firmwareStatus('CP-1', 'Installed', w.r.requestId);
  await w.a.m.flush();
  await w.b.m.syncHolders(new Set());
  w.b.m.securityEvent('CP-1', 'StartupOfTheDevice');
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(w.announced.length, 3);
  await w.store.close();
});

test('on one node (a store of its own) a report matching no rollout is not parked', async () => {
  const w = await rolloutWorld(tmp);
  const solo = w.node('solo', { shared: false });
  let announced = 0;
  solo.m.onParked = () => announced++;
  solo.m.firmwareStatus('CP-1', 'Downloading', 7);
  await new Promise((res) => setTimeout(res, 50));
  assert.deepEqual(await w.store.settingsWithPrefix(PREFIX), []);
  assert.equal(announced, 0);
  await w.store.close();
});

test("another node's copy of a rollout long past its expiry is removed at a look at the store; a recent one stays", async () => {
  const w = await held('p-8');
  const old = { id: 'p-old', owner: owner.id, packageId: PID, requestId: 1, created: 0, expires: Date.now() - 8 * 24 * 3600_000, stations: { 'CP-1': { status: 'Installed', at: 0 } } };
  await w.store.putSetting('rollout.p-old', JSON.stringify({ node: 'http://gone-for-good', rollout: old }));
  await w.b.m.syncHolders(new Set());
  assert.equal(await w.store.getSetting('rollout.p-old'), undefined);
  assert.notEqual(await w.store.getSetting('rollout.p-8'), undefined);
  await assert.rejects(w.b.m.get(owner, 'p-old'), (e: Error & { code?: string }) => e.code === 'ERR_NOT_FOUND');
  await w.store.close();
});

test('property: whichever reports are parked and whenever they are taken, the owner is told statuses in report order and the last report stands', async () => {
  const STATUSES = ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing'];
  const report = fc.record({ status: fc.constantFrom(...STATUSES), parked: fc.boolean(), takenAfter: fc.integer({ min: 0, max: 100 }) });
  await fc.assert(
    fc.asyncProperty(fc.array(report, { minLength: 1, maxLength: 8 }), async (reports) => {
      let t = Date.now();
      const w = await rolloutWorld(tmp, { now: () => t });
      const r = await w.a.m.start(owner, { id: 'p-prop', packageId: PID, stations: ['CP-1'], lifetimeMs: 3_600_000 });
      const announced: ParkedReport[] = [];
      w.b.m.onParked = (p) => announced.push(p);
      const told: { status: string; at: number }[] = [];
      w.a.m.subscribe(owner.id, (e) => 'status' in e && told.push({ status: e.status, at: e.at }));
      // report i is made at t0 + 10 (i + 1): to a, which holds the rollout, or parked by b; a parked one is taken
      // by a `takenAfter` ms later (never before it was made); events run in time order
      const t0 = t;
      const events: { at: number; run: () => Promise<unknown> }[] = [];
      for (const [i, x] of reports.entries()) {
        const made = t0 + 10 * (i + 1);
        if (!x.parked) {
          events.push({ at: made, run: async () => w.a.m.firmwareStatus('CP-1', x.status, r.requestId) });
          continue;
        }
        events.push({ at: made, run: async () => w.b.m.firmwareStatus('CP-1', x.status, r.requestId) });
        events.push({
          at: made + x.takenAfter + 0.5,
          run: async () => {
            for (let k = 0; k < 200 && !announced.some((p) => p.at === made); k++) await new Promise((res) => setTimeout(res, 2));
            return w.a.m.takeParked(announced.find((p) => p.at === made)!);
          },
        });
      }
      for (const e of events.sort((x, y) => x.at - y.at)) {
        t = Math.floor(e.at);
        await e.run();
      }
      await w.a.m.flush();
      const last = reports[reports.length - 1]!.status;
      assert.equal((await w.a.m.get(owner, 'p-prop')).stations['CP-1']!.status, last, 'the last report stands');
      for (let i = 1; i < told.length; i++) assert.ok(told[i]!.at > told[i - 1]!.at, `told in report order: ${JSON.stringify(told)}`);
      assert.deepEqual(await w.store.settingsWithPrefix(PREFIX), [], 'every parked report taken');
      await w.store.close();
    }),
    { numRuns: 40 },
  );
});
