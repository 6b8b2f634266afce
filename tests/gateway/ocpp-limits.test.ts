// Malformed and oversized frames never crash the gateway: each is answered
// with an OCPP-J CALLERROR or a close, and the gateway keeps serving other
// stations. Covers the frame size limit, garbage, schema violations, the
// bad-message limit and the per-connection rate limit, in built-in mode
// (and the rate limit's setting on the real gateway).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startGateway, type TestGateway } from './helpers/ocpp-gateway.js';
import { PASSWORD, closed, frames, ocppClient, rawClient } from './helpers/ocpp-clients.js';
import { until } from './helpers/ocpp-gateway.js';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway as startRealGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';

async function stillServes(gw: TestGateway): Promise<void> {
  const c = ocppClient(gw, 'CP-OK', 'ocpp1.6');
  await c.connect();
  const r = (await c.call('BootNotification', { chargePointVendor: 'v', chargePointModel: 'm' })) as { status: string };
  assert.equal(r.status, 'Accepted');
  await c.close();
}

async function withGateway(fn: (gw: TestGateway) => Promise<void>, o: Parameters<typeof startGateway>[0] = {}): Promise<void> {
  const gw = await startGateway({ maxFrameBytes: 4096, maxBadMessages: 3, callsPerSecond: 20, ...o });
  try {
    await gw.addStation('CP-X', { password: PASSWORD });
    await gw.addStation('CP-OK', { password: PASSWORD });
    await fn(gw);
  } finally {
    await gw.close();
  }
}

test('an oversized frame closes that connection (1009) and nothing else', async () => {
  await withGateway(async (gw) => {
    const other = ocppClient(gw, 'CP-OK', 'ocpp2.0.1');
    await other.connect();
    const ws = await rawClient(gw.url, 'CP-X', ['ocpp1.6']);
    const end = closed(ws);
    ws.send(JSON.stringify([2, 'big', 'DataTransfer', { vendorId: 'x', data: 'A'.repeat(10_000) }]));
    assert.equal((await end).code, 1009);
    assert.equal(await gw.counter('badMessages', { kind: 'oversized' }), 1);
    assert.ok(((await other.call('Heartbeat', {})) as { currentTime: string }).currentTime, 'the other station is still served');
    await other.close();
  });
});

test('garbage frames are answered with CALLERRORs, and past the bad-message limit the connection is closed', async () => {
  await withGateway(async (gw) => {
    const ws = await rawClient(gw.url, 'CP-X', ['ocpp1.6']);
    const got = frames(ws);
    const end = closed(ws);
    ws.send('this is not json');
    ws.send('{"an":"object"}');
    ws.send('[9,"m1"]');
    await until(() => got.length === 3, 3000, 'three CALLERRORs');
    assert.deepEqual(got.map((f) => (JSON.parse(f.data.toString()) as unknown[]).slice(0, 3)), [
      [4, '-1', 'RpcFrameworkError'],
      [4, '-1', 'RpcFrameworkError'],
      [4, '-1', 'MessageTypeNotSupported'], // ocpp-rpc answers before it reads the id
    ]);
    ws.send('[2,5]');
    assert.equal((await end).code, 1002);
    assert.ok((await gw.counter('badMessages', { kind: 'malformed' })) >= 4);
    await stillServes(gw);
  });
});

test('schema-invalid calls get the OCPP-J violation code and count as bad messages', async () => {
  await withGateway(async (gw) => {
    const ws = await rawClient(gw.url, 'CP-X', ['ocpp1.6']);
    const got = frames(ws);
    const end = closed(ws);
    ws.send(JSON.stringify([2, 'a', 'BootNotification', { chargePointVendor: 'v' }]));
    ws.send(JSON.stringify([2, 'b', 'Heartbeat', { unexpected: true }]));
    ws.send(JSON.stringify([2, 'c', 'StartTransaction', { connectorId: 'one', idTag: 'T', meterStart: 0, timestamp: new Date().toISOString() }]));
    await until(() => got.length === 3, 3000, 'three CALLERRORs');
    const errs = got.map((f) => JSON.parse(f.data.toString()) as unknown[]);
    assert.deepEqual(errs.map((e) => e.slice(0, 3)), [
      [4, 'a', 'OccurrenceConstraintViolation'], // 1.6 spelling, per the OCPP 1.6J errata
      [4, 'b', 'PropertyConstraintViolation'],
      [4, 'c', 'TypeConstraintViolation'],
    ]);
    // a valid call clears the strikes
    ws.send(JSON.stringify([2, 'd', 'Heartbeat', {}]));
    await until(() => got.length === 4, 3000, 'a CALLRESULT');
    assert.equal((JSON.parse(got[3]!.data.toString()) as unknown[])[0], 3);
    for (const id of ['e', 'f', 'g', 'h']) ws.send(JSON.stringify([2, id, 'Heartbeat', { bad: 1 }]));
    assert.equal((await end).code, 1002);
    await stillServes(gw);
  });
});

