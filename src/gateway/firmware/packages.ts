import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { b64u, fromB64u } from '../../core/base64url.js';
import { EvsealError } from '../../core/errors.js';
import { writeFileAtomic } from '../../keystore/atomic-file.js';
import { derToPem } from '../../core/x509/index.js';
import { KIND_FULL, devicePrefix, packageIndex, readHeadAndMeta, readPackageIndex, type PackageIndex } from '../../firmware/package.js';

/** A package id as the firmware manifest has it (16 random bytes in hex): URL- and file-safe. */
export const PACKAGE_ID_RE = /^[0-9a-f]{32}$/;

export interface PackageStoreOptions {
  /** the gateway's data directory; packages live in DATA/firmware */
  dataDir: string;
  /** largest package accepted for upload (bytes) */
  maxPackageBytes?: number;
}

export interface Held {
  packageId: string;
  /** bytes the gateway holds (all of them once complete) */
  held: number;
  complete: boolean;
}

/**
 * The gateway's firmware packages: uploaded in chunks by an endpoint over
 * its authenticated connection (resumable: an upload continues where the
 * held bytes end), checked against the SHA-256 the uploader states, then
 * renamed into place atomically as DATA/firmware/<packageId>.evfw. The
 * gateway only ever holds the encrypted package: it parses its public
 * index (the device list and the shared byte range) to serve each device
 * its own slice, and nothing else.
 *
 * Memory stays constant: chunks go straight to disk, the digest is
 * computed by streaming the file, device prefixes are small and cached.
 */
export class PackageStore {
  readonly dir: string;
  readonly maxPackageBytes: number;
  #urlKey: Buffer;
  readonly #keyPath: string;
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #indexes = new Map<string, Promise<PackageIndex>>();
  readonly #prefixes = new Map<string, Promise<Uint8Array>>();
  readonly #deleting = new Set<string>();

