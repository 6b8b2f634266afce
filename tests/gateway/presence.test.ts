// Which cluster nodes are alive (src/gateway/cluster/presence.ts), over a real
// store: a node is gone once its last record is older than the timeout by the
// shared clock, whatever the nodes' own clocks say; a node that never wrote a
// record, this node itself, and records that are not presence records are
// never reported gone.
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
