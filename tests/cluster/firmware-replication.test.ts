// Firmware packages on every node of a cluster (src/gateway/firmware/replication.ts),
// with real node processes, each with its own data directory: a package
// uploaded to node A is copied to node B; with A killed, B serves the
// download URLs A handed out (one URL key for the cluster) and runs a new
// rollout of the package to a simulated charger (ocpp-rpc strict) that
// installs it; a package uploaded while A is away reaches A when it comes
// back; a deletion through B is refused while a rollout A holds may still
// use the package, and once done it reaches A even though A was away; an
// upload of the deleted package again is copied again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RolloutEvent } from '../../src/client/gateway-client.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { firmwarePath } from '../../src/gateway/firmware/http.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { readInstalled } from '../../src/firmware/installed.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { cli, startNode } from './nodes.js';
import { FirmwareCluster } from './firmware-world.js';
import { waitFor } from '../firmware/delivery-fixture.js';

const c = await FirmwareCluster.create('fwcopy', 'CP-rep');
const PASSWORD = 'correct horse battery staple';

test('packages are copied to every node: downloads, rollouts, uploads and deletions go on while a node is away', { skip: c.skip, timeout: 120_000 }, async () => {
  const dataA = c.dataOf('A');
  const dataB = c.dataOf('B');
  const held = (data: string, packageId: string) => existsSync(join(data, 'firmware', `${packageId}.evfw`));
  let a = await startNode(c.cfg, 'A', { dataDir: dataA });
  c.nodes.push(a);
  const aListen = new URL(a.url.replace(/^ws/, 'http')).host;
  const b = await startNode(c.cfg, 'B', { dataDir: dataB });
  c.nodes.push(b);
  const bHttp = b.url.replace(/^ws/, 'http');
  const startA = async () => {
    a = await startNode(c.cfg, 'A', { dataDir: dataA, listen: aListen });
    c.nodes.push(a);
  };
  assert.equal(cli(c.cfg.env, ['station', 'add', '--store', c.cfg.storeUrl, '--id', 'CP-rep', '--password', PASSWORD]).code, 0);

  const events: RolloutEvent[] = [];
  const connect = (url: string) => c.connect(url, events);
  const image = c.w.path('image.bin');
  const data = Buffer.alloc(200 * 1024 + 3, 9);
  writeFileSync(image, data);
  const pack = (version: string) => c.pack(image, version);

  const simEvents: SimEvent[] = [];
  const stop = new AbortController();
  let sim: Promise<unknown> = Promise.resolve();
  let client = await connect(a.url);
  try {
    await client.publishBundle(readFileSync(join(c.dirs.get('prov-1')!, 'bundle.json'), 'utf8'));
    // 1. Uploaded to A, copied to B.
    const p1 = await pack('2.0');
    await uploadFirmware(client, p1.path);
    await waitFor(() => held(dataB, p1.packageId), 'node B copied the package uploaded to node A', 15_000);
    assert.ok(readFileSync(join(dataB, 'firmware', `${p1.packageId}.evfw`)).equals(readFileSync(p1.path)), 'the copy is byte for byte the package');
    // one URL key for the cluster: both nodes hold the same one
    assert.equal(readFileSync(join(dataA, 'firmware', 'url.key'), 'utf8'), readFileSync(join(dataB, 'firmware', 'url.key'), 'utf8'));
    const path = firmwarePath(new PackageStore({ dataDir: dataA }), p1.packageId, 'CP-rep');
    const fromA = Buffer.from(await (await fetch(a.url.replace(/^ws/, 'http') + path)).arrayBuffer());
    assert.ok(fromA.length > data.length);

    // 2. A killed: B serves the URL A handed out, and a rollout of the package through B installs it.
    await client.close();
    await a.kill('SIGKILL');
    const viaB = await fetch(bHttp + path);
    assert.equal(viaB.status, 200);
    assert.ok(Buffer.from(await viaB.arrayBuffer()).equals(fromA), 'the same device package from node B');
    client = await connect(b.url);
    sim = runSimCharger(
      { endpoint: c.endpoint('CP-rep'), gateway: `${b.url}/ocpp`, password: PASSWORD, protocol: 'ocpp2.0.1', firmware: { dir: c.w.path('fw-CP-rep') }, onEvent: (e) => simEvents.push(e) },
      stop.signal,
    ).catch((e: unknown) => simEvents.push({ type: 'refused', code: `sim ended: ${(e as Error).message}` }));
    await waitFor(() => simEvents.some((e) => e.type === 'booted'), 'the charger booted on node B', 15_000);
    await client.startRollout({ id: 'r-on-b', packageId: p1.packageId, stations: ['CP-rep'], lifetimeSec: 600 });
    await waitFor(() => events.some((e) => e.id === 'r-on-b' && e.status === 'Installed'), 'Installed through node B', 30_000);
    assert.equal(readInstalled(c.dirs.get('CP-rep')!)?.version, '2.0');

    // 3. A package uploaded while A is away reaches A when it is back.
    const p2 = await pack('3.0');
    await uploadFirmware(client, p2.path);
    await client.close();
    await startA();
    await waitFor(() => held(dataA, p2.packageId), 'node A copied, once back, the package uploaded while it was away', 15_000);

    // 4. A rollout A holds that may still use a package keeps it from being deleted through B.
    stop.abort();
    await sim;
    client = await connect(a.url);
    await client.startRollout({ id: 'r-waiting', packageId: p2.packageId, stations: ['CP-rep'], lifetimeSec: 600 });
    await client.close();
    client = await connect(b.url);
    await assert.rejects(client.firmwareDelete(p2.packageId), (e: Error & { code?: string }) => e.code === 'ERR_STATE' && /r-waiting/.test(e.message));
    assert.ok(held(dataB, p2.packageId) && held(dataA, p2.packageId));

    // 5. Deleted through B while A is away: B's copy goes at once, A's when A is back.
    await a.kill('SIGKILL');
    assert.equal(await client.firmwareDelete(p1.packageId), true);
    assert.equal(held(dataB, p1.packageId), false);
    assert.equal((await fetch(bHttp + path)).status, 404);
    assert.ok(held(dataA, p1.packageId), 'node A, away, still has its copy');
    await startA();
    await waitFor(() => !held(dataA, p1.packageId), 'node A, back, dropped its copy of the deleted package', 15_000);
    assert.equal((await fetch(a.url.replace(/^ws/, 'http') + path)).status, 404);
    assert.ok(held(dataA, p2.packageId), 'the other package stays');

    // 6. The deleted package uploaded again (through B) is copied again.
    await uploadFirmware(client, p1.path);
    await waitFor(() => held(dataA, p1.packageId), 'node A copied the package uploaded again', 15_000);
  } finally {
    stop.abort();
    await sim;
    await client.close();
  }
});
