// The gateway as a cluster: real gateway processes on one PostgreSQL schema
// and one JetStream stream. A charger on one node and a PSP on another
// exchange sealed messages both ways, in order; an endpoint connecting on a
// second node closes its older connection on the first; a SIGKILLed node loses no
// acknowledged message and its endpoints get their mail from another node;
// the one audit log of all nodes verifies with `evseal audit verify --store`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayClient, type Delivery } from '../../src/client/gateway-client.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/identity.js';
import { revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { PASSPHRASE, World } from '../helpers/world.js';
import { cli, startNode, stopCluster, type ClusterConfig, type Node } from './nodes.js';
import { connectCharger } from '../gateway/helpers/flows-fixture.js';
import { PASSWORD } from '../gateway/helpers/ocpp-clients.js';
import { freshBusNames, freshSchema, NATS_URL, servicesMissing } from './services.js';

const skip = await servicesMissing({ pg: true, nats: true });
const w = new World();
w.now = Date.now();
const schema = freshSchema('cluster');
const bus = freshBusNames('cluster');
const nodes: Node[] = [];
let cfg: ClusterConfig;
let cp: { ep: Endpoint; dir: string };
let psp: { ep: Endpoint; dir: string };
let caDir: string;
let revokedDir: string;

before(async () => {
  if (skip) return;
  const ca = await w.ca('ca');
  caDir = ca;
  // The nodes watch a copy that never changes: a new CRL can only reach them through a node and the bus.
  const crl = w.path('nodes-crl.pem');
  copyFileSync(join(ca, 'crl.pem'), crl);
  revokedDir = await w.identity(ca, 'psp', 'psp-revoked');
  const cpDir = await w.identity(ca, 'charger', 'CP-c1');
  const pspDir = await w.identity(ca, 'psp', 'psp-c1');
  cp = { dir: cpDir, ep: w.endpoint(cpDir, w.trust(ca), [crl]) };
  psp = { dir: pspDir, ep: w.endpoint(pspDir, w.trust(ca), [crl]) };
  const keyDir = w.path('gateway-key');
  loadOrCreateGatewayKey(keyDir); // one key for every node, made before any starts
  cfg = { storeUrl: schema.url, natsUrl: NATS_URL, stream: bus.stream, prefix: bus.prefix, keyDir, trust: join(ca, 'ca.pem'), crl, env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE } };
});

after(async () => {
  await stopCluster(nodes, skip ? undefined : { schema, natsUrl: NATS_URL, stream: bus.stream });
  w.cleanup();
});

const connect = (url: string, who: { ep: Endpoint }, onMessage?: (d: Delivery) => void) =>
  GatewayClient.connect(url, { chain: who.ep.id.chain, privateKey: who.ep.id.privateKey, onMessage });
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const idOf = (env: string) => (JSON.parse(Buffer.from((JSON.parse(env) as { hdr: string }).hdr, 'base64url').toString()) as { id: string }).id;

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A receiver that opens every delivery, records its plaintext and acknowledges it. */
function receiver(who: { ep: Endpoint }) {
  const got: { id: string; text: string; seq: number }[] = [];
  let client: GatewayClient | undefined;
  const onMessage = (d: Delivery) => {
    const o = who.ep.open(d.body, { replayCheck: false });
    got.push({ id: d.id, text: text(o.plaintext), seq: d.seq });
    void client?.ack(d.seq).catch(() => undefined);
  };
  return {
    got,
    async connect(url: string) {
      client = await connect(url, who, onMessage);
      return client;
    },
  };
}

test('cross-node: a charger on node A and a PSP on node B exchange sealed messages both ways, in order; a resend through the other node is a duplicate', { skip }, async () => {
  const [a, b] = await Promise.all([startNode(cfg, 'A'), startNode(cfg, 'B')]);
  nodes.push(a, b);
  const cpRx = receiver(cp);
  const pspRx = receiver(psp);
  const cpc = await cpRx.connect(a.url);
  const pspc = await pspRx.connect(b.url);
  await cpc.publishBundle(w.bundle(cp.dir));
  await pspc.publishBundle(w.bundle(psp.dir));
  const pspBundle = (await cpc.getBundle('psp-c1'))!; // published on B, read on A
  const cpBundle = (await pspc.getBundle('CP-c1'))!;

  const N = 30;
  const up = Array.from({ length: N }, (_, i) => cp.ep.seal(pspBundle, new TextEncoder().encode(`pay-${i}`), { kind: 'payment' }));
  const down = Array.from({ length: N }, (_, i) => psp.ep.seal(cpBundle, new TextEncoder().encode(`ok-${i}`), { kind: 'payment' }));
  // pipelined both ways at once
  const sent = await Promise.all([...up.map((e) => cpc.sendEnvelope(e)), ...down.map((e) => pspc.sendEnvelope(e))]);
  assert.ok(sent.every((r) => !r.duplicate && r.receipt !== undefined));
  await until(() => pspRx.got.length >= N && cpRx.got.length >= N, 20_000, 'both directions delivered');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(pspRx.got.map((g) => g.text), up.map((_, i) => `pay-${i}`), 'A to B: every message once, in order');
  assert.deepEqual(cpRx.got.map((g) => g.text), down.map((_, i) => `ok-${i}`), 'B to A: every message once, in order');

  // The charger resends one through node B: the acceptance recorded via A stands.
  const viaB = await connect(b.url, cp);
  const again = await viaB.sendEnvelope(up[3]!);
  assert.equal(again.duplicate, true);
  assert.equal(again.seq, sent[3]!.seq);
  await viaB.close();
  await cpc.close();
  await pspc.close();
});

