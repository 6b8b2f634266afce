// Deleting firmware packages from the gateway (endpoint frame
// firmware-delete), against the real gateway over real sockets: refused to
// a role that may not roll out, and while a rollout may still send a station
// to the package (unless forced); allowed once the rollout has expired with
// its station never reached; afterwards the download is gone (404), a new
// rollout cannot start on it, and a partial upload is deleted too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { FirmwareWorld } from './delivery-fixture.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { firmwarePath } from '../../src/gateway/firmware/http.js';
import type { EvsealError } from '../../src/core/errors.js';

const fw = new FirmwareWorld();
let pkg: { path: string; packageId: string };

before(async () => {
  await fw.start(['CP-1', 'CP-2']);
  // booted once (their OCPP version known), so a rollout queues a call for each while they are offline
  for (const id of ['CP-1', 'CP-2']) await fw.gw.store.putStationState(id, { protocol: 'ocpp2.0.1' });
  const img = fw.image('image.bin', 40 * 1024);
  pkg = await fw.pack(img.path, 'pkg.evfw', { version: '2.0', devices: ['CP-1', 'CP-2'] });
});
after(() => fw.close());

function status(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(fw.httpBase() + path, { method: 'HEAD', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}
const code = (c: string) => (e: EvsealError) => e.code === c;

test('a package is kept while a rollout may still need it, deleted once it has expired; then it is gone for downloads and rollouts', async () => {
  const prov = await fw.client('prov-1');
  try {
    await uploadFirmware(prov, pkg.path);
    const tool = await fw.client('tool-1');
    await assert.rejects(tool.firmwareDelete(pkg.packageId), code('ERR_POLICY_DENIED'));
    await tool.close();

    const r = await prov.startRollout({ id: 'r-expiring', packageId: pkg.packageId, stations: ['CP-1'], lifetimeSec: 1 });
    assert.equal(r.stations['CP-1']!.status, 'Queued');
    await assert.rejects(prov.firmwareDelete(pkg.packageId), (e: EvsealError) => e.code === 'ERR_STATE' && /in use by rollout r-expiring/.test(e.message));
    const urls = new PackageStore({ dataDir: fw.w.path('data') });
    const download = firmwarePath(urls, pkg.packageId, 'CP-1');
    assert.equal(await status(download), 200);

    // The call was never delivered and can no longer be: the package is free.
    await new Promise((res) => setTimeout(res, 1100));
    assert.equal(await prov.firmwareDelete(pkg.packageId), true);
    assert.deepEqual(await prov.firmwareHeld(pkg.packageId), { packageId: pkg.packageId, held: 0, complete: false });
    assert.equal(await status(download), 404);
    await assert.rejects(prov.startRollout({ id: 'r-after', packageId: pkg.packageId, stations: ['CP-2'], lifetimeSec: 60 }), code('ERR_NOT_FOUND'));
    assert.equal(await prov.firmwareDelete(pkg.packageId), false, 'nothing left to delete');
  } finally {
    await prov.close();
  }
});

test('a partial upload is deleted too; force deletes a package in use', async () => {
  const prov = await fw.client('prov-1');
  try {
    const file = readFileSync(pkg.path);
    await prov.firmwareChunk(pkg.packageId, file.length, 0, file.subarray(0, 4096));
    assert.equal((await prov.firmwareHeld(pkg.packageId)).held, 4096);
    assert.equal(await prov.firmwareDelete(pkg.packageId), true);
    assert.deepEqual(await prov.firmwareHeld(pkg.packageId), { packageId: pkg.packageId, held: 0, complete: false });

    await uploadFirmware(prov, pkg.path);
    await prov.startRollout({ id: 'r-forced', packageId: pkg.packageId, stations: ['CP-2'], lifetimeSec: 600 });
    await assert.rejects(prov.firmwareDelete(pkg.packageId), code('ERR_STATE'));
    assert.equal(await prov.firmwareDelete(pkg.packageId, { force: true }), true);
    assert.equal((await prov.firmwareHeld(pkg.packageId)).held, 0);
    await assert.rejects(prov.firmwareDelete('not-a-package-id'), code('ERR_INVALID_INPUT'));
  } finally {
    await prov.close();
  }
});
