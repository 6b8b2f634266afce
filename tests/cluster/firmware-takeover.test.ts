// A firmware rollout outlives the node that started it (src/gateway/cluster/presence.ts,
// RolloutManager.syncHolders), with real node processes: a rollout started on node A
// for an offline charger; A is killed; the charger (simulated, ocpp-rpc strict) comes
// up on node B at once, installs the package and reports, all before B takes the
// rollout over (A has not yet been silent past the node timeout), so its reports are
// parked in the store; once B takes the rollout over it applies them, and the
// rollout client on B is told every status, in order, and the rollout ends
// Installed. Node A, back, no longer holds the rollout (its file is dropped) and
// answers for it from B's copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RolloutEvent } from '../../src/client/gateway-client.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { readInstalled } from '../../src/firmware/installed.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { cli, startNode } from './nodes.js';
import { FirmwareCluster } from './firmware-world.js';
import { waitFor } from '../firmware/delivery-fixture.js';

const c = await FirmwareCluster.create('fwtakeover', 'CP-to');
const PASSWORD = 'correct horse battery staple';
const SUCCESS = ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'];

test('a rollout whose node is gone is taken over by another node and completes there', { skip: c.skip, timeout: 120_000 }, async () => {
  const dataA = c.dataOf('A');
  const dataB = c.dataOf('B');
  // long enough for the charger to install and report before B takes the rollout over (at 6.7-13.3 s after A goes)
  const timeout = ['--node-timeout', '10'];
  const b = await startNode(c.cfg, 'B', { dataDir: dataB, args: timeout });
  c.nodes.push(b);
  const bHttp = b.url.replace(/^ws/, 'http');
  // A's stations download through B, as through a load balancer in front of both
  let a = await startNode(c.cfg, 'A', { dataDir: dataA, args: [...timeout, '--firmware-base-url', bHttp] });
  c.nodes.push(a);
  const aListen = new URL(a.url.replace(/^ws/, 'http')).host;
  assert.equal(cli(c.cfg.env, ['station', 'add', '--store', c.cfg.storeUrl, '--id', 'CP-to', '--password', PASSWORD]).code, 0);

  const events: RolloutEvent[] = [];
  const statuses = () => events.flatMap((e) => (e.id === 'r-to' && e.status ? [e.status] : []));
  const image = c.w.path('image.bin');
  const data = Buffer.alloc(96 * 1024 + 1, 5);
  writeFileSync(image, data);
  const pkg = await c.pack(image, '2.0');

  const simEvents: SimEvent[] = [];
  const stop = new AbortController();
  const simRun = (url: string) =>
    runSimCharger(
      { endpoint: c.endpoint('CP-to'), gateway: `${url}/ocpp`, password: PASSWORD, protocol: 'ocpp1.6', firmware: { dir: c.w.path('fw-CP-to') }, onEvent: (e) => simEvents.push(e) },
      stop.signal,
    ).catch((e: unknown) => simEvents.push({ type: 'refused', code: `sim ended: ${(e as Error).message}` }));
  let sim: Promise<unknown> = Promise.resolve();
  let client = await c.connect(a.url, events);
  try {
    await client.publishBundle(readFileSync(join(c.dirs.get('prov-1')!, 'bundle.json'), 'utf8'));
    // the charger boots once (so its OCPP version is known), then goes offline
    const boot = new AbortController();
    const first = runSimCharger({ endpoint: c.endpoint('CP-to'), gateway: `${b.url}/ocpp`, password: PASSWORD, protocol: 'ocpp1.6', onEvent: (e) => simEvents.push(e) }, boot.signal);
    await waitFor(() => simEvents.some((e) => e.type === 'booted'), 'the charger booted once', 15_000);
    boot.abort();
    await first.catch(() => undefined);
    simEvents.length = 0;

    await uploadFirmware(client, pkg.path);
    await waitFor(() => existsSync(join(dataB, 'firmware', `${pkg.packageId}.evfw`)), 'node B copied the package', 15_000);
    const started = await client.startRollout({ id: 'r-to', packageId: pkg.packageId, stations: ['CP-to'], lifetimeSec: 600 });
    assert.equal(started.stations['CP-to']!.status, 'Queued');
    assert.ok(existsSync(join(dataA, 'firmware', 'rollouts', 'r-to.json')));
    assert.equal(existsSync(join(dataB, 'firmware', 'rollouts', 'r-to.json')), false, 'node B does not hold it');

    // A goes; the charger comes up on B, installs and reports while no node holds the rollout
    await client.close();
    await a.kill('SIGKILL');
    client = await c.connect(b.url, events);
    sim = simRun(b.url);
    await waitFor(() => readInstalled(c.dirs.get('CP-to')!)?.version === '2.0', 'the charger installed 2.0', 30_000);
    await new Promise((res) => setTimeout(res, 500)); // its last notification answered
    assert.equal(existsSync(join(dataB, 'firmware', 'rollouts', 'r-to.json')), false, 'node B has not taken the rollout over yet');
    assert.deepEqual(statuses(), [], 'no node applied the reports yet');
    // B takes the rollout over once A has been silent for the node timeout, and applies the parked reports
    await waitFor(() => existsSync(join(dataB, 'firmware', 'rollouts', 'r-to.json')), 'node B took the rollout over', 30_000);
    await waitFor(() => statuses().includes('Installed'), 'Installed, applied by node B', 30_000);
    assert.deepEqual(statuses(), SUCCESS);
    assert.equal((await client.rolloutStatus('r-to')).stations['CP-to']!.status, 'Installed');
    await client.close();

    // A, back, drops its stale copy of the rollout and answers for it from B's
    a = await startNode(c.cfg, 'A', { dataDir: dataA, listen: aListen, args: timeout });
    c.nodes.push(a);
    assert.equal(existsSync(join(dataA, 'firmware', 'rollouts', 'r-to.json')), false, "node A dropped the rollout B took over");
    client = await c.connect(a.url, events);
    assert.equal((await client.rolloutStatus('r-to')).stations['CP-to']!.status, 'Installed');
  } finally {
    stop.abort();
    await sim;
    await client.close();
  }
});
