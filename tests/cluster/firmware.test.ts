// Firmware rollouts in a cluster of two nodes, each with its own data
// directory: a rollout started on node A for a charger connected to node B
// (the simulated charger: ocpp-rpc in strict mode). The UpdateFirmware call
// is routed across the nodes; node A's download address is node B (as if a
// load balancer had sent the charger there), which holds no package and
// forwards the download to node A; the charger installs it and reports its
// statuses and a security event to node B, which holds no rollout and
// parks them for node A (store and bus):
// the rollout client on node A sees every one, and the rollout ends Installed.
// Node B answers for that rollout from the store's copy; and a client that
// moves to node B is told of the next rollout's progress there. Node A,
// killed, then back at another address, is forwarded to there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RolloutEvent } from '../../src/client/gateway-client.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { readPackageIndex } from '../../src/firmware/package.js';
import { firmwarePath } from '../../src/gateway/firmware/http.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { readInstalled } from '../../src/firmware/installed.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { cli, startNode } from './nodes.js';
import { FirmwareCluster } from './firmware-world.js';
import { waitFor } from '../firmware/delivery-fixture.js';

const c = await FirmwareCluster.create('firmware', 'CP-fw');
const PASSWORD = 'correct horse battery staple';
const SUCCESS = ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'];

