// A download of a package this node does not hold is forwarded to the first
// of the nodes holding it that answers (src/gateway/firmware/http.ts): a
// holder that cannot be reached is skipped, and only when none can be is the
// answer 502. Real sockets: the firmware handler on its own HTTP server, a
// stand-in holder answering as a node would, and a port nothing listens on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createFirmwareHttp } from '../../src/gateway/firmware/http.js';
import type { PackageHolders } from '../../src/gateway/firmware/holders.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { createMetrics } from '../../src/gateway/metrics.js';

const PID = 'cd'.repeat(16);
const PATH = `/firmware/${PID}/CP-1/${'A'.repeat(22)}`;
const tmp = mkdtempSync(join(tmpdir(), 'evseal-forward-'));
const servers: Server[] = [];
let holders: string[] = [];
let gateway = '';
let live = '';
let dead = '';
const seen: { url: string | undefined; forwarded: string | undefined; range: string | undefined }[] = [];

const listen = async (s: Server): Promise<string> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
};

before(async () => {
  const holder = createServer((req, res) => {
    seen.push({ url: req.url, forwarded: req.headers['x-evseal-forwarded'] as string | undefined, range: req.headers.range });
    res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-1/10', 'content-length': 2 });
    res.end('ok');
  });
  servers.push(holder);
  live = await listen(holder);
  const gone = createServer();
  dead = await listen(gone);
  await new Promise((r) => gone.close(r)); // nothing listens there any more
  const fw = createFirmwareHttp(new PackageStore({ dataDir: tmp }), { others: async () => holders } as unknown as PackageHolders, pino({ level: 'silent' }), {
    limits: { notFoundBurst: 100, notFoundPerMinute: 100, maxConcurrent: 10 },
    metrics: createMetrics(),
  });
  const gw = createServer((req, res) => fw.handle(req, res));
  servers.push(gw);
  gateway = await listen(gw);
});
after(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

test('a holder that cannot be reached is skipped: the next one answers', async () => {
  holders = [dead, live];
  const r = await fetch(gateway + PATH, { headers: { range: 'bytes=0-1' } });
  assert.equal(r.status, 206);
  assert.equal(await r.text(), 'ok');
  assert.equal(r.headers.get('content-range'), 'bytes 0-1/10');
  assert.deepEqual(seen.at(-1), { url: PATH, forwarded: '1', range: 'bytes=0-1' });
});

test('no holder can be reached: 502; no holder at all: 404', async () => {
  holders = [dead];
  assert.equal((await fetch(gateway + PATH)).status, 502);
  holders = [];
  assert.equal((await fetch(gateway + PATH)).status, 404);
});
