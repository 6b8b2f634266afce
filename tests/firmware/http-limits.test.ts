// The firmware download port's limits, against the real gateway over real
// sockets: a source address whose requests keep being answered 404 is
// answered 429 (with Retry-After) before any lookup, valid URLs included,
// while a download another node forwarded, and a node's fetch of a whole
// package, are still answered; and at most
// maxFirmwareDownloads requests are served at once (503 with Retry-After
// past that, served again once one ends). Each outcome is counted in
// /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { FirmwareWorld } from './delivery-fixture.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { firmwarePath } from '../../src/gateway/firmware/http.js';
import { replicaPath } from '../../src/gateway/firmware/replication.js';

const BURST = 3;
const fw = new FirmwareWorld();
let validUrl = '';
let packages: PackageStore; // the gateway's own URL key, read from its data dir
let packageId = '';

before(async () => {
  // refilled at 1 a minute: nothing refills within this test
  await fw.start(['CP-1'], { limits: { firmwareNotFoundBurst: BURST, firmwareNotFoundPerMinute: 1, maxFirmwareDownloads: 1 } });
  // large enough that a download not read stays open: the socket buffers cannot take it all
  const img = fw.image('image.bin', 24 * 1024 * 1024);
  const pkg = await fw.pack(img.path, 'pkg.evfw', { version: '2.0', devices: ['CP-1'] });
  const gc = await fw.client('prov-1');
  await uploadFirmware(gc, pkg.path);
  await gc.close();
  packages = new PackageStore({ dataDir: fw.w.path('data') });
  packageId = pkg.packageId;
  validUrl = firmwarePath(packages, pkg.packageId, 'CP-1');
});
after(() => fw.close());

/** Sends a request; resolves with the response as soon as its head arrives (the body is left unread). */
function open(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(fw.httpBase() + path, { method, headers, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}
async function status(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; retryAfter: string | undefined }> {
  const res = await open(path, headers, method);
  res.resume();
  await new Promise((r) => res.on('end', r));
  return { status: res.statusCode!, retryAfter: res.headers['retry-after'] as string | undefined };
}
async function metric(outcome: string): Promise<number> {
  const text = await (await fetch(`${fw.httpBase()}/metrics`)).text();
  const m = new RegExp(`^evseal_firmware_requests_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('at most maxFirmwareDownloads requests are served at once: 503 with Retry-After past it, served again once one ends', async () => {
  const first = await open(validUrl);
  assert.equal(first.statusCode, 200);
  // the first download is still streaming (its body is not read)
  const busy = await status(validUrl, {}, 'HEAD');
  assert.equal(busy.status, 503);
  assert.equal(busy.retryAfter, '1');
  assert.equal(await metric('busy'), 1);
  // reading the first to its end frees the place
  let bytes = 0;
  first.on('data', (c: Buffer) => (bytes += c.length));
  await new Promise((r) => first.on('end', r));
  assert.equal(bytes, Number(first.headers['content-length']));
  await new Promise((r) => setTimeout(r, 50)); // the server side's close follows the last byte
  assert.equal((await status(validUrl, { range: 'bytes=0-99' })).status, 206);
  assert.equal(await metric('served'), 2);
});

test('a source whose requests keep being answered 404 gets 429 before any lookup, valid URLs included; a forwarded download is still answered', async () => {
  const wrongToken = validUrl.replace(/[A-Za-z0-9_-]{22}$/, 'A'.repeat(22));
  const misses = ['/firmware/nothing', `/firmware/${'0'.repeat(32)}/CP-1/${'A'.repeat(22)}`, wrongToken];
  assert.equal(misses.length, BURST);
  for (const path of misses) assert.equal((await status(path)).status, 404, path);
  const throttled = await status(validUrl, { range: 'bytes=0-99' });
  assert.equal(throttled.status, 429);
  assert.ok(Number(throttled.retryAfter) >= 1, `Retry-After ${throttled.retryAfter}`);
  assert.equal((await status(wrongToken)).status, 429);
  assert.equal(await metric('not-found'), BURST);
  assert.equal(await metric('throttled'), 2);
  // a download another node forwarded is answered here (no store read, no further forward), counted at that node
  assert.equal((await status(validUrl, { range: 'bytes=0-99', 'x-evseal-forwarded': '1' })).status, 206);
  assert.equal((await status(wrongToken, { 'x-evseal-forwarded': '1' })).status, 404);
  assert.equal((await status(validUrl)).status, 429);
  // so is a node's fetch of a whole package (a cluster's copy), with or without the right capability
  assert.equal((await status(replicaPath(packages, packageId))).status, 200);
  assert.equal((await status(`/firmware/replica/${packageId}/${'A'.repeat(22)}`)).status, 404);
  assert.equal(await metric('replica'), 1);
});
