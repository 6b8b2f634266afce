import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { ID_RE } from '../../core/roles.js';
import { EvsealError } from '../../core/errors.js';
import type { Metrics } from '../metrics.js';
import { sourceKey } from '../source-key.js';
import { TokenBuckets } from '../token-buckets.js';
import { parseRange } from './range.js';
import type { PackageHolders } from './holders.js';
import { PACKAGE_ID_RE, type PackageStore } from './packages.js';
import type { PackageReplication } from './replication.js';

/** The path a station downloads its device package from (docs/firmware.md, "Delivery through OCPP"). */
export function firmwarePath(store: PackageStore, packageId: string, stationId: string): string {
  return `/firmware/${packageId}/${encodeURIComponent(stationId)}/${store.token(packageId, stationId)}`;
}

const PATH = /^\/firmware\/([^/]+)\/([^/]+)\/([A-Za-z0-9_-]{22})$/;
/** A whole package, for another node of the cluster (./replication.ts). */
const REPLICA = /^\/firmware\/replica\/([0-9a-f]{32})\/([A-Za-z0-9_-]{22})$/;

/** Marks a download one node forwarded to another: it is never forwarded again. */
const FORWARDED = 'x-evseal-forwarded';
/** What a forwarded download passes on, each way. */
const REQUEST_HEADERS = ['range', 'if-range'] as const;
const RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag', 'cache-control'] as const;
/** A node that holds the package but sends nothing for this long is given up on. */
const FORWARD_IDLE_MS = 30_000;

/**
 * Streams the download from the node holding the package, status, headers
 * and body as it answers (that node checks the token); resolves with its
 * status. Rejects before any byte is written if that node cannot be reached.
 */
function forward(req: IncomingMessage, res: ServerResponse, holder: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { [FORWARDED]: '1' };
    for (const h of REQUEST_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const target = holder + (req.url ?? '/');
    const up = (target.startsWith('https:') ? httpsRequest : httpRequest)(target, { method: req.method, headers, timeout: FORWARD_IDLE_MS }, (r) => {
      const out: Record<string, string | string[]> = {};
      for (const h of RESPONSE_HEADERS) if (r.headers[h] !== undefined) out[h] = r.headers[h];
      const status = r.statusCode ?? 502;
      res.writeHead(status, out);
      pipeline(r, res).then(() => resolve(status), reject);
    });
    up.on('timeout', () => up.destroy(new Error('the node holding the package did not answer')));
    up.on('error', reject);
    up.end();
  });
}

export interface FirmwareHttpLimits {
  /** requests from one source address answered 404, in a burst; past it 429 until refilled */
  notFoundBurst: number;
  /** 404 answers per minute that budget is refilled with */
  notFoundPerMinute: number;
  /** requests served at once (each holds a file or a forwarded connection open); more get 503 */
  maxConcurrent: number;
}

/**
 * Serves each station its device package: the device prefix (its key slot
 * and inclusion proof) followed by the package's shared byte range, which
 * every device downloads unchanged. GET and HEAD, one byte range per
 * request (206, or 416 past the end), a strong ETag and If-Range, so an
 * interrupted download resumes where it stopped. The body is streamed from
 * disk: memory does not grow with the package. Anything unknown, or a
 * token that does not match, is 404 (the two are not told apart).
 *
 * Limits (docs/operations.md): a source address whose requests keep being
 * answered 404 (a scan for package ids or tokens; in a cluster each such
 * request would cost a store read and perhaps a forward) is answered 429
 * before any lookup, and at most `maxConcurrent` requests are served at
 * once (503 past that), which bounds the open files and forwarded
 * connections. A download forwarded by another node, and a node's fetch of
 * a whole package, are exempt from the 404 budget: each is answered here
 * without a store read or a forward (and the node that forwarded a
 * download counted it against the real source).
 */
