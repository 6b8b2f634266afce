// Package upload over the endpoint connection and HTTP delivery of device
// packages, against the real gateway over real sockets: resumable and
// idempotent upload, role check, digest check; then GET/HEAD with every
// Range form (206/416, Content-Range, Accept-Ranges, ETag, If-Range), the
// 404s, and a download resumed after the connection was cut. The device
// package served is checked byte for byte against devicePrefix ‖ shared and
// unpacked to the original image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get, request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { FirmwareWorld } from './delivery-fixture.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { firmwarePath } from '../../src/gateway/firmware/http.js';
import { devicePrefix, readPackageIndex } from '../../src/firmware/package.js';
import { unpackFirmware } from '../../src/firmware/unpack.js';
import { EvsealError } from '../../src/core/errors.js';

const fw = new FirmwareWorld();
let pkg: { path: string; packageId: string };
let image: Buffer;
let urls: PackageStore; // the gateway's own URL key, read from its data dir
const body = new Map<string, Buffer>(); // station -> expected device package

before(async () => {
  await fw.start(['CP-1', 'CP-2', 'CP-3']);
  const img = fw.image('image.bin', 300 * 1024 + 17);
  image = img.data;
  pkg = await fw.pack(img.path, 'pkg.evfw', { version: '2.0', devices: ['CP-1', 'CP-2'] });
  const file = readFileSync(pkg.path);
  const index = await readPackageIndex(pkg.path);
  for (const d of ['CP-1', 'CP-2']) {
    body.set(d, Buffer.concat([await devicePrefix(pkg.path, index, d), file.subarray(index.shared.offset, index.shared.offset + index.shared.length)]));
  }
});
after(() => fw.close());

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}
function http(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(fw.httpBase() + path, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
const url = (station: string, packageId = pkg.packageId) => firmwarePath(urls, packageId, station);

test('upload: refused for a role that may not roll out; resumes after the held bytes; idempotent; a wrong digest starts over', async () => {
  const tool = await fw.client('tool-1');
  await assert.rejects(tool.firmwareHeld(pkg.packageId), (e: EvsealError) => e.code === 'ERR_POLICY_DENIED');
  await tool.close();

  const file = readFileSync(pkg.path);
  const gc = await fw.client('prov-1');
  // a wrong digest: the partial upload is dropped
  await gc.firmwareChunk(pkg.packageId, file.length, 0, file.subarray(0, 1000));
  await assert.rejects(gc.firmwareCommit(pkg.packageId, new Uint8Array(32)), (e: EvsealError) => e.code === 'ERR_INVALID_INPUT');
  assert.deepEqual(await gc.firmwareHeld(pkg.packageId), { packageId: pkg.packageId, held: 0, complete: false });
  // an interrupted upload: 100 000 bytes held, then the connection goes
  await gc.firmwareChunk(pkg.packageId, file.length, 0, file.subarray(0, 60_000));
  await gc.firmwareChunk(pkg.packageId, file.length, 60_000, file.subarray(60_000, 100_000));
  // a chunk that does not continue the held bytes is refused; one already held is answered with the state
  await assert.rejects(gc.firmwareChunk(pkg.packageId, file.length, 100_001, file.subarray(100_001, 100_010)), (e: EvsealError) => e.code === 'ERR_INVALID_INPUT');
  assert.equal((await gc.firmwareChunk(pkg.packageId, file.length, 0, file.subarray(0, 10))).held, 100_000);
  await gc.close();

  const gc2 = await fw.client('prov-1');
  let progress = 0;
  const r = await uploadFirmware(gc2, pkg.path, (done) => (progress = done));
  assert.equal(r.resumedAt, 100_000);
  assert.equal(r.sent, file.length - 100_000);
  assert.equal(progress, file.length);
  assert.deepEqual(await gc2.firmwareHeld(pkg.packageId), { packageId: pkg.packageId, held: file.length, complete: true });
  const again = await uploadFirmware(gc2, pkg.path);
  assert.equal(again.sent, 0);
  await gc2.close();
  // the gateway holds exactly the package
  urls = new PackageStore({ dataDir: fw.w.path('data') });
  assert.ok(readFileSync(urls.path(pkg.packageId)).equals(file));
});

test('GET: the whole device package, which unpacks to the original image; HEAD gives the same headers without a body', async () => {
  const want = body.get('CP-1')!;
  const r = await http(url('CP-1'));
  assert.equal(r.status, 200);
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['content-length'], String(want.length));
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.match(String(r.headers.etag), /^"[A-Za-z0-9_-]+"$/);
  assert.ok(r.body.equals(want), 'devicePrefix ‖ shared');
  // the other device gets its own slot, the same shared part, another ETag
  const r2 = await http(url('CP-2'));
  assert.ok(r2.body.equals(body.get('CP-2')!));
  assert.notEqual(r2.headers.etag, r.headers.etag);

  const head = await http(url('CP-1'), {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], String(want.length));
  assert.equal(head.headers.etag, r.headers.etag);

  writeFileSync(fw.w.path('cp1.evfw'), r.body);
  const out = fw.w.path('cp1.img');
  const res = await unpackFirmware({ endpoint: fw.endpoint('CP-1'), input: fw.w.path('cp1.evfw'), output: out });
  assert.equal(res.version, '2.0');
  assert.ok(readFileSync(out).equals(image), 'byte-identical image');
});

test('Range: across the prefix/shared boundary, inside each part, suffix, open-ended, clamped; 416 past the end; If-Range; multiple ranges ignored', async () => {
  const want = body.get('CP-1')!;
  const total = want.length;
  const index = await readPackageIndex(pkg.path);
  const p = total - index.shared.length; // prefix length
  const cases: [string, number, number][] = [
    [`bytes=${p - 10}-${p + 10}`, p - 10, p + 10],
    ['bytes=0-0', 0, 0],
    [`bytes=5-${p - 1}`, 5, p - 1],
    [`bytes=${p}-${p + 999}`, p, p + 999],
    ['bytes=-100', total - 100, total - 1],
    [`bytes=${p + 5}-`, p + 5, total - 1],
    [`bytes=${total - 1}-${total + 1000}`, total - 1, total - 1],
  ];
  for (const [range, s, e] of cases) {
    const r = await http(url('CP-1'), { range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers['content-range'], `bytes ${s}-${e}/${total}`, range);
    assert.equal(r.headers['content-length'], String(e - s + 1), range);
    assert.ok(r.body.equals(want.subarray(s, e + 1)), range);
  }
  const r416 = await http(url('CP-1'), { range: `bytes=${total}-` });
  assert.equal(r416.status, 416);
  assert.equal(r416.headers['content-range'], `bytes */${total}`);
  assert.equal(r416.body.length, 0);

  const etag = String((await http(url('CP-1'), {}, 'HEAD')).headers.etag);
  const matching = await http(url('CP-1'), { range: 'bytes=10-19', 'if-range': etag });
  assert.equal(matching.status, 206);
  const stale = await http(url('CP-1'), { range: 'bytes=10-19', 'if-range': '"another"' });
  assert.equal(stale.status, 200);
  assert.ok(stale.body.equals(want));
  const multi = await http(url('CP-1'), { range: 'bytes=0-1,5-6' });
  assert.equal(multi.status, 200);
  assert.ok(multi.body.equals(want));
  const headRange = await http(url('CP-1'), { range: 'bytes=0-99' }, 'HEAD');
  assert.equal(headRange.status, 206);
  assert.equal(headRange.headers['content-length'], '100');
  assert.equal(headRange.body.length, 0);
});

test('404 for an unknown package, a wrong token, a station without a key slot, a malformed path; 405 for other methods', async () => {
  const unknown = '0123456789abcdef0123456789abcdef';
  assert.equal((await http(url('CP-1', unknown))).status, 404);
  const good = url('CP-1');
  const badToken = good.slice(0, -3) + (good.endsWith('AAA') ? 'BBB' : 'AAA');
  assert.equal((await http(badToken)).status, 404);
  // CP-3 is a registered station with a valid token but no key slot in this package
  assert.equal((await http(url('CP-3'))).status, 404);
  // CP-1's token does not open CP-2's download
  assert.equal((await http(good.replace('/CP-1/', '/CP-2/'))).status, 404);
  assert.equal((await http(`/firmware/${pkg.packageId}/CP-1`)).status, 404);
  assert.equal((await http('/firmware/../evseal.db')).status, 404);
  assert.equal((await http(good, {}, 'POST')).status, 405);
});

test('a download cut off mid-body resumes with Range + If-Range and completes byte for byte', async () => {
  const want = body.get('CP-2')!;
  const first = await new Promise<{ got: Buffer; etag: string }>((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const req = get(fw.httpBase() + url('CP-2'), { agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        parts.push(c);
        n += c.length;
        if (n >= 50_000) {
          req.destroy(); // the connection drops
          resolve({ got: Buffer.concat(parts), etag: String(res.headers.etag) });
        }
      });
      res.on('error', () => undefined);
    });
    req.on('error', (e) => (n >= 50_000 ? undefined : reject(e)));
  });
  assert.ok(first.got.length >= 50_000 && first.got.length < want.length);
  const rest = await http(url('CP-2'), { range: `bytes=${first.got.length}-`, 'if-range': first.etag });
  assert.equal(rest.status, 206);
  assert.ok(Buffer.concat([first.got, rest.body]).equals(want));
  assert.equal(createHash('sha256').update(Buffer.concat([first.got, rest.body])).digest('hex'), createHash('sha256').update(want).digest('hex'));
});
