import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { Logger } from 'pino';
import { EvsealError } from '../../core/errors.js';
import type { PackageHolders } from './holders.js';
import type { PackageIndex } from '../../firmware/package.js';
import type { PackageStore } from './packages.js';

/** The path one node fetches a whole package from another with (./http.ts serves it). */
export function replicaPath(store: PackageStore, packageId: string): string {
  return `/firmware/replica/${packageId}/${store.replicaToken(packageId)}`;
}

/** A node that sends nothing for this long is given up on (the next sweep tries again). */
const FETCH_IDLE_MS = 30_000;

function fetchFrom(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { timeout: FETCH_IDLE_MS }, (res) => {
      if (res.statusCode === 200) return resolve(res);
      res.resume();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
  });
}

export interface ReplicationOptions {
  packages: PackageStore;
  holders: PackageHolders;
  log: Logger;
  now: () => number;
}

/** How often each node compares what it holds with the cluster's records. */
const SWEEP_MS = 30_000;

/**
 * Firmware packages on every node of a cluster (docs/cluster.md): a package
 * uploaded to one node is copied by each other node, so downloads and new
 * rollouts go on wherever stations and operators connect, and when the
 * node it was uploaded to is gone. A node copies a package when the node
 * that took it in announces it over the bus, when it is asked for one it
 * does not hold (a download, a rollout, an upload's first question), and in
 * a sweep at start and every 30 seconds, which also catches what it missed
 * while away. It fetches the whole file from a node that holds it, with a
 * capability only nodes sharing the URL key can make, and takes it in only
 * if its bytes hash to the digest the uploading node recorded in the store
 * and it is a full package with that id, as an upload's commit is checked.
 *
 * A deletion (through any node) marks the package deleted in the store,
 * clears every node's record and is announced; each node drops its copy,
 * and one that was away drops it at its next sweep instead of recording it
 * again.
 */
export class PackageReplication {
  readonly #o: ReplicationOptions;
  readonly #copying = new Map<string, Promise<boolean>>();
  /** packages being committed by an upload to this node */
  readonly #uploading = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #sweeping: Promise<void> | undefined;
  #closed = false;
  /** set by the cluster bus: tells the other nodes that this one holds a new package, or that one is deleted */
  announce: ((e: { held: string } | { deleted: string }) => void) | undefined;

  constructor(o: ReplicationOptions) {
    this.#o = o;
    this.#timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  /**
   * Commits an upload here, records it (lifting a deletion mark: the
   * package is uploaded again) and announces it. Meanwhile this node's
   * sweep leaves the package alone: between the commit and the lifted mark
   * it would take the new file for a copy of the deleted package.
   */
  async commit(packageId: string, sha256: Uint8Array, commit: () => Promise<PackageIndex>): Promise<PackageIndex> {
    this.#uploading.add(packageId);
    try {
      const index = await commit();
      await this.#o.holders.record(packageId, sha256, { undelete: true });
      this.announce?.({ held: packageId });
      return index;
    } finally {
      this.#uploading.delete(packageId);
    }
  }

  /**
   * Copies `packageId` from a node that holds it unless this node does;
   * whether this node holds it afterwards. Never throws: a failure is
   * logged, and the sweep tries again.
   */
  ensure(packageId: string): Promise<boolean> {
    let p = this.#copying.get(packageId);
    if (!p) {
      p = this.#copy(packageId).finally(() => this.#copying.delete(packageId));
      this.#copying.set(packageId, p);
    }
    return p;
  }

  async #copy(packageId: string): Promise<boolean> {
    try {
      return await this.#copyFromHolders(packageId);
    } catch (e) {
      this.#o.log.warn({ packageId, err: (e as Error).message }, 'firmware package could not be copied');
      return false;
    }
  }

  async #copyFromHolders(packageId: string): Promise<boolean> {
    const { packages, holders, log } = this.#o;
    try {
      await packages.index(packageId);
      return true;
    } catch (e) {
      if (!(e instanceof EvsealError && e.code === 'ERR_NOT_FOUND')) throw e;
    }
    if (this.#closed || (await holders.deleted(packageId))) return false;
    for (const h of await holders.of(packageId)) {
      if (h.node === holders.self || !h.sha256) continue;
      try {
        const res = await fetchFrom(h.node + replicaPath(packages, packageId));
        await packages.receive(packageId, res, h.sha256);
        // deleted while it was being copied: the copy goes too
        if (await holders.deleted(packageId)) {
          await packages.delete(packageId);
          return false;
        }
        await holders.record(packageId, h.sha256);
        log.info({ packageId, from: h.node }, 'firmware package copied from another node');
        return true;
      } catch (e) {
        log.warn({ packageId, from: h.node, err: (e as Error).message }, 'firmware package could not be copied from this node');
      }
    }
    return false;
  }

  /** The package was deleted through this node: the cluster forgets it. Returns whether any node held it. */
  async deleted(packageId: string): Promise<boolean> {
    const held = await this.#o.holders.forgetEverywhere(packageId, this.#o.now());
    this.announce?.({ deleted: packageId });
    return held;
  }

  /**
   * Another node announced a deletion: this node's copy goes, if the store
   * confirms it, and its record with it (one written in a race with the
   * deletion; only an upload lifts the mark).
   */
  async dropIfDeleted(packageId: string): Promise<void> {
    if (this.#uploading.has(packageId) || !(await this.#o.holders.deleted(packageId))) return;
    // an upload may have begun while the store was read
    if (this.#uploading.has(packageId)) return;
    const dropped = await this.#o.packages.delete(packageId);
    await this.#o.holders.forget(packageId);
    if (dropped) this.#o.log.info({ packageId }, 'firmware package deleted through another node: copy dropped');
  }

  /**
   * Compares the packages held here with the store: copies those other nodes
   * hold and this one does not, records those it holds but has no record of
   * (a node back after a restart or a lost write), and drops those marked
   * deleted.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    if (this.#closed) return;
    const { packages, holders, log } = this.#o;
    try {
      const { held, deleted } = await holders.all();
      const local = new Set(await packages.list());
      for (const packageId of local) if (deleted.has(packageId)) await this.dropIfDeleted(packageId);
      await holders.recordHeld(local, (packageId) => packages.digest(packageId));
      for (const packageId of held.keys()) {
        if (this.#closed) return;
        if (!local.has(packageId) && !deleted.has(packageId)) await this.ensure(packageId);
      }
    } catch (e) {
      if (!this.#closed) log.warn({ err: (e as Error).message }, 'firmware package sweep failed');
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#sweeping;
    await Promise.all(this.#copying.values());
  }
}
