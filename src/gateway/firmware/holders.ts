import { b64u, fromB64u } from '../../core/base64url.js';
import { nodeKey } from '../cluster/node-key.js';
import type { GatewayStore } from '../store/store.js';

const PREFIX = 'package-holder.';
/** One record per (package, node), so nodes never overwrite each other's. */
const holderKey = (packageId: string, node: string): string => `${PREFIX}${packageId}.${nodeKey(node)}`;
const tombstoneKey = (packageId: string): string => `package-deleted.${packageId}`;

/** A node that holds a package, and the SHA-256 of the package's bytes as that node took them in. */
export interface Holder {
  node: string;
  /** absent in a record written before digests were recorded: such a copy is forwarded to, never replicated */
  sha256?: Uint8Array;
}

function parseHolder(value: string): Holder | undefined {
  if (value === '') return undefined;
  if (!value.startsWith('{')) return { node: value }; // a record of the earlier form: the address alone
  try {
    const v = JSON.parse(value) as { node?: unknown; sha256?: unknown };
    if (typeof v.node !== 'string' || typeof v.sha256 !== 'string') return undefined;
    return { node: v.node, sha256: fromB64u(v.sha256, 'package digest') };
  } catch {
    return undefined;
  }
}

/**
 * In a cluster, which nodes hold each firmware package: a package lives in
 * the data directory of each node that holds it (the one it was uploaded
 * to, and those that copied it, ./replication.ts), and a node asked for
 * one it does not hold forwards the download to one that does (./http.ts).
 * Each node records its own address (`--node-url`) for the packages it
 * holds. A package deleted anywhere is marked deleted, so a node that was
 * away when it happened drops its copy instead of offering it again.
 */
export class PackageHolders {
  readonly #store: GatewayStore;
  readonly #self: () => string;

  constructor(store: GatewayStore, self: () => string) {
    this.#store = store;
    this.#self = self;
  }

  get self(): string {
    return this.#self();
  }

  /**
   * This node now holds the complete package, whose bytes hash to `sha256`.
   * An upload (`undelete`) lifts a deletion mark first; a copy never does,
   * so one racing a deletion cannot bring the package back.
   */
  async record(packageId: string, sha256: Uint8Array, o: { undelete?: boolean } = {}): Promise<void> {
    if (o.undelete) await this.#store.putSetting(tombstoneKey(packageId), '');
    await this.#store.putSetting(holderKey(packageId, this.#self()), JSON.stringify({ node: this.#self(), sha256: b64u(sha256) }));
  }

  /** This node no longer holds it. */
  forget(packageId: string): Promise<void> {
    return this.#store.putSetting(holderKey(packageId, this.#self()), '');
  }

  /**
   * The package is deleted in the whole cluster: marked deleted first (so no
   * node records a copy again meanwhile), then every node's record cleared.
   * Returns whether any node held it.
   */
  async forgetEverywhere(packageId: string, now: number): Promise<boolean> {
    await this.#store.putSetting(tombstoneKey(packageId), String(now));
    const records = await this.#store.settingsWithPrefix(PREFIX + packageId);
    let held = false;
    for (const [key, value] of records) {
      if (value === '') continue;
      held = true;
      await this.#store.putSetting(key, '');
    }
    return held;
  }

  /**
   * Removes every record of `node`, a node gone for good (or one whose
   * address changed): downloads are no longer forwarded to it, nor copies
   * fetched from it. A node that comes back records its packages again
   * (recordHeld). Returns how many went.
   */
  async forgetNode(node: string): Promise<number> {
    const suffix = `.${nodeKey(node)}`;
    let n = 0;
    for (const [key, value] of await this.#store.settingsWithPrefix(PREFIX)) {
      if (key.endsWith(suffix) && value !== '' && (await this.#store.deleteSetting(key, value))) n++;
    }
    return n;
  }

  /**
   * Records this node for each package it holds that has no record of it (a
   * node back after a restart, under a new address, after it was forgotten,
   * or after a lost write), except those marked deleted; returns them.
   */
  async recordHeld(local: Iterable<string>, digest: (packageId: string) => Promise<Uint8Array>): Promise<string[]> {
    const { held, deleted } = await this.all();
    const recorded: string[] = [];
    for (const packageId of local) {
      if (deleted.has(packageId) || (held.get(packageId) ?? []).some((h) => h.node === this.#self())) continue;
      await this.record(packageId, await digest(packageId));
      recorded.push(packageId);
    }
    return recorded;
  }

  /** Whether the package was deleted (and not uploaded again since). */
  async deleted(packageId: string): Promise<boolean> {
    return ((await this.#store.getSetting(tombstoneKey(packageId))) ?? '') !== '';
  }

  /** The nodes holding `packageId`, this one included if it recorded itself. */
  async of(packageId: string): Promise<Holder[]> {
    return (await this.#store.settingsWithPrefix(PREFIX + packageId)).flatMap(([, v]) => parseHolder(v) ?? []);
  }

  /** The addresses of the other nodes holding the package. */
  async others(packageId: string): Promise<string[]> {
    return (await this.of(packageId)).flatMap((h) => (h.node === this.#self() ? [] : [h.node]));
  }

  /** Every package some node holds, with its holders; and the packages marked deleted. */
  async all(): Promise<{ held: Map<string, Holder[]>; deleted: Set<string> }> {
    const held = new Map<string, Holder[]>();
    for (const [key, value] of await this.#store.settingsWithPrefix(PREFIX)) {
      const h = parseHolder(value);
      if (!h) continue;
      const packageId = key.slice(PREFIX.length, PREFIX.length + 32);
      held.set(packageId, [...(held.get(packageId) ?? []), h]);
    }
    const deleted = new Set<string>();
    for (const [key, value] of await this.#store.settingsWithPrefix('package-deleted.')) if (value !== '') deleted.add(key.slice('package-deleted.'.length));
    return { held, deleted };
  }
}
