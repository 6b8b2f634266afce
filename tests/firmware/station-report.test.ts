// A station's firmware report parked in the store, and a rollout event for its
// owner, as one cluster node publishes them for the others (cluster/bus.ts):
// what parseParkedReport and parseOwnerEvent take and what they refuse. The round trip through two real nodes is tests/cluster/firmware.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOwnerEvent, parseParkedReport, type StationReport } from '../../src/gateway/firmware/rollouts.js';
import { parsePackageAnnouncement } from '../../src/gateway/cluster/bus.js';

const KEY = 'rollout-report.001767225600123.000000001.0123456789ab';
const parked = (report: unknown, o: { key?: unknown; at?: unknown } = {}) => JSON.stringify({ key: 'key' in o ? o.key : KEY, report, at: 'at' in o ? o.at : 1767225600123 });

test('parked reports round-trip through their JSON', () => {
  const reports: StationReport[] = [
    { station: 'CP-1', status: 'Downloading', requestId: 42 },
    { station: 'CP-1', status: 'Installed' },
    { station: 'CP.2:x_y-z', security: 'InvalidFirmwareSignature' },
  ];
  for (const r of reports) assert.deepEqual(parseParkedReport(parked(r)), { key: KEY, report: r, at: 1767225600123 });
});

test('anything else is refused', () => {
  const bad = [
    'not json',
    'null',
    '[]',
    '{}',
    JSON.stringify({ station: 'CP 1', status: 'Installed' }), // not a station id
    JSON.stringify({ station: 'x'.repeat(65), status: 'Installed' }),
    JSON.stringify({ station: 'CP-1' }),
    JSON.stringify({ station: 'CP-1', status: '' }),
    JSON.stringify({ station: 'CP-1', status: 'x'.repeat(65) }),
    JSON.stringify({ station: 'CP-1', status: 7 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', requestId: 1.5 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', requestId: '1' }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', security: 'X' }), // one or the other
    JSON.stringify({ station: 'CP-1', security: 'X', requestId: 1 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', extra: 1 }),
  ];
  for (const t of bad) assert.equal(parseParkedReport(t.startsWith('{"station"') ? parked(JSON.parse(t)) : t), undefined, t);
  // the wrapping: a key in the parked reports' namespace, a time in ms, nothing else
  const ok = { station: 'CP-1', status: 'Installed' };
  assert.notEqual(parseParkedReport(parked(ok)), undefined);
  for (const key of [null, 'rollout.r-1', `${KEY}x`, KEY.replace('.0123', '.O123'), KEY.replace('rollout-report.0', 'rollout-report.'), 7]) assert.equal(parseParkedReport(parked(ok, { key })), undefined, String(key));
  for (const at of [1.5, '1', -0.5, null, 2 ** 53]) assert.equal(parseParkedReport(parked(ok, { at })), undefined, String(at));
  assert.equal(parseParkedReport(JSON.stringify({ key: KEY, report: ok, at: 1, extra: 1 })), undefined);
  assert.equal(parseParkedReport(JSON.stringify({ key: KEY, at: 1 })), undefined);
  assert.equal(parseParkedReport(JSON.stringify({ ...ok, key: KEY, at: 1 })), undefined, 'the report is its own object');
});

test("a rollout event for its owner's node: the two shapes round-trip; anything else is refused", () => {
  const good = [
    { owner: 'prov-1', event: { t: 'rollout-event', id: 'r-1', station: 'CP-1', status: 'Installed', at: 1767225600123 } },
    { owner: 'prov-1', event: { t: 'rollout-event', id: 'r-1', station: 'CP-1', security: 'InvalidFirmwareSignature', at: 1 } },
  ];
  for (const m of good) assert.deepEqual(parseOwnerEvent(JSON.stringify(m)), m);
  const ev = good[0]!.event;
  const bad = [
    'not json',
    JSON.stringify({ owner: 'prov 1', event: ev }),
    JSON.stringify({ owner: 'prov-1' }),
    JSON.stringify({ owner: 'prov-1', event: ev, extra: 1 }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, t: 'rollout' } }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, id: 'r/1' } }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, at: '1' } }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, requestId: 4 } }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, security: 'X' } }),
    JSON.stringify({ owner: 'prov-1', event: { ...ev, station: 'CP 1' } }),
  ];
  for (const t of bad) assert.equal(parseOwnerEvent(t), undefined, t);
});

test('a package announcement between nodes: held or deleted, with a package id; anything else is refused', () => {
  const pid = '0f'.repeat(16);
  assert.deepEqual(parsePackageAnnouncement(JSON.stringify({ held: pid })), { held: pid });
  assert.deepEqual(parsePackageAnnouncement(JSON.stringify({ deleted: pid })), { deleted: pid });
  for (const bad of [
    '',
    'null',
    '[]',
    JSON.stringify({}),
    JSON.stringify({ held: pid, deleted: pid }),
    JSON.stringify({ held: pid.toUpperCase() }),
    JSON.stringify({ held: pid.slice(1) }),
    JSON.stringify({ held: `${pid}/../x` }),
    JSON.stringify({ held: 1 }),
    JSON.stringify({ copied: pid }),
    JSON.stringify({ __proto__: pid }),
  ]) {
    assert.equal(parsePackageAnnouncement(bad), undefined, bad);
  }
});