test('one connection per endpoint across the cluster: connecting on node B closes the older connection on node A (4004), and mail goes to B only', { skip }, async () => {
  const [a, b] = [nodes[0]!, nodes[1]!];
  const onA = receiver(psp);
  const clientA = await onA.connect(a.url);
  const closedA = clientA.closed();
  const onB = receiver(psp);
  const clientB = await onB.connect(b.url);
  const timeout = new Promise<{ code: number }>((r) => setTimeout(() => r({ code: -1 }), 5000).unref());
  assert.equal((await Promise.race([closedA, timeout])).code, 4004, 'replaced by the newer connection within seconds');
  const sender = await connect(a.url, cp);
  const pspBundle = (await sender.getBundle('psp-c1'))!;
  const tags = Array.from({ length: 5 }, (_, i) => `once-${i}`);
  for (const t of tags) await sender.sendEnvelope(cp.ep.seal(pspBundle, new TextEncoder().encode(t), { kind: 'payment' }));
  await until(() => onB.got.length >= tags.length, 10_000, 'deliveries on B');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(onB.got.map((g) => g.text), tags, 'each message once, on the one connection');
  assert.equal(onA.got.length, 0);
  await sender.close();
  await clientB.close();
});

test('a station too: booting on node B closes its older connection on node A', { skip }, async () => {
  const [a, b] = [nodes[0]!, nodes[1]!];
  const add = cli(cfg.env, ['station', 'add', '--store', cfg.storeUrl, '--id', 'CP-twice', '--password', PASSWORD]);
  assert.equal(add.code, 0, add.stderr);
  const onA = await connectCharger(`${a.url}/ocpp`, 'CP-twice', 'ocpp2.0.1');
  const closedA = new Promise<{ code: number }>((r) => onA.rpc.once('close', (e: { code: number }) => r(e)));
  const onB = await connectCharger(`${b.url}/ocpp`, 'CP-twice', 'ocpp2.0.1');
  const timeout = new Promise<{ code: number }>((r) => setTimeout(() => r({ code: -1 }), 5000).unref());
  assert.equal((await Promise.race([closedA, timeout])).code, 1000, 'closed by node A within seconds');
  const hb = (await onB.rpc.call('Heartbeat', {})) as { currentTime: string };
  assert.ok(hb.currentTime, 'the newer connection is served');
  await onB.close();
});

