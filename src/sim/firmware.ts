import { closeSync, mkdirSync, openSync, writeSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EvsealError } from '../core/errors.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { unpackFirmware } from '../firmware/unpack.js';
import type { OcppProtocol } from '../gateway/ocpp/validators.js';

/**
 * The firmware side of the simulated charger: it takes UpdateFirmware
 * (OCPP 2.0.1 / 2.1) and SignedUpdateFirmware (1.6 security whitepaper),
 * answers Accepted, then downloads its device package from the location
 * URL (resuming with HTTP Range after a dropped connection), verifies and
 * decrypts it with unpackFirmware and reports each step with
 * FirmwareStatusNotification / SignedFirmwareStatusNotification:
 *
 *   Downloading → Downloaded → SignatureVerified → Installing → Installed
 *
 * or a final failure: DownloadFailed; InvalidSignature (with a
 * SecurityEventNotification InvalidFirmwareSignature) when the package does
 * not verify or decrypt; InstallVerificationFailed when a verified package
 * is for another model or not newer than the installed version;
 * InstallationFailed otherwise. The OCPP signingCertificate and signature
 * fields are not taken on trust: the package carries the same signature and
 * chain, which unpacking checks under the charger's own trust policy.
 */

export type FirmwareEvent = { type: 'firmware'; requestId: number; status: string; detail?: string };

export interface SimFirmwareOptions {
  endpoint: Endpoint;
  /** downloads (<requestId>.evfw) and installed images (image-<requestId>.bin) go here */
  dir: string;
  /** PEM CA for https:// locations */
  ca?: string | Buffer;
  /** download attempts when the call gives no `retries` (default 3) */
  retries?: number;
  /** seconds between attempts when the call gives no `retryInterval` (default 1) */
  retryIntervalSec?: number;
}

interface FirmwareCall {
  requestId: number;
  retries?: number;
  retryInterval?: number;
  firmware: { location: string; retrieveDateTime: string; signingCertificate?: string; signature?: string };
}

type Call = (action: string, params: Record<string, unknown>) => Promise<unknown>;

/** Longest a simulator waits for a retrieveDateTime in the future. */
const MAX_SCHEDULE_MS = 3600_000;

export class SimFirmware {
  readonly #o: SimFirmwareOptions;
  readonly #protocol: OcppProtocol;
  readonly #onEvent: (e: FirmwareEvent) => void;
  /** requestIds taken in this run: a call delivered again (lost answer) is answered but not run twice */
  readonly #seen = new Set<number>();
  #jobs: Promise<void> = Promise.resolve();

  constructor(o: SimFirmwareOptions, protocol: OcppProtocol, onEvent: (e: FirmwareEvent) => void) {
    this.#o = o;
    this.#protocol = protocol;
    this.#onEvent = onEvent;
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  }

