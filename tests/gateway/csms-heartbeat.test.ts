// The built-in CSMS writes a station's lastHeartbeat alone at most once per
// heartbeat write interval; every other change, and the last connection's
// close, writes the whole state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Csms, HEARTBEAT_WRITE_SEC, type StationState } from '../../src/gateway/ocpp/csms.js';
import type { GatewayContext } from '../../src/gateway/context.js';

function harness() {
  let now = Date.parse('2026-11-26T12:00:00Z');
  const stored = new Map<string, StationState>();
  const writes: StationState[] = [];
  const store = {
    getStationState: async (id: string) => stored.get(id) as unknown as Record<string, unknown> | undefined,
    putStationState: async (id: string, s: Record<string, unknown>) => {
      const copy = structuredClone(s) as unknown as StationState;
      stored.set(id, copy);
      writes.push(copy);
    },
  };
  const ctx = { store, log: pino({ level: 'silent' }), now: () => now } as unknown as GatewayContext;
  return { csms: new Csms(ctx, { heartbeatIntervalSec: 300 }), stored, writes, advance: (ms: number) => (now += ms) };
}

const boot = { chargePointVendor: 'Acme', chargePointModel: 'AC-22' };

test('heartbeats are written once per write interval, other changes at once, the rest on the last close', async () => {
  const { csms, stored, writes, advance } = harness();
  const h = csms.handlers('ocpp1.6', 'CP-1', () => {});
  await h.get('BootNotification')!(boot);
  assert.equal(writes.length, 1);
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 2, 'the first heartbeat is written: the store had none');
  const first = stored.get('CP-1')!.lastHeartbeat;
  advance(300_000);
  await h.get('Heartbeat')!({});
  advance(300_000);
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 2, 'heartbeats inside the interval stay in memory');
  assert.equal(stored.get('CP-1')!.lastHeartbeat, first);
  await h.get('StatusNotification')!({ connectorId: 1, errorCode: 'NoError', status: 'Available' });
  assert.equal(writes.length, 3, 'a status change is written at once, with the newest heartbeat');
  assert.equal(stored.get('CP-1')!.lastHeartbeat, new Date(Date.parse('2026-11-26T12:10:00Z')).toISOString());
  advance(HEARTBEAT_WRITE_SEC * 1000 - 1);
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 3);
  advance(1);
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 4, 'a heartbeat a whole interval after the stored one is written');
  advance(60_000);
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 4);
  await csms.release('CP-1');
  assert.equal(writes.length, 5, 'the last close writes the heartbeat held in memory');
  assert.equal(stored.get('CP-1')!.lastHeartbeat, new Date(Date.parse('2026-11-26T12:26:00Z')).toISOString());
});

test('a close with nothing unsaved writes nothing; a station loaded again writes its first heartbeat', async () => {
  const { csms, writes } = harness();
  const h = csms.handlers('ocpp2.0.1', 'CP-2', () => {});
  await h.get('Heartbeat')!({});
  assert.equal(writes.length, 1);
  await csms.release('CP-2');
  assert.equal(writes.length, 1);
  const again = csms.handlers('ocpp2.0.1', 'CP-2', () => {});
  await again.get('Heartbeat')!({});
  assert.equal(writes.length, 2, 'this process has not written this connection\'s heartbeat yet');
  await csms.release('CP-2');
});
