// The failed-login budget of a cluster is one budget (src/gateway/token-buckets.ts
// StoreTokenBuckets over PostgreSQL), with two real node processes behind no load
// balancer: wrong passwords for one station from one address, spread over both
// nodes, get the configured burst in all, not a burst per node; then 429 with
// Retry-After on either node, also for the right password; another station is
// unaffected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { PASSWORD, upgradeStatus } from '../gateway/helpers/ocpp-clients.js';
import { FirmwareCluster } from './firmware-world.js';
import { cli, startNode } from './nodes.js';

const c = await FirmwareCluster.create('quotas', 'CP-q');
const upgrade = (nodeUrl: string, id: string, password: string) => upgradeStatus(`${nodeUrl}/ocpp`, id, password);

test('wrong passwords spread over two nodes share one budget', { skip: c.skip, timeout: 60_000 }, async () => {
  const config = c.w.path('gateway.json');
  writeFileSync(config, JSON.stringify({ limits: { loginFailureBurst: 4, loginFailuresPerMinute: 1 } }));
  const a = await startNode(c.cfg, 'A', { dataDir: c.dataOf('A'), args: ['--config', config] });
  c.nodes.push(a);
  const b = await startNode(c.cfg, 'B', { dataDir: c.dataOf('B'), args: ['--config', config] });
  c.nodes.push(b);
  for (const id of ['CP-q', 'CP-r']) assert.equal(cli(c.cfg.env, ['station', 'add', '--store', c.cfg.storeUrl, '--id', id, '--password', PASSWORD]).code, 0);
  // two wrong guesses on each node: each node's own budget of 4 has 2 left, the cluster's none
  for (const n of [a, b, a, b]) assert.equal((await upgrade(n.url, 'CP-q', 'wrong')).status, 401);
  for (const n of [a, b]) {
    const r = await upgrade(n.url, 'CP-q', PASSWORD);
    assert.equal(r.status, 429, 'throttled on either node, before any password check');
    assert.ok(Number(r.retryAfter) >= 59 && Number(r.retryAfter) <= 60, `one more in a minute (${r.retryAfter})`);
  }
  assert.equal((await upgrade(b.url, 'CP-r', PASSWORD)).status, 101, 'another station from the same address');
});
