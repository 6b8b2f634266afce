// A rollout on a gateway that runs TLS: the endpoint connects over wss://,
// the charger (OCPP 2.0.1, security profile 2) over wss://, and the
// firmware location is an https:// URL on the same port, checked against
// the test CA by the charger.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FirmwareWorld, PASSWORD, waitFor } from './delivery-fixture.js';
import { tlsCa } from '../gateway/helpers/ocpp-tls.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import type { Delivery, RolloutEvent } from '../../src/client/gateway-client.js';

const fw = new FirmwareWorld();
let caPem = '';

before(async () => {
  const tls = await tlsCa('firmware test TLS CA');
  caPem = tls.ca;
  await fw.start(['CP-T'], { tls: await tls.issue('127.0.0.1', 'server') });
});
after(() => fw.close());

test('over TLS: wss:// for the endpoint and the charger, https:// for the download; the station installs the image', async () => {
  assert.match(fw.gw.url, /^wss:/);
  const { data: image, path } = fw.image('image.bin', 100 * 1024);
  const pkg = await fw.pack(path, 'pkg.evfw', { version: '2.0', devices: ['CP-T'] });
  const events: SimEvent[] = [];
  const stop = new AbortController();
  const sim = runSimCharger(
    { endpoint: fw.endpoint('CP-T'), gateway: `${fw.gw.url}/ocpp`, password: PASSWORD, protocol: 'ocpp2.0.1', wsOpts: { ca: caPem }, firmware: { dir: fw.w.path('fw'), ca: caPem }, onEvent: (e) => events.push(e) },
    stop.signal,
  );
  try {
    await waitFor(() => events.some((e) => e.type === 'booted'), 'boot');
    const got: RolloutEvent[] = [];
    const inbox: Delivery[] = [];
    const prov = await fw.client('prov-1', { ca: caPem, onRolloutEvent: (e) => got.push(e), onMessage: (d) => inbox.push(d) });
    await uploadFirmware(prov, pkg.path);
    const r = await prov.startRollout({ id: 'r-tls', packageId: pkg.packageId, stations: ['CP-T'], lifetimeSec: 600 });
    await waitFor(() => got.some((e) => e.status === 'Installed' || e.status === 'DownloadFailed'), 'a final status', 20_000);
    await waitFor(() => inbox.length > 0, 'the station\'s answer');
    await prov.close();
    assert.deepEqual(
      got.map((e) => e.status),
      ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'],
    );
    assert.ok(readFileSync(join(fw.w.path('fw'), `image-${r.requestId}.bin`)).equals(image));
  } finally {
    stop.abort();
    await sim;
  }
});