export function createFirmwareHttp(store: PackageStore, holders: PackageHolders, log: Logger, o: { limits: FirmwareHttpLimits; metrics: Metrics; replication?: PackageReplication }) {
  const misses = new TokenBuckets({ burst: o.limits.notFoundBurst, perMinute: o.limits.notFoundPerMinute });
  const outcomes = o.metrics.firmwareDownloads;
  let active = 0;
  const notFound = (res: ServerResponse): void => {
    outcomes.inc({ outcome: 'not-found' });
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  };
  const refuse = (res: ServerResponse, status: 429 | 503, retryAfterSec: number): void => {
    outcomes.inc({ outcome: status === 429 ? 'throttled' : 'busy' });
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': String(retryAfterSec) });
    res.end(`{"error":"${status === 429 ? 'too many requests not found from this address' : 'too many downloads at once'}"}`);
  };

  /** A whole package to another node, which checks its digest against the store's record. */
  async function serveReplica(res: ServerResponse, packageId: string, token: string): Promise<void> {
    if (!store.checkReplicaToken(packageId, token)) return notFound(res);
    try {
      await store.index(packageId);
    } catch (e) {
      if (e instanceof EvsealError && e.code === 'ERR_NOT_FOUND') return notFound(res);
      throw e;
    }
    let size: number;
    try {
      size = (await stat(store.path(packageId))).size;
    } catch {
      return notFound(res); // deleted just now
    }
    outcomes.inc({ outcome: 'replica' });
    log.info({ packageId }, 'firmware package sent to another node');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    await pipeline(createReadStream(store.path(packageId), { highWaterMark: 256 * 1024 }), res);
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const replica = REPLICA.exec(path);
    if (replica) return req.method === 'GET' ? serveReplica(res, replica[1]!, replica[2]!) : notFound(res);
    const m = PATH.exec(path);
    if (!m) return notFound(res);
    const [, packageId, rawStation, token] = m as unknown as [string, string, string, string];
    let stationId: string;
    try {
      stationId = decodeURIComponent(rawStation);
    } catch {
      return notFound(res);
    }
    if (!PACKAGE_ID_RE.test(packageId) || !ID_RE.test(stationId)) return notFound(res);
    let index;
    try {
      index = await store.index(packageId);
    } catch (e) {
      if (!(e instanceof EvsealError && e.code === 'ERR_NOT_FOUND')) throw e;
      // In a cluster the package may be held by other nodes (./holders.ts): the download goes to the first that answers, once.
      const others = req.headers[FORWARDED] === undefined ? await holders.others(packageId) : [];
      if (others.length === 0) return notFound(res);
      // this node takes a copy meanwhile, so the next download is served here
      void o.replication?.ensure(packageId);
      for (const holder of others) {
        try {
          const status = await forward(req, res, holder);
          log.info({ packageId, stationId, holder }, 'firmware download forwarded');
          outcomes.inc({ outcome: status === 404 ? 'not-found' : 'forwarded' });
          return;
        } catch (fe) {
          if (res.headersSent) throw fe;
          log.warn({ packageId, holder, err: (fe as Error).message }, 'firmware download could not be forwarded to this node');
        }
      }
      outcomes.inc({ outcome: 'unreachable' });
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"error":"no gateway node holding this package can be reached"}');
      return;
    }
    if (!store.checkToken(packageId, stationId, token) || !index.deviceIds.includes(stationId)) return notFound(res);
    const prefix = await store.prefix(packageId, index, stationId);
    const total = prefix.length + index.shared.length;
    const etag = `"${createHash('sha256').update(`${packageId}\0${stationId}\0`).update(prefix).digest('base64url').slice(0, 27)}"`;
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag,
      'cache-control': 'private, no-transform',
    };
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, total) : undefined;
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${total}`, 'content-length': 0 });
      res.end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? total - 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${total}`;
    headers['content-length'] = end - start + 1;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || end < start) {
      res.end();
      return;
    }
    outcomes.inc({ outcome: 'served' });
    log.info({ packageId, stationId, start, end, total }, 'firmware download');
    // [start, end] over prefix ‖ shared: first the part inside the prefix, then the file's bytes
    if (start < prefix.length) {
      const ok = res.write(prefix.subarray(start, Math.min(end + 1, prefix.length)));
      if (!ok) await new Promise<void>((r) => res.once('drain', () => r()));
    }
    if (end >= prefix.length) {
      const from = index.shared.offset + Math.max(0, start - prefix.length);
      const to = index.shared.offset + (end - prefix.length);
      await pipeline(createReadStream(store.path(packageId), { start: from, end: to, highWaterMark: 64 * 1024 }), res);
    } else {
      res.end();
    }
  }

  return {
    /** Whether this request is for the firmware handler. */
    matches: (req: IncomingMessage): boolean => (req.url ?? '').startsWith('/firmware/'),
    handle(req: IncomingMessage, res: ServerResponse): void {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' });
        res.end();
        return;
      }
      // answered here without a store read or a forward, so outside the 404 budget: a download another
      // node forwarded (that node counted it against the real source) and a node's copy of a whole package
      const exempt = req.headers[FORWARDED] !== undefined || (req.url ?? '').startsWith('/firmware/replica/');
      const source = sourceKey(req.socket.remoteAddress);
      if (!exempt) {
        const wait = misses.wait(source);
        if (wait > 0) return refuse(res, 429, wait);
      }
      if (active >= o.limits.maxConcurrent) return refuse(res, 503, 1);
      active++;
      res.once('close', () => {
        active--;
        if (!exempt && res.statusCode === 404) misses.spend(source);
      });
      serve(req, res).catch((e: unknown) => {
        // a client that went away mid-body is routine for a resuming downloader
        if ((e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
        log.error({ err: (e as Error).message }, 'firmware download failed');
        if (!res.headersSent) {
          res.writeHead(500);
          res.end();
        } else {
          res.destroy();
        }
      });
    },
  };
}
