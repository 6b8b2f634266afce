// The gateway's endpoint side over real sockets: authentication, routing,
// durable acknowledgement, ordering, the directory, revocation, dead letters,
// expiry, limits, and blindness of everything the gateway writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { pino } from 'pino';
import { PASSPHRASE, World } from '../helpers/world.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { GatewayClient, type Delivery } from '../../src/client/gateway-client.js';
import { revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import { readPublicOneTime, rotatePrekeys } from '../../src/keystore/identity-dir.js';
import { prekeyToJSON } from '../../src/core/prekey.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { signWith } from '../../src/core/signature.js';
import { challengeInput } from '../../src/core/challenge.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { checkConsistency, checkInclusion, verifyReceipt } from '../../src/gateway/audit/log.js';
import { publicKeyFromB64u } from '../../src/gateway/identity.js';

const w = new World();
w.now = Date.now();
let ca = '';
let crl = '';
let gw: RunningGateway;
let logFile = '';
const ids: Record<string, string> = {};
const eps: Record<string, Endpoint> = {};

async function start(extra: Partial<Parameters<typeof startGateway>[0]> = {}): Promise<RunningGateway> {
  logFile = w.path('gateway.log');
  const log = pino({ base: { component: 'evseal-gateway' } }, pino.destination({ dest: logFile, sync: true, append: true }));
  // Tests here claim whole one-time prekey stocks with one client; the per-claimer quota has its own test (session-otk).
  return startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [crl], log, ...extra, limits: { prekeyClaimBurst: 1000, ...extra.limits } });
}

async function client(name: string, onMessage?: (d: Delivery) => void): Promise<GatewayClient> {
  const ep = eps[name]!;
  const c = await GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey, onMessage });
  await c.publishBundle(w.bundle(ids[name]!));
  return c;
}

/** A bare WebSocket to /endpoint, with the gateway's challenge. */
function raw(): Promise<{ ws: WebSocket; challenge: { gateway: string; nonce: string } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url}/endpoint`);
    ws.once('message', (m) => resolve({ ws, challenge: JSON.parse(m.toString()) }));
    ws.once('error', reject);
  });
}

/** Collects deliveries; `next(n)` resolves with the next n of them. */
function inbox() {
  const got: Delivery[] = [];
  let waiter: (() => void) | undefined;
  return {
    got,
    onMessage: (d: Delivery) => {
      got.push(d);
      waiter?.();
    },
    async until(n: number, ms = 5000): Promise<Delivery[]> {
      const deadline = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${got.length} of ${n} deliveries arrived`);
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50);
        });
      }
      return got.slice(0, n);
    },
  };
}

before(async () => {
  ca = await w.ca('ca');
  crl = join(ca, 'crl.pem');
  for (const [name, role] of [
    ['cp1', 'charger'],
    ['prov', 'provisioning'],
    ['psp', 'psp'],
    ['psp2', 'psp'],
    ['tool', 'service-tool'],
  ] as const) {
    ids[name] = await w.identity(ca, role, name);
  }
  for (const n of Object.keys(ids)) eps[n] = w.endpoint(ids[n]!, w.trust(ca), [crl]);
  gw = await start({ limits: { maxAttempts: 3, retryDelayMs: 50, maxQueuePerRecipient: 50 }, expirySweepMs: 100 });
});
after(async () => {
  await gw.close();
  w.cleanup();
});

const CANARY = `canary-${randomBytes(8).toString('hex')}`;

test('a sealed message to an offline recipient is durable, then delivered once, in order, and opens', async () => {
  const prov = await client('prov');
  const cp = await client('cp1');
  await cp.close(); // the charger goes offline after publishing its bundle
  const bundle = await prov.getBundle('cp1');
  assert.ok(bundle);
  const sent: string[] = [];
  for (let i = 0; i < 5; i++) {
    const env = eps.prov!.seal(bundle, new TextEncoder().encode(`${CANARY} #${i}`), { kind: 'credentials' });
    const r = await prov.sendEnvelope(env);
    assert.equal(r.duplicate, false);
    assert.ok(r.receipt && r.receipt.index >= 0 && r.receipt.size > r.receipt.index);
    sent.push(env);
  }
  // A resend after a lost acknowledgement is recognised, not queued twice.
  const again = await prov.sendEnvelope(sent[0]!);
  assert.equal(again.duplicate, true);
  await prov.close();

  const box = inbox();
  const cp2 = await client('cp1', box.onMessage);
  const ds = await box.until(5);
  assert.deepEqual(
    ds.map((d) => new TextDecoder().decode(eps.cp1!.open(d.body).plaintext)),
    [0, 1, 2, 3, 4].map((i) => `${CANARY} #${i}`),
  );
  assert.ok(ds.every((d, i) => i === 0 || d.seq > ds[i - 1]!.seq));
  const receipts = await cp2.ack(...ds.map((d) => d.seq));
  assert.equal(receipts.length, 5);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(box.got.length, 5, 'nothing is delivered twice');
  await cp2.close();
  // Reconnecting finds an empty mailbox.
  const box2 = inbox();
  const cp3 = await client('cp1', box2.onMessage);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(box2.got.length, 0);
  await cp3.close();
});

