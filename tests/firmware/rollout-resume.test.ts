// A charger's download resumes where a dropped connection left it: the
// gateway's firmware URLs point (firmwareBaseUrl) at a relay that cuts the
// first response short; the simulated charger (OCPP 2.0.1, strict) asks again
// with Range + If-Range, gets 206 from the held offset, and installs the
// image byte for byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FirmwareWorld, PASSWORD, waitFor } from './delivery-fixture.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import type { RolloutEvent } from '../../src/client/gateway-client.js';

const fw = new FirmwareWorld();
let relay: Server;
let target = '';
const seen: { range?: string; ifRange?: string; status?: number; sent: number }[] = [];
const CUT_AFTER = 64 * 1024;

before(async () => {
  // forwards to the gateway; the first response is cut after CUT_AFTER bytes of body
  relay = createServer((req, res) => {
    const rec: (typeof seen)[number] = { range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, sent: 0 };
    seen.push(rec);
    const cut = seen.length === 1;
    const up = request(target + req.url, { method: req.method, headers: { ...(req.headers.range ? { range: req.headers.range } : {}), ...(rec.ifRange ? { 'if-range': rec.ifRange } : {}) }, agent: false }, (ur) => {
      rec.status = ur.statusCode;
      res.writeHead(ur.statusCode!, ur.headers);
      ur.on('data', (c: Buffer) => {
        if (cut && rec.sent + c.length > CUT_AFTER) {
          const last = c.subarray(0, CUT_AFTER - rec.sent);
          rec.sent = CUT_AFTER;
          ur.destroy();
          // the connection drops mid-body, once what was written has gone out
          res.write(last, () => res.socket?.destroy());
          return;
        }
        rec.sent += c.length;
        res.write(c);
      });
      ur.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    up.end();
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  await fw.start(['CP-R'], { firmwareBaseUrl: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` });
  target = fw.httpBase();
});
after(async () => {
  relay?.closeAllConnections();
  await new Promise<void>((r) => (relay ? relay.close(() => r()) : r()));
  await fw.close();
});

test('a download cut off mid-body resumes with Range and the station installs the image', async () => {
  const { data: image, path } = fw.image('image.bin', 400 * 1024);
  const pkg = await fw.pack(path, 'pkg.evfw', { version: '2.0', devices: ['CP-R'] });
  const events: SimEvent[] = [];
  const stop = new AbortController();
  const sim = runSimCharger(
    { endpoint: fw.endpoint('CP-R'), gateway: `${fw.gw.url}/ocpp`, password: PASSWORD, protocol: 'ocpp2.0.1', firmware: { dir: fw.w.path('fw'), retryIntervalSec: 0 }, onEvent: (e) => events.push(e) },
    stop.signal,
  );
  try {
    await waitFor(() => events.some((e) => e.type === 'booted'), 'boot');
    const got: RolloutEvent[] = [];
    const prov = await fw.client('prov-1', { onRolloutEvent: (e) => got.push(e) });
    await uploadFirmware(prov, pkg.path);
    const r = await prov.startRollout({ id: 'r-resume', packageId: pkg.packageId, stations: ['CP-R'], lifetimeSec: 600 });
    await waitFor(() => got.some((e) => e.status === 'Installed' || e.status === 'DownloadFailed'), 'a final status', 20_000);
    await prov.close();
    assert.deepEqual(
      got.map((e) => e.status),
      ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'],
    );
    assert.equal(seen.length, 2, 'one cut request, one resumed request');
    assert.equal(seen[0]!.range, undefined);
    assert.equal(seen[0]!.sent, CUT_AFTER);
    assert.equal(seen[1]!.range, `bytes=${CUT_AFTER}-`);
    assert.match(String(seen[1]!.ifRange), /^"/);
    assert.equal(seen[1]!.status, 206);
    assert.ok(readFileSync(join(fw.w.path('fw'), `image-${r.requestId}.bin`)).equals(image));
  } finally {
    stop.abort();
    await sim;
  }
});