  /** The OCPP handlers: the action this protocol uses for a firmware update. */
  handlers(call: Call, signal: AbortSignal): Record<string, (params: unknown) => Promise<Record<string, unknown>>> {
    const action = this.#protocol === 'ocpp1.6' ? 'SignedUpdateFirmware' : 'UpdateFirmware';
    return {
      [action]: async (params) => {
        const p = params as FirmwareCall; // schema-checked by ocpp-rpc (strict mode)
        let url: URL;
        try {
          url = new URL(p.firmware.location);
        } catch {
          return { status: 'Rejected' };
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') return { status: 'Rejected' };
        if (!this.#seen.has(p.requestId)) {
          this.#seen.add(p.requestId);
          // after the answer has gone out: the status notifications are calls of their own
          this.#jobs = this.#jobs.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.#update(p, url, call, signal));
        }
        return { status: 'Accepted' };
      },
    };
  }

  /** Resolves when every accepted update has reached a final status. */
  idle(): Promise<void> {
    return this.#jobs;
  }

  async #update(p: FirmwareCall, url: URL, call: Call, signal: AbortSignal): Promise<void> {
    const status = async (s: string, detail?: string): Promise<void> => {
      const action = this.#protocol === 'ocpp1.6' ? 'SignedFirmwareStatusNotification' : 'FirmwareStatusNotification';
      await call(action, { status: s, requestId: p.requestId });
      this.#onEvent({ type: 'firmware', requestId: p.requestId, status: s, ...(detail ? { detail } : {}) });
    };
    try {
      const wait = Date.parse(p.firmware.retrieveDateTime) - Date.now();
      if (wait > 0) await sleep(Math.min(wait, MAX_SCHEDULE_MS), undefined, { signal });
      const pkg = join(this.#o.dir, `${p.requestId}.evfw`);
      await status('Downloading');
      try {
        await this.#download(url, pkg, p.retries ?? this.#o.retries ?? 3, (p.retryInterval ?? this.#o.retryIntervalSec ?? 1) * 1000, signal);
      } catch (e) {
        if (signal.aborted) return;
        await status('DownloadFailed', (e as Error).message);
        return;
      }
      await status('Downloaded');
      let r;
      try {
        r = await unpackFirmware({ endpoint: this.#o.endpoint, input: pkg, output: join(this.#o.dir, `image-${p.requestId}.bin`) });
      } catch (e) {
        const code = e instanceof EvsealError ? e.code : 'ERR_STATE';
        if (code === 'ERR_FIRMWARE_REJECTED') {
          await call('SecurityEventNotification', { type: 'InvalidFirmwareSignature', timestamp: new Date().toISOString(), techInfo: `requestId ${p.requestId}` });
          await status('InvalidSignature', code);
        } else if (code === 'ERR_FIRMWARE_MODEL' || code === 'ERR_FIRMWARE_ROLLBACK') {
          await status('InstallVerificationFailed', code);
        } else {
          await status('InstallationFailed', code);
        }
        return;
      }
      // unpackFirmware verified the chain, signature and key slot before decrypting, and the digests after
      await status('SignatureVerified');
      await status('Installing');
      await status('Installed', `version ${r.version}`);
    } catch (e) {
      // the connection went away mid-report: the CSMS learns the state at the next update
      if (!signal.aborted) this.#onEvent({ type: 'firmware', requestId: p.requestId, status: 'report-failed', detail: (e as Error).message });
    }
  }

  /**
   * GETs `url` into `path`, resuming from `path.part` with a Range request
   * (and If-Range, so a changed resource starts over) after each failure.
   */
  async #download(url: URL, path: string, attempts: number, intervalMs: number, signal: AbortSignal): Promise<void> {
    const part = `${path}.part`;
    const etagFile = `${path}.etag`;
    let last: Error | undefined;
    for (let i = 0; i < Math.max(1, attempts); i++) {
      if (i > 0) await sleep(intervalMs, undefined, { signal });
      try {
        const held = fileSize(part);
        const etag = held > 0 ? readText(etagFile) : undefined;
        const res = await get(url, held > 0 && etag ? { range: `bytes=${held}-`, 'if-range': etag } : {}, this.#o.ca, signal);
        if (res.statusCode === 416 && held > 0 && res.headers['content-range'] === `bytes */${held}`) {
          res.resume();
          break; // everything was already held
        }
        if (res.statusCode !== 200 && res.statusCode !== 206) {
          res.resume();
          throw new Error(`HTTP ${res.statusCode}`);
        }
        const append = res.statusCode === 206;
        if (append && !String(res.headers['content-range'] ?? '').startsWith(`bytes ${held}-`)) {
          res.resume();
          throw new Error('the server resumed at another offset');
        }
        if (typeof res.headers.etag === 'string') writeFileSync(etagFile, res.headers.etag);
        await saveBody(res, part, append);
        const want = totalOf(res);
        if (want !== undefined && fileSize(part) !== want) throw new Error('download ended early');
        last = undefined;
        break;
      } catch (e) {
        if (signal.aborted) throw e;
        last = e as Error;
      }
    }
    if (last) throw last;
    renameSync(part, path);
    try {
      unlinkSync(etagFile);
    } catch {
      // no ETag was given
    }
  }
}

/**
 * Writes the body to `path` as it arrives (flowing mode, synchronous
 * writes): a body cut off mid-way leaves exactly the bytes the socket
 * delivered, so the next attempt resumes from there. (A paused stream drops
 * what it has buffered when the connection aborts, and a destroyed write
 * stream can drop or late-write buffered bytes.)
 */
function saveBody(res: IncomingMessage, path: string, append: boolean): Promise<void> {
  const fd = openSync(path, append ? 'a' : 'w', 0o600);
  return new Promise<void>((resolve, reject) => {
    res.on('data', (c: Buffer) => {
      try {
        for (let off = 0; off < c.length; ) off += writeSync(fd, c, off);
      } catch (e) {
        res.destroy(e as Error);
      }
    });
    res.once('end', resolve);
    res.once('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('download cut off'));
    });
  }).finally(() => closeSync(fd));
}

function get(url: URL, headers: Record<string, string>, ca: string | Buffer | undefined, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers, signal, ...(ca ? { ca } : {}) }, resolve);
    req.on('error', reject);
    // a stalled server is a failed attempt; the next one resumes
    req.setTimeout(30_000, () => req.destroy(new Error('download stalled')));
    req.end();
  });
}

/** The full length of the resource, from Content-Range (206) or Content-Length (200). */
function totalOf(res: IncomingMessage): number | undefined {
  const cr = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
  if (cr) return Number(cr[1]);
  const cl = res.headers['content-length'];
  return cl === undefined ? undefined : Number(cl);
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

function readText(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}
