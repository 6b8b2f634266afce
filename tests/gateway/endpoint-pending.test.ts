// Endpoint connections that do not authenticate are bounded per source
// address (limits.maxUnauthenticatedPerSource): past the bound an upgrade to
// /endpoint gets 429; a connection that authenticates, or goes away, frees
// its place. Real gateway, real sockets.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway } from '../../src/gateway/server.js';
import { GatewayClient } from '../../src/client/gateway-client.js';

const w = new World();
w.now = Date.now();
after(() => w.cleanup());

/** Opens /endpoint without authenticating: the open socket, or the HTTP status it was refused with. */
function open(url: string): Promise<{ ws?: WebSocket; status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/endpoint`);
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('error', (e) => (ws.readyState === ws.CLOSED ? undefined : reject(e)));
  });
}

test('connections awaiting authentication are bounded per source; authenticating or closing frees a place', async () => {
  const ca = await w.ca('ca');
  const dir = await w.identity(ca, 'psp', 'psp-p');
  const ep = w.endpoint(dir, w.trust(ca), [`${ca}/crl.pem`]);
  const gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [`${ca}/crl.pem`], log: pino({ level: 'silent' }), limits: { maxUnauthenticatedPerSource: 2 } });
  try {
    const a = await open(gw.url);
    const b = await open(gw.url);
    assert.deepEqual([a.status, b.status], [101, 101]);
    assert.equal((await open(gw.url)).status, 429, 'a third one waiting is refused');
    // An endpoint that authenticates is not refused for long: once a waiting one goes, it gets in, and then no longer counts.
    a.ws!.close();
    // the server sees the close a moment later: retried until then (bounded)
    let client: GatewayClient | undefined;
    for (const end = Date.now() + 5000; !client; ) {
      client = await GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey }).catch((e: unknown) => {
        if (Date.now() > end) throw e;
        return new Promise<undefined>((r) => setTimeout(() => r(undefined), 20));
      });
    }
    const c = await open(gw.url);
    assert.equal(c.status, 101, 'the authenticated connection freed its place');
    assert.equal((await open(gw.url)).status, 429);
    assert.equal(typeof (await client.getBundle('nobody')), 'undefined', 'the authenticated connection is served');
    b.ws!.close();
    c.ws!.close();
    await client.close();
  } finally {
    await gw.close();
  }
});