test('receipts are signed by the gateway key, and the log proves inclusion and consistency', async () => {
  const prov = await client('prov');
  const key = publicKeyFromB64u(prov.gateway.key, 'gateway key');
  const bundle = (await prov.getBundle('cp1'))!;
  const env = eps.prov!.seal(bundle, new Uint8Array(100), { kind: 'config' });
  const r1 = (await prov.sendEnvelope(env)).receipt!;
  const r2 = (await prov.sendEnvelope(eps.prov!.seal(bundle, new Uint8Array(5), { kind: 'config' }))).receipt!;
  assert.ok(verifyReceipt(r1, key, prov.gateway.id) && verifyReceipt(r2, key, prov.gateway.id));
  assert.equal(verifyReceipt({ ...r1, root: r2.root }, key, prov.gateway.id), false);
  const { entry, path: proof } = await prov.inclusionProof(r1.index, r1.size);
  assert.equal(entry!.msgId, JSON.parse(Buffer.from(JSON.parse(env).hdr, 'base64url').toString()).id);
  assert.equal(entry!.outcome, 'accepted');
  assert.equal(entry!.sender, 'prov');
  assert.ok(checkInclusion(entry!, r1.index, r1, proof));
  assert.equal(checkInclusion({ ...entry!, size: entry!.size + 1 }, r1.index, r1, proof), false);
  assert.ok(checkConsistency(r1, r2, await prov.consistencyProof(r1.size, r2.size)));
  // The recipient may see the entry too; a third party may not (it says who wrote to whom).
  const cp = await client('cp1');
  assert.equal((await cp.inclusionProof(r1.index, r1.size)).entry.recipient, 'cp1');
  const psp = await client('psp');
  await assert.rejects(psp.inclusionProof(r1.index, r1.size), { code: 'ERR_NOT_FOUND' });
  await assert.rejects(psp.inclusionProof(10_000_000, 10_000_001), { code: 'ERR_NOT_FOUND' });
  await Promise.all([prov.close(), cp.close(), psp.close()]);
});

test('a sender can only send as itself, and only what the route policy allows', async () => {
  const psp = await client('psp');
  const psp2 = await client('psp2');
  const cpBundle = (await psp.getBundle('cp1'))!;
  // psp may seal payment data to a charger...
  const ok = eps.psp!.seal(cpBundle, new Uint8Array([1]), { kind: 'payment' });
  assert.equal((await psp.sendEnvelope(ok)).duplicate, false);
  // ...but psp2 cannot submit psp's envelope as its own.
  await assert.rejects(psp2.sendEnvelope(eps.psp!.seal(cpBundle, new Uint8Array([2]), { kind: 'payment' })), { code: 'ERR_POLICY_DENIED' });
  // A psp may not address another psp (no role rule), whatever the envelope says.
  await assert.rejects(psp.sendSession({ to: 'psp2', kind: 'payment', id: b64u(randomBytes(16)), expires: Date.now() + 60_000, body: 'x' }), { code: 'ERR_POLICY_DENIED' });
  // Unknown recipients are refused.
  await assert.rejects(psp.sendSession({ to: 'nobody', kind: 'payment', id: b64u(randomBytes(16)), expires: Date.now() + 60_000, body: 'x' }), { code: 'ERR_NOT_FOUND' });
  await psp.close();
  await psp2.close();
});

