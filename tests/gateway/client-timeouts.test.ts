// How long the endpoint client (src/client/gateway-client.ts) waits for an
// answer, against a stand-in gateway that completes the handshake and then
// answers every request after 200 ms: a rollout start and an upload commit,
// whose work grows with their size, wait longTimeoutMs (10 minutes unless
// set); every other request waits timeoutMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { GatewayClient, type ClientOptions } from '../../src/client/gateway-client.js';
import { EvsealError } from '../../src/core/errors.js';

const ANSWER_AFTER_MS = 200;

async function standIn(): Promise<{ url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((res) => wss.once('listening', res));
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ t: 'challenge', gateway: 'gw-stand-in', key: 'k', nonce: randomBytes(32).toString('base64url') }));
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as { t: string; ref?: number; id?: string };
      if (f.t === 'auth') return ws.send(JSON.stringify({ t: 'welcome', id: 'prov-1', role: 'provisioning', operator: 'Op' }));
      const answer = f.t === 'firmware-commit' ? { t: 'firmware', held: 1, complete: true } : { t: 'rollout', rollout: { id: f.id, stations: {} } };
      setTimeout(() => ws.send(JSON.stringify({ ...answer, ref: f.ref })), ANSWER_AFTER_MS);
    });
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    close: () => new Promise((res) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => res(undefined));
    }),
  };
}

const connect = (url: string, o: Partial<ClientOptions>) =>
  GatewayClient.connect(url, { chain: [new Uint8Array(8)], privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ...o });
const timedOut = (what: string) => (e: EvsealError) => e.code === 'ERR_STATE' && e.message === `gateway did not answer ${what} in time`;

test('a rollout start and an upload commit wait the long timeout; other requests the short one', async () => {
  const gw = await standIn();
  try {
    const c = await connect(gw.url, { timeoutMs: 50 });
    assert.equal((await c.startRollout({ id: 'r-1', packageId: 'ab'.repeat(16), stations: ['CP-1'], lifetimeSec: 60 })).id, 'r-1');
    assert.equal((await c.firmwareCommit('ab'.repeat(16), new Uint8Array(32))).complete, true);
    await assert.rejects(c.rolloutStatus('r-1'), timedOut('rollout-status'));
    await c.close();
    // the long timeout is a setting too
    const d = await connect(gw.url, { timeoutMs: 50, longTimeoutMs: 100 });
    await assert.rejects(d.startRollout({ id: 'r-2', packageId: 'ab'.repeat(16), stations: ['CP-1'], lifetimeSec: 60 }), timedOut('rollout'));
    await d.close();
  } finally {
    await gw.close();
  }
});
