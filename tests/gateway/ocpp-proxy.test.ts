// Proxy mode against a fake upstream CSMS (a raw `ws` server): every frame
// passes through byte for byte, with its text/binary type, both ways, under
// the subprotocol the upstream chose; only evseal's own carriers and the
// answers to the gateway's delivery calls stay at the gateway. Station
// authentication applies before the upstream is contacted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';
import { startGateway, until, type TestGateway } from './helpers/ocpp-gateway.js';
import { PASSWORD, basicAuth, closed, frames, ocppClient, rawClient } from './helpers/ocpp-clients.js';
import { listenCsms } from './helpers/flows-fixture.js';

interface Upstream {
  url: string;
  requests: IncomingMessage[];
  sockets: WebSocket[];
  received: { data: Buffer; binary: boolean }[];
  close(): Promise<void>;
}

async function fakeUpstream(o: { pick?: (offered: Set<string>) => string | false; status?: number } = {}): Promise<Upstream> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (o.pick ? o.pick(offered) : ([...offered][0] ?? false)) });
  const up: Upstream = { url: '', requests: [], sockets: [], received: [], close: async () => {} };
  server.on('upgrade', (req, socket, head) => {
    up.requests.push(req);
    if (o.status) {
      socket.end(`HTTP/1.1 ${o.status} Nope\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      up.sockets.push(ws);
      ws.on('message', (data, binary) => up.received.push({ data: data as Buffer, binary }));
    });
  });
  return Object.assign(up, await listenCsms(server, wss));
}

async function withProxy(fn: (gw: TestGateway, up: Upstream) => Promise<void>, o: Parameters<typeof fakeUpstream>[0] = {}): Promise<void> {
  const up = await fakeUpstream(o);
  const gw = await startGateway({ upstream: up.url, maxFrameBytes: 4096, maxBadMessages: 2 });
  try {
    await gw.addStation('CP-P', { password: PASSWORD });
    await fn(gw, up);
  } finally {
    await gw.close();
    await up.close();
  }
}

test('frames pass through byte for byte both ways, text and binary, under the subprotocol the upstream picked', async () => {
  await withProxy(
    async (gw, up) => {
      const ws = await rawClient(gw.url, 'CP-P', ['ocpp2.0.1', 'ocpp1.6']);
      assert.equal(ws.protocol, 'ocpp1.6');
      await until(() => up.sockets.length === 1, 3000, 'the upstream connection');
      const req = up.requests[0]!;
      assert.equal(req.url, '/csms/CP-P');
      assert.equal(req.headers['sec-websocket-protocol'], 'ocpp2.0.1,ocpp1.6', 'offered exactly what the charger offered');
      assert.equal(req.headers.authorization, basicAuth('CP-P', PASSWORD), 'the Authorization header is passed on');

      const toUpstream = [
        '[2, "m-1" ,"BootNotification",{ "chargePointModel":"M","chargePointVendor" :"V"}]',
        '[2,"m-2","Heartbeat",{}]\n',
        '[2,"m-3","DataTransfer",{"vendorId":"com.example","data":"\\u00e9t\\u00e9 \u00e9t\u00e9"}]',
        '[3,"csms-1",{"status":"Accepted"}]',
        '[2,"m-4","Authorize",{"idTag":"A","idTag":"B"}]', // duplicate keys: not ours to judge
      ];
      for (const f of toUpstream) ws.send(f);
      ws.send(Buffer.from('[2,"m-5","Heartbeat",{}]'), { binary: true });
      await until(() => up.received.length === toUpstream.length + 1, 3000, 'frames at the upstream');
      assert.deepEqual(up.received.map((f) => f.data.toString('utf8')), [...toUpstream, '[2,"m-5","Heartbeat",{}]']);
      assert.deepEqual(up.received.map((f) => f.binary), [false, false, false, false, false, true]);
      assert.ok(Buffer.from(toUpstream[2]!, 'utf8').equals(up.received[2]!.data), 'bytes, not just text');

      const got = frames(ws);
      const toCharger = ['[3,"m-1",{"currentTime" : "2026-01-01T00:00:00Z", "interval":300,"status":"Accepted"}]', '[2,"csms-2","Reset",{"type":"Soft"}]', '[4,"m-2","GenericError","",{}]'];
      for (const f of toCharger) up.sockets[0]!.send(f);
      up.sockets[0]!.send(Buffer.from([0x00, 0xff, 0x10]), { binary: true });
      await until(() => got.length === 4, 3000, 'frames at the charger');
      assert.deepEqual(got.slice(0, 3).map((f) => f.data.toString('utf8')), toCharger);
      assert.deepEqual([got[3]!.binary, [...got[3]!.data]], [true, [0x00, 0xff, 0x10]]);
      ws.close();
    },
    { pick: (offered) => (offered.has('ocpp1.6') ? 'ocpp1.6' : false) },
  );
});

test('org.evseal carriers and the answers to delivery calls stay at the gateway', async () => {
  await withProxy(async (gw, up) => {
    const ws = await rawClient(gw.url, 'CP-P', ['ocpp2.0.1']);
    await until(() => up.sockets.length === 1, 3000, 'the upstream connection');
    const got = frames(ws);
    await gw.store.putBundle('someone', 'provisioning', '{"bundle":true}', Date.now());
    ws.send('[2,"c-1","DataTransfer",{"vendorId":"org.evseal","messageId":"get-bundle","data":"someone"}]');
    ws.send('[2,"c-2","DataTransfer",{"vendorId":"org.evseal","messageId":"envelope","data":"garbage"}]');
    await until(() => got.length === 2, 3000, 'carrier answers');
    assert.deepEqual(got.map((f) => JSON.parse(f.data.toString())), [
      [3, 'c-1', { status: 'Accepted', data: '{"bundle":true}' }],
      [3, 'c-2', { status: 'Rejected', data: 'ERR_INVALID_INPUT' }],
    ]);

    const { seq } = await gw.router.submit({ id: 'prov-1', role: 'provisioning', via: 'endpoint' }, { format: 'envelope', to: 'CP-P', kind: 'credentials', msgId: 'm1', expires: Date.now() + 60_000, body: 'SEALED' });
    await until(() => got.length === 3, 3000, 'the delivery call');
    const [type, id, action, params] = JSON.parse(got[2]!.data.toString()) as [number, string, string, unknown];
    assert.deepEqual([type, action, params], [2, 'DataTransfer', { vendorId: 'org.evseal', messageId: 'envelope', data: 'SEALED' }]);
    assert.match(id, /^evseal-/);
    ws.send(JSON.stringify([3, id, { status: 'Accepted' }]));
    await until(() => gw.router.acks.length === 1, 3000, 'the acknowledgement');
    assert.deepEqual(gw.router.acks, [{ recipient: 'CP-P', seq }]);

    ws.send('[2,"after","Heartbeat",{}]');
    await until(() => up.received.length === 1, 3000, 'the next ordinary frame');
    assert.deepEqual(up.received.map((f) => f.data.toString()), ['[2,"after","Heartbeat",{}]'], 'the upstream saw none of the evseal traffic');
    ws.close();
  });
});

test('station authentication applies before the upstream is contacted; upstream refusals reach the charger', async () => {
  await withProxy(async (gw, up) => {
    await assert.rejects(ocppClient(gw, 'CP-P', 'ocpp1.6', { password: 'a wrong password here' }).connect(), (e) => (e as { code?: number }).code === 401);
    await assert.rejects(ocppClient(gw, 'CP-unknown', 'ocpp1.6').connect(), (e) => (e as { code?: number }).code === 401);
    assert.equal(up.requests.length, 0);
  });
  await withProxy(
    async (gw, up) => {
      await assert.rejects(ocppClient(gw, 'CP-P', 'ocpp1.6').connect(), (e) => (e as { code?: number }).code === 401);
      assert.equal(up.requests.length, 1);
      assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'upstream' }), 1);
    },
    { status: 401 },
  );
});

test('a real OCPP client works through the proxy, and closes propagate with their code', async () => {
  await withProxy(async (gw, up) => {
    const cp = ocppClient(gw, 'CP-P', 'ocpp2.0.1');
    await cp.connect();
    await until(() => up.sockets.length === 1, 3000, 'the upstream connection');
    up.sockets[0]!.on('message', (data) => {
      const [, id] = JSON.parse(data.toString()) as [number, string];
      up.sockets[0]!.send(JSON.stringify([3, id, { currentTime: '2026-01-01T00:00:00.000Z' }]));
    });
    assert.deepEqual(await cp.call('Heartbeat', {}), { currentTime: '2026-01-01T00:00:00.000Z' });
    const end = new Promise<{ code: number }>((r) => cp.once('close', r));
    up.sockets[0]!.close(4001, 'bye');
    assert.equal((await end).code, 4001);
    await until(() => gw.service.connections() === 0, 3000, 'the gateway to forget the station');
  });
});

test('in proxy mode too, garbage and oversized frames are answered or closed, never forwarded', async () => {
  await withProxy(async (gw, up) => {
    const ws = await rawClient(gw.url, 'CP-P', ['ocpp1.6']);
    await until(() => up.sockets.length === 1, 3000, 'the upstream connection');
    const got = frames(ws);
    const end = closed(ws);
    ws.send('nope');
    ws.send('[7,"x"]');
    await until(() => got.length === 2, 3000, 'CALLERRORs');
    assert.deepEqual(got.map((f) => (JSON.parse(f.data.toString()) as unknown[]).slice(0, 3)), [
      [4, '-1', 'RpcFrameworkError'],
      [4, 'x', 'MessageTypeNotSupported'],
    ]);
    ws.send('{}');
    assert.equal((await end).code, 1002);
    assert.equal(up.received.length, 0);

    const big = await rawClient(gw.url, 'CP-P', ['ocpp1.6']);
    const bigEnd = closed(big);
    big.send(JSON.stringify([2, 'b', 'DataTransfer', { vendorId: 'x', data: 'A'.repeat(5000) }]));
    assert.equal((await bigEnd).code, 1009);
    assert.equal(up.received.length, 0);
  });
});
