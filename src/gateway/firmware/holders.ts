import type { GatewayStore } from '../store/store.js';

const key = (packageId: string): string => `package-holder.${packageId}`;

/**
 * In a cluster, which node holds each firmware package: packages live in
 * the data directory of the node they were uploaded to, and a node asked
 * for one it does not hold forwards the download there (./http.ts). Each
 * node records its own address (`--node-url`) for the packages it takes in.
 */
export class PackageHolders {
  readonly #store: GatewayStore;
  readonly #self: () => string;

  constructor(store: GatewayStore, self: () => string) {
    this.#store = store;
    this.#self = self;
  }

  /** This node now holds the complete package. */
  record(packageId: string): Promise<void> {
    return this.#store.putSetting(key(packageId), this.#self());
  }

  /** This node no longer holds it (deleted). */
  async forget(packageId: string): Promise<void> {
    if ((await this.#store.getSetting(key(packageId))) === this.#self()) await this.#store.putSetting(key(packageId), '');
  }

  /** The address of another node holding the package, if one does. */
  async elsewhere(packageId: string): Promise<string | undefined> {
    const at = await this.#store.getSetting(key(packageId));
    return at && at !== this.#self() ? at : undefined;
  }
}