test('over the call rate a CALL gets a GenericError, and a sustained flood is closed (1008)', async () => {
  await withGateway(
    async (gw) => {
      const ws = await rawClient(gw.url, 'CP-X', ['ocpp2.0.1']);
      const got = frames(ws);
      const end = closed(ws);
      for (let i = 0; i < 4; i++) ws.send(JSON.stringify([2, `h${i}`, 'Heartbeat', {}]));
      await until(() => got.length === 4, 3000, 'four answers');
      // admitted calls are answered after their handler ran, refused ones at once: order by id
      const answers = got.map((f) => JSON.parse(f.data.toString()) as unknown[]).sort((a, b) => String(a[1]).localeCompare(String(b[1])));
      assert.deepEqual(answers.map((a) => a[0]), [3, 4, 4, 4]);
      assert.deepEqual(answers[1]!.slice(2, 4), ['GenericError', 'rate limit exceeded']);
      ws.send(JSON.stringify([2, 'h4', 'Heartbeat', {}]));
      assert.equal((await end).code, 1008);
      assert.equal(await gw.counter('badMessages', { kind: 'rate' }), 4);
      await stillServes(gw);
    },
    { callsPerSecond: 1, maxBadMessages: 3 },
  );
});

test('garbage upgrade requests and sockets that vanish mid-handshake do not disturb the service', async () => {
  await withGateway(async (gw) => {
    const port = Number(new URL(gw.url).port);
    const send = (text: string) =>
      new Promise<string>((resolve) => {
        const s = connect(port, '127.0.0.1', () => s.write(text));
        let out = '';
        s.on('data', (d) => (out += d.toString()));
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
      });
    const upgrade = (path: string, extra = '') =>
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ocpp1.6\r\n${extra}\r\n`;
    assert.match(await send(upgrade('/ocpp/bad%20id')), /^HTTP\/1.1 400/);
    assert.match(await send(upgrade('/ocpp/CP-X', 'Authorization: Basic !!!\r\n')), /^HTTP\/1.1 401/);
    // a socket that closes while its password is being checked
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(upgrade('/ocpp/CP-X', `Authorization: Basic ${Buffer.from(`CP-X:${PASSWORD}`).toString('base64')}\r\n`));
        s.destroy();
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(gw.service.connections(), 0);
    await stillServes(gw);
  });
});

test('the gateway limits a station by stationCallsPerSecond, not by the endpoints\' framesPerSecond', async () => {
  const w = new World();
  try {
    const ca = await w.ca('ca-rate');
    const gw = await startRealGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), revocationCheck: false, log: pino({ level: 'silent' }), limits: { stationCallsPerSecond: 2, framesPerSecond: 1_000_000 } });
    try {
      await addStation(gw.store, { id: 'CP-R', password: PASSWORD }, Date.now());
      const ws = await rawClient(`${gw.url}/ocpp`, 'CP-R', ['ocpp2.0.1']);
      const got = frames(ws);
      for (let i = 0; i < 4; i++) ws.send(JSON.stringify([2, `h${i}`, 'Heartbeat', {}]));
      await until(() => got.length === 4, 3000, 'four answers');
      const types = got.map((f) => (JSON.parse(f.data.toString()) as unknown[])[0]).sort();
      assert.deepEqual(types, [3, 3, 4, 4], 'a burst of two calls, then CALLERRORs');
      ws.close();
    } finally {
      await gw.close();
    }
  } finally {
    w.cleanup();
  }
});
