// A session through the gateway: the tool claims one of the charger's
// one-time prekeys from the directory (each is handed out once), opens a
// session with it while the charger is offline, and the ratchet runs both
// ways through the mailbox. The used one-time prekey is gone on both sides.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { PASSPHRASE, World } from '../helpers/world.js';
import { startGateway } from '../../src/gateway/server.js';
import { GatewayClient, type Delivery } from '../../src/client/gateway-client.js';
import { readPublicOneTime, rotatePrekeys } from '../../src/keystore/identity-dir.js';
import { prekeyToJSON } from '../../src/core/prekey.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';

const w = new World();
w.now = Date.now();
after(() => w.cleanup());

function waitFor(list: Delivery[], n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5000;
    const tick = (): void => {
      if (list.length >= n) return resolve();
      if (Date.now() > deadline) return reject(new Error(`only ${list.length} of ${n} deliveries`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

test('one-time prekeys claimed from the gateway directory start a session that runs through the mailbox', async () => {
  const ca = await w.ca('ca');
  const crl = join(ca, 'crl.pem');
  const cpDir = await w.identity(ca, 'charger', 'CP-s');
  const toolDir = await w.identity(ca, 'service-tool', 'tool-s');
  rotatePrekeys(cpDir, Math.floor(Date.now() / 1000), { passphrase: PASSPHRASE });
  const cp = w.endpoint(cpDir, w.trust(ca), [crl]);
  const tool = w.endpoint(toolDir, w.trust(ca), [crl]);
  // This test claims the whole stock with one tool: the per-claimer quota (tested below) is raised.
  const gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [crl], log: pino({ level: 'silent' }), limits: { prekeyClaimBurst: 1000 } });
  const connect = (ep: typeof cp, dir: string, inbox?: Delivery[]) =>
    GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey, onMessage: inbox && ((d) => inbox.push(d)) }).then(async (c) => {
      await c.publishBundle(w.bundle(dir));
      return c;
    });
  try {
    // The charger publishes its bundle and one-time prekeys, then goes offline.
    const cpConn = await connect(cp, cpDir);
    const published = readPublicOneTime(cpDir);
    assert.ok(published.length > 0);
    await cpConn.publishPrekeys(published.map(prekeyToJSON));
    await cpConn.close();

    const toolInbox: Delivery[] = [];
    const t = await connect(tool, toolDir, toolInbox);
    const otk = await t.claimPrekey('CP-s');
    assert.ok(otk);
    const { handle, message } = tool.startSession((await t.getBundle('CP-s'))!, new TextEncoder().encode('get-config'), { kind: 'command', oneTimePrekeyJson: otk });
    const expires = Date.now() + 60_000;
    await t.sendSession({ to: 'CP-s', kind: 'command', id: b64u(randomBytes(16)), expires, body: message });

    // The charger comes back, accepts, answers through the ratchet.
    const cpInbox: Delivery[] = [];
    const c2 = await connect(cp, cpDir, cpInbox);
    await waitFor(cpInbox, 1);
    const first = cp.acceptSession(cpInbox[0]!.body);
    await c2.ack(cpInbox[0]!.seq);
    assert.equal(new TextDecoder().decode(first.payload), 'get-config');
    assert.equal(first.peer.id, 'tool-s');
    // Its one-time prekey's private half is gone: a replay of the first message cannot be accepted again.
    assert.equal(existsSync(join(cpDir, 'otk', `${(otk as { kid: string }).kid}.key.json`)), false);
    assert.throws(() => cp.acceptSession(cpInbox[0]!.body), { code: 'ERR_OPEN_FAILED' });

    const reply = cp.sessionEncrypt(first.handle, new TextEncoder().encode('HeartbeatInterval=300'));
    await c2.sendSession({ to: 'tool-s', kind: 'command', id: b64u(randomBytes(16)), expires, body: b64u(reply) });
    await waitFor(toolInbox, 1);
    assert.equal(new TextDecoder().decode(tool.sessionDecrypt(handle, fromB64u(toolInbox[0]!.body))), 'HeartbeatInterval=300');
    await t.ack(toolInbox[0]!.seq);

    // The claimed prekey is never handed out again.
    const rest = await Promise.all(published.slice(1).map(() => t.claimPrekey('CP-s')));
    assert.equal(new Set([...rest.map((r) => (r as { kid: string }).kid), (otk as { kid: string }).kid]).size, published.length);
    assert.equal(await t.claimPrekey('CP-s'), undefined);
    await c2.close();
    await t.close();
  } finally {
    await gw.close();
  }
});

test('one claimer cannot drain an identity\'s one-time prekeys: past its quota it gets none, others still do', async () => {
  const ca = await w.ca('ca-quota');
  const crl = join(ca, 'crl.pem');
  const cpDir = await w.identity(ca, 'charger', 'CP-q');
  const toolDir = await w.identity(ca, 'service-tool', 'tool-q');
  const tool2Dir = await w.identity(ca, 'service-tool', 'tool-q2');
  const gw = await startGateway({ port: 0, dataDir: w.path('data-quota'), trust: w.trust(ca), crlFiles: [crl], log: pino({ level: 'silent' }), limits: { prekeyClaimBurst: 3, prekeyClaimsPerMinute: 1 } });
  const connect = (dir: string) => {
    const ep = w.endpoint(dir, w.trust(ca), [crl]);
    return GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey });
  };
  try {
    const cp = await connect(cpDir);
    await cp.publishBundle(w.bundle(cpDir));
    const published = readPublicOneTime(cpDir);
    assert.ok(published.length > 5);
    await cp.publishPrekeys(published.map(prekeyToJSON));
    const tool = await connect(toolDir);
    const tool2 = await connect(tool2Dir);
    const kid = (o: unknown) => (o as { kid: string }).kid;
    const first = await Promise.all([1, 2, 3].map(() => tool.claimPrekey('CP-q')));
    assert.equal(new Set(first.map(kid)).size, 3);
    assert.equal(await tool.claimPrekey('CP-q'), undefined, 'over the quota: none');
    assert.ok(kid(await tool2.claimPrekey('CP-q')), 'another claimer has its own quota');
    assert.equal(await gw.store.countOneTimePrekeys('CP-q'), published.length - 4, 'the refused claim took none');
    const metrics = await (await fetch(gw.url.replace(/^ws/, 'http') + '/metrics')).text();
    assert.match(metrics, /evseal_prekey_claims_total\{outcome="limited"\} 1\n/);
    assert.match(metrics, /evseal_prekey_claims_total\{outcome="claimed"\} 4\n/);
    await Promise.all([cp.close(), tool.close(), tool2.close()]);
  } finally {
    await gw.close();
  }
});
