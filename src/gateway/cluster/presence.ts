import type { Logger } from 'pino';
import type { GatewayStore } from '../store/store.js';
import { nodeKey } from './node-key.js';

const PREFIX = 'node-seen.';
const keyOf = (node: string): string => PREFIX + nodeKey(node);

/**
 * Which nodes of a cluster are alive: each node writes the time into the
 * store every third of the node timeout, and a node whose last time is
 * older than the timeout is gone. The time is the database server's clock
 * (`clock`), one clock for all nodes, so the nodes' own clocks may drift
 * apart. A node that has never written one (an earlier version) is never
 * taken for gone.
 */
export class NodePresence {
  readonly #store: GatewayStore;
  readonly #self: () => string;
  readonly #timeoutMs: number;
  readonly #now: () => Promise<number>;
  readonly #log: Logger;

  constructor(o: { store: GatewayStore; self: () => string; timeoutMs: number; clock: () => Promise<number>; log: Logger }) {
    this.#store = o.store;
    this.#self = o.self;
    this.#timeoutMs = o.timeoutMs;
    this.#now = o.clock;
    this.#log = o.log;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** How often beat() should run. */
  get intervalMs(): number {
    return Math.max(100, Math.floor(this.#timeoutMs / 3));
  }

  /** Records that this node is alive now. */
  async beat(): Promise<void> {
    try {
      await this.#store.putSetting(keyOf(this.#self()), JSON.stringify({ node: this.#self(), at: await this.#now() }));
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'node presence not recorded');
    }
  }

  /** The addresses of the nodes not heard from within the timeout (never this one). */
  async gone(): Promise<Set<string>> {
    return new Set((await this.#silent(this.#timeoutMs)).map((r) => r.node));
  }

  /**
   * Forgets the nodes not heard from for longer than `afterMs` (never this
   * one): removes each one's record, unless it wrote a newer one meanwhile,
   * and returns their addresses, so that what else is recorded per node
   * goes too. A node that comes back records itself again.
   */
  async forget(afterMs: number): Promise<string[]> {
    const forgotten: string[] = [];
    for (const { key, text, node } of await this.#silent(afterMs)) if (await this.#store.deleteSetting(key, text)) forgotten.push(node);
    return forgotten;
  }

  /** The other nodes' records older than `ms`. */
  async #silent(ms: number): Promise<{ key: string; text: string; node: string }[]> {
    const now = await this.#now();
    return (await this.#store.settingsWithPrefix(PREFIX)).flatMap(([key, text]) => {
      try {
        const v = JSON.parse(text) as { node?: unknown; at?: unknown };
        return typeof v.node === 'string' && typeof v.at === 'number' && now - v.at > ms && v.node !== this.#self() ? [{ key, text, node: v.node }] : [];
      } catch {
        return []; // not a presence record: ignored
      }
    });
  }
}
