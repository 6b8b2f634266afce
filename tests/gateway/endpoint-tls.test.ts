// The endpoint protocol over TLS: the challenge signature is bound to the
// TLS session through the exporter, so a valid signature made on one TLS
// connection does not authenticate another.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { tlsCa } from './helpers/ocpp-tls.js';
import { startGateway } from '../../src/gateway/server.js';
import { GatewayClient } from '../../src/client/gateway-client.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { signChallenge } from '../../src/core/challenge.js';

const w = new World();
w.now = Date.now();
after(() => w.cleanup());

test('wss: an endpoint authenticates; its signature without this session\'s exporter value is refused', async () => {
  const ca = await w.ca('ca');
  const tool = w.endpoint(await w.identity(ca, 'service-tool', 'tool-tls'), w.trust(ca), [join(ca, 'crl.pem')]);
  const tls = await tlsCa('TLS Test CA');
  const server = await tls.issue('127.0.0.1', 'server');
  const gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [join(ca, 'crl.pem')], tls: server, log: pino({ level: 'silent' }) });
  try {
    assert.match(gw.url, /^wss:/);
    const c = await GatewayClient.connect(gw.url, { chain: tool.id.chain, privateKey: tool.id.privateKey, ca: tls.ca });
    assert.equal(c.identity.id, 'tool-tls');
    await c.close();

    // A signature over the right nonces but an empty exporter (as a relaying
    // man in the middle would have to produce) is refused.
    const ws = new WebSocket(`${gw.url}/endpoint`, { ca: tls.ca });
    const challenge = await new Promise<{ gateway: string; nonce: string }>((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()))));
    const nonce = randomBytes(32);
    const sig = signChallenge(tool.id.privateKey, nonce, fromB64u(challenge.nonce), challenge.gateway, new Uint8Array(0));
    const answer = await new Promise<{ t: string; code?: string }>((resolve) => {
      ws.once('message', (m) => resolve(JSON.parse(m.toString())));
      ws.send(JSON.stringify({ t: 'auth', chain: tool.id.chain.map(b64u), nonce: b64u(nonce), sig: b64u(sig) }));
    });
    assert.equal(answer.code, 'ERR_UNAUTHENTICATED');
  } finally {
    await gw.close();
  }
});
