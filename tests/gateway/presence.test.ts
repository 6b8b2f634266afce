// Which cluster nodes are alive (src/gateway/cluster/presence.ts), over a real
// store: a node is gone once its last record is older than the timeout by the
// shared clock, whatever the nodes' own clocks say; a node that never wrote a
// record, this node itself, and records that are not presence records are
// never reported gone. A node silent for longer than the forget age is forgotten
// (its record removed) unless it wrote again meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { NodePresence } from '../../src/gateway/cluster/presence.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';

test('a node not heard from for longer than the timeout, by the shared clock, is gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evseal-presence-'));
  const store = new SqliteStore(dir);
  try {
    let shared = 1_000_000; // the store's clock, the one both nodes read
    const clock = async () => shared;
    const log = pino({ level: 'silent' });
    const a = new NodePresence({ store, self: () => 'http://a:1', timeoutMs: 3000, clock, log });
    const b = new NodePresence({ store, self: () => 'http://b:1', timeoutMs: 3000, clock, log });
    assert.equal(a.intervalMs, 1000);
    await a.beat();
    await b.beat();
    assert.deepEqual(await a.gone(), new Set());
    shared += 3000;
    assert.deepEqual(await a.gone(), new Set(), 'exactly the timeout is not yet gone');
    shared += 1;
    assert.deepEqual(await a.gone(), new Set(['http://b:1']));
    assert.deepEqual(await b.gone(), new Set(['http://a:1']), 'never itself');
    await b.beat();
    assert.deepEqual(await a.gone(), new Set(), 'back once it writes again');
    // not presence records: ignored
    await store.putSetting('node-seen.garbage', 'not json');
    await store.putSetting('node-seen.partial', JSON.stringify({ node: 'http://c:1' }));
    shared += 10_000;
    assert.deepEqual(await a.gone(), new Set(['http://b:1']));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a node silent for longer than the forget age is forgotten once; one that wrote again meanwhile is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'evseal-presence-'));
  const store = new SqliteStore(dir);
  try {
    let shared = 5_000_000;
    const clock = async () => shared;
    const log = pino({ level: 'silent' });
    const node = (n: string) => new NodePresence({ store, self: () => `http://${n}:1`, timeoutMs: 1000, clock, log });
    const [a, b, c] = [node('a'), node('b'), node('c')];
    for (const p of [a, b, c]) await p.beat();
    shared += 60_000;
    await c.beat();
    assert.deepEqual(await a.forget(60_000), [], 'exactly the age is not yet forgotten');
    shared += 1;
    // b writes again between a's reading and a's removal: the removal of the record read does nothing
    const read = store.settingsWithPrefix.bind(store);
    store.settingsWithPrefix = async (prefix) => {
      const r = await read(prefix);
      store.settingsWithPrefix = read;
      await b.beat();
      return r;
    };
    assert.deepEqual(await a.forget(60_000), [], 'b wrote again');
    shared += 2000;
    assert.deepEqual(await a.gone(), new Set(['http://b:1', 'http://c:1']), 'gone, not yet forgotten');
    assert.deepEqual(await a.forget(60_000), []);
    shared += 60_000;
    assert.deepEqual((await c.forget(60_000)).sort(), ['http://a:1', 'http://b:1'], 'never itself');
    assert.deepEqual(await c.forget(60_000), [], 'once');
    assert.deepEqual(await c.gone(), new Set(), 'forgotten nodes are not gone either: nothing of theirs is left to take over');
    await b.beat();
    assert.deepEqual(await c.gone(), new Set(), 'back');
    assert.equal((await store.settingsWithPrefix('node-seen.')).length, 2);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