test('node kill: SIGKILL of the node holding a recipient and of the node a sender uses loses no acknowledged message; both reconnect to another node', { skip }, async () => {
  const a = nodes[0] ?? (await startNode(cfg, 'A'));
  const b = nodes[1] ?? (await startNode(cfg, 'B'));
  const c = await startNode(cfg, 'C');
  nodes.push(c);
  const pspRx = receiver(psp);
  await pspRx.connect(a.url); // the recipient on A
  const cpc = await connect(c.url, cp); // the sender on C
  const pspBundle = (await cpc.getBundle('psp-c1'))!;

  const envs: string[] = [];
  const accepted = new Set<string>();
  const seal = (tag: string) => {
    const e = cp.ep.seal(pspBundle, new TextEncoder().encode(tag), { kind: 'payment' });
    envs.push(e);
    return e;
  };
  // Phase 1: messages flow C -> A; A is killed with deliveries in flight.
  const first = await Promise.all(Array.from({ length: 20 }, (_, i) => cpc.sendEnvelope(seal(`k1-${i}`))));
  envs.slice(0, 20).forEach((e) => accepted.add(idOf(e)));
  assert.equal(first.length, 20);
  await until(() => pspRx.got.length >= 5, 10_000, 'first deliveries on A');
  await a.kill('SIGKILL');
  // Phase 2: the recipient is offline; the sender keeps submitting on C (8 in flight) and C is killed at the
  // first acknowledgement; every lane goes on until its connection is gone, so submissions are cut off in flight.
  let unacknowledged = 0;
  let sent = 0;
  let killed = false;
  const lane = async (): Promise<void> => {
    while (sent < 200) {
      const e = seal(`k2-${sent++}`);
      try {
        await cpc.sendEnvelope(e);
      } catch {
        unacknowledged++;
        return;
      }
      accepted.add(idOf(e));
      if (!killed) {
        killed = true;
        c.proc.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  await c.kill('SIGKILL');
  assert.ok(unacknowledged > 0, 'the kill interrupted submissions in flight');
  // The sender reconnects to B and resends what was not acknowledged (same envelopes, same ids).
  const cpb = await connect(b.url, cp);
  for (const e of envs.filter((x) => !accepted.has(idOf(x)))) {
    await cpb.sendEnvelope(e);
    accepted.add(idOf(e));
  }
  assert.equal(accepted.size, envs.length);
  // The recipient reconnects to B and gets everything that was queued for it.
  const before = new Set(pspRx.got.map((g) => g.id));
  await pspRx.connect(b.url);
  await until(() => new Set(pspRx.got.map((g) => g.id)).size >= envs.length, 20_000, `every accepted message at the recipient (${new Set(pspRx.got.map((g) => g.id)).size} of ${envs.length})`);
  await new Promise((r) => setTimeout(r, 300));
  const ids = pspRx.got.map((g) => g.id);
  assert.deepEqual(new Set(ids), accepted, 'every acknowledged message arrived');
  // Only deliveries cut off by the kill before their acknowledgement may come twice.
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert.ok(twice.every((id) => before.has(id)), 'no message is delivered twice except one in flight when its node died');
  assert.ok(twice.length <= 20);
  // Per (sender, recipient) order holds among the deliveries after the reconnect (redeliveries first, by seq).
  const afterReconnect = pspRx.got.slice(before.size).map((g) => g.seq);
  assert.deepEqual(afterReconnect, [...afterReconnect].sort((x, y) => x - y));
  await cpb.close();
});

test('a CRL published through one node drops, within seconds, the revoked endpoint connected to another', { skip }, async () => {
  const b = nodes[1]!;
  const c = await startNode(cfg, 'C2');
  nodes.push(c);
  const revoked = { ep: w.endpoint(revokedDir, w.trust(caDir), [join(caDir, 'crl.pem')]) };
  const victim = await connect(b.url, revoked);
  const closed = victim.closed();
  const { crlPem } = await revokeWithCaDir(caDir, readFileSync(join(revokedDir, 'cert.pem'), 'utf8'));
  const publisher = await connect(c.url, cp);
  const t0 = Date.now();
  const r = await publisher.publishCrl(crlPem);
  assert.equal(r.fresh, true);
  const { code } = await closed;
  assert.equal(code, 4003);
  assert.ok(Date.now() - t0 < 5000, 'dropped within seconds on the other node');
  await assert.rejects(connect(b.url, revoked), { code: 'ERR_UNAUTHENTICATED' });
  await publisher.close();
});

test('a node with another gateway key is refused at start: the cluster has one signer', { skip }, async () => {
  const otherKey = w.path('other-key');
  loadOrCreateGatewayKey(otherKey);
  await assert.rejects(startNode({ ...cfg, keyDir: otherKey }, 'intruder'), /signed as gateway 'gateway' with another key/);
});

test('one audit log for all nodes: `evseal audit verify --store` checks it; stations are administered with --store', { skip }, async () => {
  const r = cli(cfg.env, ['audit', 'verify', '--store', cfg.storeUrl, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { valid: boolean; size: number; treeHeads: number };
  assert.equal(s.valid, true);
  assert.ok(s.size >= 150, `entries of every node are in the one log (${s.size})`);
  assert.ok(s.treeHeads > 1);
  const add = cli(cfg.env, ['station', 'add', '--store', cfg.storeUrl, '--id', 'CP-admin', '--password', 'a-long-enough-password', '--json']);
  assert.equal(add.code, 0, add.stderr);
  const list = cli(cfg.env, ['station', 'list', '--store', cfg.storeUrl, '--json']);
  assert.equal(list.code, 0, list.stderr);
  assert.ok((JSON.parse(list.stdout) as { id: string }[]).some((x) => x.id === 'CP-admin'));
  const both = cli(cfg.env, ['station', 'list', '--store', cfg.storeUrl, '--data', 'x']);
  assert.equal(both.code, 2, both.stderr);
});