test('one-time prekeys are handed out exactly once, even when republished', async () => {
  rotatePrekeys(ids.cp1!, Math.floor(Date.now() / 1000), { passphrase: PASSPHRASE });
  const otks = readPublicOneTime(ids.cp1!);
  assert.ok(otks.length >= 2, 'the identity holds one-time prekeys');
  const cp = await client('cp1');
  assert.equal(await cp.publishPrekeys(otks.map(prekeyToJSON)), otks.length);
  const tool = await client('tool');
  const claims = await Promise.all(otks.map(() => tool.claimPrekey('cp1')));
  const kids = claims.map((c) => (c as { kid: string }).kid);
  assert.equal(new Set(kids).size, otks.length);
  assert.equal(await tool.claimPrekey('cp1'), undefined);
  // Republishing the same keys does not make them claimable again.
  assert.equal(await cp.publishPrekeys(otks.map(prekeyToJSON)), 0);
  assert.equal(await tool.claimPrekey('cp1'), undefined);
  // Prekeys signed by someone else (cp1's, published by the tool) are refused.
  await assert.rejects(tool.publishPrekeys(otks.map(prekeyToJSON)), { code: 'ERR_INVALID_INPUT' });
  await cp.close();
  await tool.close();
});

test('a poison message is retried, dead-lettered after the attempt limit, and its sender is told', async () => {
  const notices: unknown[] = [];
  const prov = await GatewayClient.connect(gw.url, { chain: eps.prov!.id.chain, privateKey: eps.prov!.id.privateKey, onNotice: (n) => notices.push(n) });
  // Deliveries can arrive before connect() returns, so they are answered once the client exists:
  // earlier tests' messages are acknowledged, the poison one is refused as unprocessable.
  const attempts: number[] = [];
  const waiting: Delivery[] = [];
  let cp: GatewayClient | undefined;
  let poisonId = '';
  const answer = (d: Delivery): void => {
    if (d.id !== poisonId) void cp!.ack(d.seq);
    else {
      attempts.push(d.seq);
      cp!.nack(d.seq, 'test: cannot process');
    }
  };
  cp = await client('cp1', (d) => (cp ? answer(d) : waiting.push(d)));
  waiting.splice(0).forEach(answer);
  const cpBundle = (await prov.getBundle('cp1'))!;
  const env = eps.prov!.seal(cpBundle, new Uint8Array([7]), { kind: 'config' });
  poisonId = JSON.parse(Buffer.from(JSON.parse(env).hdr, 'base64url').toString()).id;
  await prov.sendEnvelope(env);
  const deadline = Date.now() + 5000;
  while (notices.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(attempts.length, 3);
  assert.equal(new Set(attempts).size, 1);
  assert.deepEqual(notices, [{ t: 'notice', seq: (notices[0] as { seq: number }).seq, type: 'dead-letter', id: poisonId, peer: 'cp1', reason: 'test: cannot process' }]);
  const dead = await gw.store.deadLetters('cp1');
  assert.equal(dead.length, 1);
  await cp!.close();
  await prov.close();
});

test('an endpoint cannot fail another recipient\'s message: no attempt counted, no dead letter, nothing delivered to it', async () => {
  const notices: unknown[] = [];
  const prov = await GatewayClient.connect(gw.url, { chain: eps.prov!.id.chain, privateKey: eps.prov!.id.privateKey, onNotice: (n) => notices.push(n) });
  const env = eps.prov!.seal((await prov.getBundle('cp1'))!, new Uint8Array([8]), { kind: 'config' });
  const { seq } = await prov.sendEnvelope(env); // cp1 is offline: the message waits
  const stolen: Delivery[] = [];
  const psp = await client('psp', (d) => stolen.push(d));
  for (let i = 0; i < 5; i++) psp.nack(seq, 'not mine'); // the attempt limit is 3
  assert.ok(Array.isArray(await psp.getCrls())); // frames are handled in order: the nacks are done
  await new Promise((r) => setTimeout(r, 200)); // past the retry delay (50 ms)
  assert.deepEqual(stolen.filter((d) => d.seq === seq), []);
  assert.equal((await gw.store.message(seq))?.attempts, 0);
  assert.deepEqual(notices, []);
  const box = inbox();
  const cp = await client('cp1', box.onMessage);
  const [d] = await box.until(1);
  assert.equal(d!.seq, seq);
  await cp.ack(seq);
  await Promise.all([cp.close(), psp.close(), prov.close()]);
});

test('a notice is sent again on every connection until the endpoint acknowledges it', async () => {
  const cpOffline = await client('cp1');
  await cpOffline.close();
  const prov = await client('prov');
  const id = b64u(randomBytes(16));
  await prov.sendSession({ to: 'cp1', kind: 'config', id, expires: Date.now() + 150, body: 'sealed' });
  await prov.close(); // the expiry notice is made while prov is offline
  const deadline = Date.now() + 5000;
  while (!(await gw.store.notices('prov', 0)).some((n) => n.msgId === id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // A raw connection takes the notice and never acknowledges it (the connection dies first).
  const ep = eps.prov!;
  const { ws, challenge } = await raw();
  const nonce = randomBytes(32);
  const input = challengeInput(nonce, fromB64u(challenge.nonce), challenge.gateway, new Uint8Array(0));
  ws.send(JSON.stringify({ t: 'auth', chain: ep.id.chain.map(b64u), nonce: b64u(nonce), sig: b64u(signWith('challenge', ep.id.privateKey, input)) }));
  const rawSeen = await new Promise<{ seq: number; id: string }>((resolve) => ws.on('message', (m) => {
    const f = JSON.parse(m.toString()) as { t: string; seq: number; id: string };
    if (f.t === 'notice' && f.id === id) resolve(f);
  }));
  ws.terminate();
  // The next connection gets it again, under the same seq; the client acknowledges it.
  const got: { seq: number; id: string }[] = [];
  const again = await GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey, onNotice: (n) => got.push(n) });
  while (!got.some((n) => n.id === id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.find((n) => n.id === id)?.seq, rawSeen.seq);
  assert.ok(Array.isArray(await again.getCrls())); // frames are handled in order: the notice-ack is done
  await again.close();
  assert.equal((await gw.store.notices('prov', 0)).some((n) => n.msgId === id), false, 'acknowledged notices are gone');
});

test('messages expire at their expiry, their sender is told, and a full mailbox refuses more', async () => {
  const notices: { type: string; id: string }[] = [];
  const tool = await GatewayClient.connect(gw.url, { chain: eps.tool!.id.chain, privateKey: eps.tool!.id.privateKey, onNotice: (n) => notices.push(n) });
  await tool.publishBundle(w.bundle(ids.tool!));
  // A charger that has published its bundle but is offline.
  const cp = await client('cp1');
  await cp.close();
  const id = b64u(randomBytes(16));
  await tool.sendSession({ to: 'cp1', kind: 'command', id, expires: Date.now() + 300, body: 'sealed' });
  const deadline = Date.now() + 5000;
  while (!notices.some((n) => n.id === id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(notices.find((n) => n.id === id)?.type, 'expired');
  assert.equal((await gw.store.pending('cp1', 0, 100, Date.now())).some((m) => m.msgId === id), false);
  // Fill the offline charger's mailbox to its limit (50 in this test gateway).
  const depth = await gw.store.depth('cp1');
  let last = { to: 'cp1', kind: 'command', id: '', expires: 0, body: 'sealed' };
  for (let i = depth; i < 50; i++) await tool.sendSession((last = { ...last, id: b64u(randomBytes(16)), expires: Date.now() + 60_000 }));
  // a resend of a stored message (its answer lost) is still answered, as a duplicate
  assert.equal((await tool.sendSession(last)).duplicate, true);
  await assert.rejects(tool.sendSession({ to: 'cp1', kind: 'command', id: b64u(randomBytes(16)), expires: Date.now() + 60_000, body: 'sealed' }), { code: 'ERR_LIMIT' });
  // Drain it again so later tests start from an empty mailbox.
  const box = inbox();
  const cp2 = await client('cp1', box.onMessage);
  const ds = await box.until(50);
  await cp2.ack(...ds.map((d) => d.seq));
  await cp2.close();
  await tool.close();
});

test('authentication: replayed, cross-purpose and foreign challenge signatures are refused', async () => {
  const ep = eps.tool!;
  const answer = (ws: WebSocket, frame: unknown): Promise<{ t: string; code?: string }> =>
    new Promise((resolve) => {
      ws.once('message', (m) => resolve(JSON.parse(m.toString())));
      ws.send(JSON.stringify(frame));
    });
  const nonce = randomBytes(32);
  const first = await raw();
  const input = challengeInput(nonce, fromB64u(first.challenge.nonce), first.challenge.gateway, new Uint8Array(0));
  const good = { t: 'auth', chain: ep.id.chain.map(b64u), nonce: b64u(nonce), sig: b64u(signWith('challenge', ep.id.privateKey, input)) };
  assert.equal((await answer(first.ws, good)).t, 'welcome');
  first.ws.close();
  // The same signature on a new connection (new gateway nonce): refused.
  const second = await raw();
  assert.equal((await answer(second.ws, good)).code, 'ERR_UNAUTHENTICATED');
  // The right bytes signed under another purpose's context: refused.
  const third = await raw();
  const input3 = challengeInput(nonce, fromB64u(third.challenge.nonce), third.challenge.gateway, new Uint8Array(0));
  const cross = { ...good, sig: b64u(signWith('receipt', ep.id.privateKey, input3)) };
  assert.equal((await answer(third.ws, cross)).code, 'ERR_UNAUTHENTICATED');
  // A signature for another gateway id: refused.
  const fourth = await raw();
  const input4 = challengeInput(nonce, fromB64u(fourth.challenge.nonce), 'other-gateway', new Uint8Array(0));
  assert.equal((await answer(fourth.ws, { ...good, sig: b64u(signWith('challenge', ep.id.privateKey, input4)) })).code, 'ERR_UNAUTHENTICATED');
  // Frames before authentication: refused.
  const fifth = await raw();
  assert.equal((await answer(fifth.ws, { t: 'get-crls', ref: 1 })).code, 'ERR_UNAUTHENTICATED');
});

test('malformed and oversized frames are answered or closed, and the gateway keeps serving', async () => {
  const tool = await client('tool');
  const ws = await new Promise<WebSocket>((resolve) => {
    const s = new WebSocket(`${gw.url}/endpoint`);
    s.once('message', () => resolve(s));
  });
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  for (const junk of ['{', '[]', '{"t":"nope"}', 'x'.repeat(100), '{"t":"auth","chain":1}']) ws.send(junk);
  ws.send(Buffer.alloc(10), { binary: true });
  assert.equal(await closed, 1008); // no slack before authentication
  const big = await new Promise<WebSocket>((resolve) => {
    const s = new WebSocket(`${gw.url}/endpoint`);
    s.once('message', () => resolve(s));
  });
  const bigClosed = new Promise<number>((r) => big.once('close', (code) => r(code)));
  big.send('x'.repeat(2 * 1024 * 1024));
  assert.equal(await bigClosed, 1009);
  // An authenticated connection still works, and a bad request gets an error frame with its ref.
  assert.equal(await tool.getBundle('../etc'), undefined);
  await assert.rejects(tool.sendSession({ to: 'cp1', kind: 'BAD KIND', id: 'x', expires: Date.now() + 1000, body: 'x' }), { code: 'ERR_INVALID_INPUT' });
  assert.ok(Array.isArray(await tool.getCrls()));
  await tool.close();
});

test('a revoked endpoint is dropped within seconds of the new CRL, and refused at connect', async () => {
  const psp2 = await client('psp2');
  const closed = psp2.closed();
  const t0 = Date.now();
  await revokeWithCaDir(ca, readFileSync(join(ids.psp2!, 'cert.pem'), 'utf8'));
  const { code } = await closed; // the gateway watches --crl files
  assert.equal(code, 4003);
  assert.ok(Date.now() - t0 < 5000, 'dropped within seconds');
  await assert.rejects(client('psp2'), { code: 'ERR_UNAUTHENTICATED' });
  // The directory distributes the new CRL.
  const tool = await client('tool');
  assert.ok((await tool.getCrls()).some((p) => p.includes('BEGIN X509 CRL')));
  await tool.close();
});

test('health, metrics, and nothing the gateway writes contains a plaintext', async () => {
  const health = await (await fetch(`http://127.0.0.1:${gw.port}/healthz`)).json();
  assert.equal(health.status, 'ok');
  const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  assert.match(metrics, /evseal_messages_routed_total\{format="envelope"\} \d+/);
  assert.match(metrics, /evseal_messages_dead_lettered_total 1/);
  assert.match(metrics, /evseal_accept_latency_seconds_bucket/);
  const forms = (s: string) => [s, Buffer.from(s).toString('hex'), Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url')];
  const scan = (texts: string[]) => texts.flatMap((t) => forms(CANARY).filter((n) => t.includes(n)));
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(w.path('data'));
  files.push(logFile);
  assert.ok(files.some((f) => f.endsWith('evseal.db')));
  const texts = [...files.map((f) => readFileSync(f).toString('latin1')), metrics];
  assert.deepEqual(scan(texts), []);
  // Positive control: the same scanner finds a planted copy in every encoding.
  for (const n of forms(CANARY)) assert.ok(scan([`${texts[0]!.slice(0, 100)}${n}`]).includes(n));
});
