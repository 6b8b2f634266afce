// The outbox between PostgreSQL and JetStream: a node that dies after its
// commit and before its publish leaves outbox rows; another node's sweep
// publishes them once (one record per recipient, naming its highest seq);
// a republish within the window is dropped by JetStream's dedup on that seq,
// and the mailbox read decides delivery.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { deleteStream, JetStreamBus } from '../../src/gateway/cluster/bus.js';
import { PostgresStore } from '../../src/gateway/store/postgres.js';
import type { NewMessage } from '../../src/gateway/store/store.js';
import { freshBusNames, freshSchema, NATS_URL, servicesMissing } from './services.js';

const skip = await servicesMissing({ pg: true, nats: true });
const schema = freshSchema('outbox');
const names = freshBusNames('outbox');
after(async () => {
  if (skip) return;
  await schema.drop();
  await deleteStream(NATS_URL, names.stream);
});

const T = Date.now();
const m = (i: number): NewMessage => ({ msgId: `m${i}`, sender: 'CP-1', recipient: 'psp.1', kind: 'payment', format: 'envelope', body: `sealed-${i}`, expires: T + 600_000, created: T });
const audit = (x: NewMessage) => ({ time: T, sender: x.sender, recipient: x.recipient, kind: x.kind, size: x.body.length, msgId: x.msgId, outcome: 'accepted' });

test('rows left by a node that died before publishing are published by another node, once; the stream drops a repeat', { skip }, async () => {
  const log = pino({ level: 'silent' });
  // Node 1 commits with the outbox and no bus: as if it died right after COMMIT.
  const dead = await PostgresStore.open({ url: schema.url, outbox: true });
  await dead.enqueue([1, 2, 3].map((i) => ({ msg: m(i), audit: audit(m(i)) })));
  assert.equal(await dead.outboxSize(), 3);
  await dead.close();

  const store = await PostgresStore.open({ url: schema.url, outbox: true });
  const bus = await JetStreamBus.connect({ url: NATS_URL, store, log, ...names, sweepMs: 60_000, sweepGraceMs: 0 });
  try {
    let wakes = 0;
    const stop = bus.watch('psp.1', () => wakes++);
    assert.match(bus.subject('psp.1'), new RegExp(`^${names.prefix.replace(/\./g, '\\.')}\\.mail\\.[A-Za-z0-9_-]+$`), 'a dot in the id never reaches the subject');
    await new Promise((r) => setTimeout(r, 100));
    const base = wakes;
    assert.equal(await bus.sweep(), 3, "three rows published");
    assert.equal(await store.outboxSize(), 0);
    assert.equal(await bus.sweep(), 0, 'published once');
    // A republish of the same seqs (a sweep whose DELETE did not commit) is a duplicate to JetStream.
    await bus.publish([1, 2, 3].map((seq) => ({ seq, recipient: 'psp.1' })));
    const nc = await connect({ servers: NATS_URL });
    const info = await (await jetstreamManager(nc)).streams.info(names.stream);
    await nc.close();
    assert.equal(info.state.messages, 1, 'one record for the recipient, naming seq 3, stored once');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(wakes - base >= 1, 'the node holding the recipient was woken');
    // A fresh commit on a live node is published at once and leaves no row.
    await store.enqueue([{ msg: m(4), audit: audit(m(4)) }]);
    const end = Date.now() + 5000;
    while ((await store.outboxSize()) > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await store.outboxSize(), 0);
    stop();
  } finally {
    await bus.close();
    await store.close();
  }
});