  constructor(o: PackageStoreOptions) {
    this.dir = join(o.dataDir, 'firmware');
    this.maxPackageBytes = o.maxPackageBytes ?? 4 * 1024 ** 3;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.#keyPath = join(this.dir, 'url.key');
    if (!existsSync(this.#keyPath)) writeFileAtomic(this.#keyPath, b64u(randomBytes(32)) + '\n', 0o600);
    this.#urlKey = Buffer.from(fromB64u(readFileSync(this.#keyPath, 'utf8').trim(), 'firmware url key'));
  }

  /** The URL key (base64url), as DATA/firmware/url.key holds it. */
  get urlKeyText(): string {
    return b64u(this.#urlKey);
  }

  /**
   * Uses `text` (base64url, 32 bytes) as the URL key from now on, and keeps
   * it in DATA/firmware/url.key: in a cluster every node takes the key the
   * shared store holds, so that any node can check any download URL.
   */
  adoptUrlKey(text: string): boolean {
    const key = Buffer.from(fromB64u(text, 'firmware url key'));
    if (key.length !== 32) throw new EvsealError('ERR_INVALID_INPUT', 'firmware url key: 32 bytes expected');
    if (key.equals(this.#urlKey)) return false;
    writeFileAtomic(this.#keyPath, text + '\n', 0o600);
    this.#urlKey = key;
    return true;
  }

  /** The complete packages held, by id. */
  async list(): Promise<string[]> {
    return (await readdir(this.dir)).flatMap((f) => {
      const m = /^([0-9a-f]{32})\.evfw$/.exec(f);
      return m && !this.#deleting.has(m[1]!) ? [m[1]!] : [];
    });
  }

  /** SHA-256 of a complete package's bytes. */
  async digest(packageId: string): Promise<Uint8Array> {
    await this.index(packageId);
    return new Uint8Array(await fileSha256(this.path(packageId)));
  }

  /**
   * Takes in a whole package from `source` (another node's copy, see
   * ./replication.ts), checked as an upload's commit is: the bytes must
   * hash to `sha256` and be a full package with this id. A package already
   * held is kept as it is.
   */
  receive(packageId: string, source: AsyncIterable<Uint8Array>, sha256: Uint8Array): Promise<PackageIndex> {
    checkId(packageId);
    return this.#serial(packageId, async () => {
      if ((await size(this.path(packageId))) !== undefined) return this.index(packageId);
      const fh = await open(this.#part(packageId), 'w', 0o600);
      let written = 0;
      try {
        for await (const chunk of source) {
          written += chunk.length;
          if (written > this.maxPackageBytes) throw new EvsealError('ERR_LIMIT', `a package must be 1..${this.maxPackageBytes} bytes`);
          await fh.write(chunk);
        }
      } catch (e) {
        await fh.close();
        await unlink(this.#part(packageId)).catch(() => undefined);
        throw e;
      }
      await fh.close();
      return this.#finish(packageId, sha256);
    });
  }

  path(packageId: string): string {
    return join(this.dir, `${checkId(packageId)}.evfw`);
  }

  #part(packageId: string): string {
    return join(this.dir, `${checkId(packageId)}.evfw.part`);
  }

  /** One operation at a time per package, in arrival order (chunks are appended). */
  #serial<T>(packageId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(packageId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#queues.set(packageId, tail);
    void tail.then(() => {
      if (this.#queues.get(packageId) === tail) this.#queues.delete(packageId);
    });
    return run;
  }

  async held(packageId: string): Promise<Held> {
    checkId(packageId);
    const full = await size(this.path(packageId));
    if (full !== undefined) return { packageId, held: full, complete: true };
    return { packageId, held: (await size(this.#part(packageId))) ?? 0, complete: false };
  }

  /**
   * Appends one chunk at `offset`, which must be where the held bytes end
   * (a resend of bytes already held is answered with the current state, so
   * a retried chunk after a lost answer is harmless).
   */
  write(packageId: string, total: number, offset: number, data: Uint8Array): Promise<Held> {
    checkId(packageId);
    if (total <= 0 || total > this.maxPackageBytes) throw new EvsealError('ERR_LIMIT', `a package must be 1..${this.maxPackageBytes} bytes`);
    if (offset + data.length > total) throw new EvsealError('ERR_INVALID_INPUT', 'chunk runs past the stated package size');
    return this.#serial(packageId, async () => {
      const h = await this.held(packageId);
      if (h.complete || offset + data.length <= h.held) return h;
      if (offset !== h.held) throw new EvsealError('ERR_INVALID_INPUT', `chunk at ${offset}, but ${h.held} bytes are held`);
      const fh = await open(this.#part(packageId), 'a', 0o600);
      try {
        await fh.write(data);
      } finally {
        await fh.close();
      }
      return { packageId, held: h.held + data.length, complete: false };
    });
  }

  /**
   * Completes an upload: the held bytes must hash to `sha256` and parse as
   * a package whose id is `packageId`. On a mismatch the partial file is
   * dropped (the upload starts over); on success it is made durable and
   * renamed into place. Committing a complete package again is a no-op.
   */
  commit(packageId: string, sha256: Uint8Array): Promise<PackageIndex> {
    checkId(packageId);
    return this.#serial(packageId, async () => {
      if ((await size(this.path(packageId))) !== undefined) return this.index(packageId);
      return this.#finish(packageId, sha256);
    });
  }

  /** commit's checks and renaming, inside the package's turn (#serial). */
  async #finish(packageId: string, sha256: Uint8Array): Promise<PackageIndex> {
    const part = this.#part(packageId);
    if ((await size(part)) === undefined) throw new EvsealError('ERR_NOT_FOUND', `no upload of ${packageId} in progress`);
    const digest = await fileSha256(part);
    let index: PackageIndex | undefined;
    if (sha256.length === 32 && timingSafeEqual(digest, sha256)) {
      try {
        // a full package (every key slot): device prefixes are cut from it
        const { head, meta } = await readHeadAndMeta(part);
        if (head.kind === KIND_FULL) index = packageIndex(head, meta);
      } catch {
        index = undefined;
      }
    }
    if (!index || index.packageId !== packageId) {
      await unlink(part).catch(() => undefined);
      throw new EvsealError('ERR_INVALID_INPUT', 'the uploaded bytes are not the stated package; the upload starts over');
    }
    const fh = await open(part, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(part, this.path(packageId));
    const dfh = await open(this.dir, 'r');
    try {
      await dfh.sync();
    } finally {
      await dfh.close();
    }
    this.#indexes.set(packageId, Promise.resolve(index));
    return index;
  }

  /**
   * Deletes a package and any partial upload of it. From the call on it is
   * not found (no new rollout or download starts on it); a download already
   * streaming finishes from the open file. Returns whether anything was held.
   */
  delete(packageId: string): Promise<boolean> {
    checkId(packageId);
    this.#deleting.add(packageId);
    this.#indexes.delete(packageId);
    for (const key of this.#prefixes.keys()) if (key.startsWith(`${packageId}\0`)) this.#prefixes.delete(key);
    return this.#serial(packageId, async () => {
      try {
        let found = false;
        for (const path of [this.path(packageId), this.#part(packageId)]) {
          try {
            await unlink(path);
            found = true;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          }
        }
        return found;
      } finally {
        this.#deleting.delete(packageId);
      }
    });
  }

  /** The public index of a complete package (ERR_NOT_FOUND if it is not held). */
  index(packageId: string): Promise<PackageIndex> {
    if (this.#deleting.has(packageId)) return Promise.reject(new EvsealError('ERR_NOT_FOUND', `package ${packageId} is being deleted`));
    let p = this.#indexes.get(packageId);
    if (!p) {
      const path = this.path(packageId);
      p = (async () => {
        if ((await size(path)) === undefined) throw new EvsealError('ERR_NOT_FOUND', `package ${packageId} is not held`);
        return readPackageIndex(path);
      })();
      this.#indexes.set(packageId, p);
      p.catch(() => this.#indexes.delete(packageId));
    }
    return p;
  }

  /**
   * What OCPP's firmware fields carry for this package: the publisher's
   * certificate (PEM) and its signature over the manifest (base64). The
   * station does not take them on trust: unpacking verifies the same
   * signature and chain from inside the package, under its own trust policy.
   */
  async ocppFields(packageId: string): Promise<{ signingCertificate: string; signature: string }> {
    await this.index(packageId);
    const { meta } = await readHeadAndMeta(this.path(packageId));
    return { signingCertificate: derToPem(meta.chain[0]!, 'CERTIFICATE'), signature: Buffer.from(meta.signature).toString('base64') };
  }

  /** The bytes that come before the shared range in `deviceId`'s download (its key slot and proof). */
  prefix(packageId: string, index: PackageIndex, deviceId: string): Promise<Uint8Array> {
    const key = `${packageId}\0${deviceId}`;
    let p = this.#prefixes.get(key);
    if (!p) {
      if (this.#prefixes.size >= 4096) this.#prefixes.delete(this.#prefixes.keys().next().value as string);
      p = devicePrefix(this.path(packageId), index, deviceId);
      this.#prefixes.set(key, p);
      p.catch(() => this.#prefixes.delete(key));
    }
    return p;
  }

  /**
   * The capability in a download URL: HMAC-SHA256 under a key that never
   * leaves the gateway, over the package and station ids, 128 bits. The
   * package is encrypted either way; the token keeps strangers from
   * listing which stations a package serves and from fetching it at will.
   */
  token(packageId: string, stationId: string): string {
    return b64u(createHmac('sha256', this.#urlKey).update(`evseal firmware url\0${packageId}\0${stationId}`).digest().subarray(0, 16));
  }

  checkToken(packageId: string, stationId: string, token: string): boolean {
    return sameText(this.token(packageId, stationId), token);
  }

  /** The capability another node of the cluster fetches a whole package with (./replication.ts). */
  replicaToken(packageId: string): string {
    return b64u(createHmac('sha256', this.#urlKey).update(`evseal firmware replica\0${packageId}`).digest().subarray(0, 16));
  }

  checkReplicaToken(packageId: string, token: string): boolean {
    return sameText(this.replicaToken(packageId), token);
  }
}

function sameText(want: string, got: string): boolean {
  const a = Buffer.from(want);
  const b = Buffer.from(got);
  return a.length === b.length && timingSafeEqual(a, b);
}

function checkId(packageId: string): string {
  if (!PACKAGE_ID_RE.test(packageId)) throw new EvsealError('ERR_INVALID_INPUT', 'malformed package id');
  return packageId;
}

async function size(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function fileSha256(path: string): Promise<Buffer> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) h.update(chunk as Buffer);
  return h.digest();
}