test('a rollout started on node A reaches a charger on node B; its statuses, security events and state are seen from either node', { skip: c.skip, timeout: 90_000 }, async () => {
  // each node its own --data with the one gateway key; A's stations are sent to B to download
  // each package stays on the node it was uploaded to (firmware-replication.test.ts covers the copies)
  const b = await startNode(c.cfg, 'B', { dataDir: c.dataOf('B'), args: ['--no-firmware-replication'] });
  c.nodes.push(b);
  const bHttp = b.url.replace(/^ws/, 'http');
  const a = await startNode(c.cfg, 'A', { dataDir: c.dataOf('A'), args: ['--firmware-base-url', bHttp, '--no-firmware-replication'] });
  c.nodes.push(a);
  const add = cli(c.cfg.env, ['station', 'add', '--store', c.cfg.storeUrl, '--id', 'CP-fw', '--password', PASSWORD]);
  assert.equal(add.code, 0, add.stderr);

  const simEvents: SimEvent[] = [];
  let sim = { stop: new AbortController(), done: Promise.resolve() as Promise<unknown> };
  const startSim = () => {
    const stop = new AbortController();
    const done = runSimCharger(
      { endpoint: c.endpoint('CP-fw'), gateway: `${b.url}/ocpp`, password: PASSWORD, protocol: 'ocpp2.0.1', firmware: { dir: c.w.path('fw-CP-fw') }, onEvent: (e) => simEvents.push(e) },
      stop.signal,
    ).catch((e: unknown) => simEvents.push({ type: 'refused', code: `sim ended: ${(e as Error).message}` }));
    sim = { stop, done };
  };
  const stopSim = async () => {
    sim.stop.abort();
    await sim.done;
  };
  const booted = () => simEvents.filter((e) => e.type === 'booted').length;

  const events: RolloutEvent[] = [];
  const connect = (url: string) => c.connect(url, events);
  const statuses = (id: string) => events.flatMap((e) => (e.id === id && e.status ? [e.status] : []));
  const image = c.w.path('image.bin');
  const data = Buffer.alloc(64 * 1024 + 5, 7);
  writeFileSync(image, data);
  const pack = (version: string) => c.pack(image, version);

  startSim();
  let client = await connect(a.url);
  try {
    await waitFor(() => booted() === 1, 'the charger booted on node B', 15_000);
    await client.publishBundle(readFileSync(join(c.dirs.get('prov-1')!, 'bundle.json'), 'utf8'));

    // 1. Installed: every status the charger sent to node B reached the client on node A, in order.
    const pkg = await pack('2.0');
    await uploadFirmware(client, pkg.path);
    const r = await client.startRollout({ id: 'r-cluster', packageId: pkg.packageId, stations: ['CP-fw'], lifetimeSec: 600 });
    await waitFor(() => statuses('r-cluster').includes('Installed'), 'Installed reported through node B', 30_000);
    assert.deepEqual(statuses('r-cluster'), SUCCESS);
    assert.ok(readFileSync(join(c.w.path('fw-CP-fw'), `image-${r.requestId}.bin`)).equals(data), 'the image installed byte for byte');
    assert.equal(readInstalled(c.dirs.get('CP-fw')!)?.version, '2.0');
    assert.equal((await client.rolloutStatus('r-cluster')).stations['CP-fw']!.status, 'Installed', 'node A holds the final state');
    // B forwards a download, ranges included, as A answers it; one already forwarded, or of a package no node holds, is not found
    const path = firmwarePath(new PackageStore({ dataDir: c.w.path('data-A') }), pkg.packageId, 'CP-fw');
    const aHttp = a.url.replace(/^ws/, 'http');
    const direct = await fetch(aHttp + path, { headers: { range: 'bytes=100-4099' } });
    const viaB = await fetch(bHttp + path, { headers: { range: 'bytes=100-4099' } });
    assert.equal(direct.status, 206);
    assert.equal(viaB.status, 206);
    for (const h of ['content-range', 'content-length', 'etag']) assert.equal(viaB.headers.get(h), direct.headers.get(h), h);
    assert.ok(Buffer.from(await viaB.arrayBuffer()).equals(Buffer.from(await direct.arrayBuffer())));
    assert.equal((await fetch(bHttp + path, { headers: { 'x-evseal-forwarded': '1' } })).status, 404);
    assert.equal((await fetch(bHttp + path.replace(pkg.packageId, '0'.repeat(pkg.packageId.length)))).status, 404);
    assert.equal((await fetch(bHttp + path.slice(0, -3) + 'AAA')).status, 404, 'a wrong token: A refuses, B passes that on');

    // 2. A tampered package: the charger's InvalidSignature and its SecurityEventNotification go the same way.
    const bad = await pack('3.0');
    const bytes = readFileSync(bad.path);
    const index = await readPackageIndex(bad.path);
    bytes[index.shared.offset + Math.floor(index.shared.length / 2)]! ^= 0x01;
    writeFileSync(bad.path, bytes);
    await uploadFirmware(client, bad.path);
    await client.startRollout({ id: 'r-tampered', packageId: bad.packageId, stations: ['CP-fw'], lifetimeSec: 600 });
    await waitFor(() => statuses('r-tampered').includes('InvalidSignature'), 'InvalidSignature reported through node B', 30_000);
    await waitFor(() => events.some((e) => e.id === 'r-tampered' && e.security === 'InvalidFirmwareSignature'), 'the security event reported through node B', 10_000);
    assert.deepEqual(statuses('r-tampered'), ['Downloading', 'Downloaded', 'InvalidSignature']);
    assert.equal(readInstalled(c.dirs.get('CP-fw')!)?.version, '2.0', 'nothing installed');

    // 3. With the charger offline, a rollout starts on node A; the client then moves to node B (which
    // closes its connection to A: one connection per identity) and is told there what happens once the
    // charger is back.
    await stopSim();
    const next = await pack('4.0');
    await uploadFirmware(client, next.path);
    const later = await client.startRollout({ id: 'r-later', packageId: next.packageId, stations: ['CP-fw'], lifetimeSec: 600 });
    assert.equal(later.stations['CP-fw']!.status, 'Queued');
    await client.close();
    client = await connect(b.url);
    // node B answers for node A's rollouts from the store's copy, and starting one again there is the same rollout
    assert.equal((await client.rolloutStatus('r-cluster')).stations['CP-fw']!.status, 'Installed');
    assert.equal((await client.startRollout({ id: 'r-cluster', packageId: pkg.packageId, stations: ['CP-fw'], lifetimeSec: 600 })).requestId, r.requestId);
    await assert.rejects(client.rolloutStatus('r-unknown'), (e: Error & { code?: string }) => e.code === 'ERR_NOT_FOUND');
    startSim();
    await waitFor(() => statuses('r-later').includes('Installed'), 'Installed of r-later told to the client on node B', 30_000);
    assert.deepEqual(statuses('r-later'), SUCCESS);
    assert.equal(readInstalled(c.dirs.get('CP-fw')!)?.version, '4.0');
    await waitFor(async () => (await client.rolloutStatus('r-later')).stations['CP-fw']!.status === 'Installed', "node B's copy of r-later final", 5_000);

    // With node A gone, B answers a download of A's package with 502.
    await a.kill('SIGKILL');
    assert.equal((await fetch(bHttp + path)).status, 502);
    // A back at another address records what it holds there at start (no sweep without replication), and B forwards to it
    const aAgain = await startNode(c.cfg, 'A', { dataDir: c.w.path('data-A'), args: ['--no-firmware-replication'] });
    c.nodes.push(aAgain);
    assert.notEqual(aAgain.url, a.url);
    const again = await fetch(bHttp + path);
    assert.equal(again.status, 200);
    const fromA = await fetch(aAgain.url.replace(/^ws/, 'http') + path);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(await fromA.arrayBuffer())), 'as A answers it');
  } finally {
    await client.close();
    await stopSim();
  }
});
