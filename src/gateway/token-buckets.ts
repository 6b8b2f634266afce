import type { Logger } from 'pino';
import type { GatewayStore } from './store/store.js';

/**
 * Token buckets by key, for per-source and per-pair quotas: each key holds at
 * most `burst` tokens and is refilled at `perMinute`. A key is stored only
 * once it spends and forgotten when next seen refilled, and at most `maxKeys`
 * are stored (the one stored longest is forgotten first, i.e. reset to a full
 * budget), so memory stays bounded whoever picks the keys.
 */
export interface TokenBucketOptions {
  burst: number;
  perMinute: number;
  maxKeys?: number;
  /** milliseconds clock (tests) */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

// Refill is accumulated in floating point; a shortfall this small is rounding, not a missing token.
const EPSILON = 1e-9;

/** 0 with a token, otherwise the whole seconds until the refill makes one. */
const waitFor = (tokens: number, perMs: number): number => (tokens >= 1 - EPSILON ? 0 : Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)));

/** Budgets by key, kept in this process (TokenBuckets) or for a whole cluster (StoreTokenBuckets). */
export interface Budgets {
  /** 0 if `key` has a token now, otherwise the whole seconds until it will. */
  wait(key: string): number | Promise<number>;
  /** Spends one token of `key` (into debt, down to one burst). */
  spend(key: string): void | Promise<void>;
}

type QuotaStore = Required<Pick<GatewayStore, 'quotaTokens' | 'quotaSpend'>>;

/**
 * The same budgets kept in a cluster's shared store, by its clock, so that
 * attempts spread over the nodes by a load balancer share one budget
 * instead of getting one per node. `prefix` keeps the kinds of budget apart.
 */
export class StoreTokenBuckets implements Budgets {
  readonly #store: QuotaStore;
  readonly #prefix: string;
  readonly #burst: number;
  readonly #perMinute: number;
  readonly #log: Logger;

  constructor(store: QuotaStore, o: { prefix: string; burst: number; perMinute: number; log: Logger }) {
    this.#store = store;
    this.#prefix = o.prefix;
    this.#burst = o.burst;
    this.#perMinute = o.perMinute;
    this.#log = o.log;
  }

  /** Whether `store` can keep budgets for a cluster. */
  static supported(store: GatewayStore): store is GatewayStore & QuotaStore {
    return store.quotaTokens !== undefined && store.quotaSpend !== undefined;
  }

  async wait(key: string): Promise<number> {
    return waitFor(await this.#store.quotaTokens(this.#prefix + key, this.#burst, this.#perMinute), this.#perMinute / 60_000);
  }

  /** Never rejects: a spend the store refused is logged (the budget then misses one attempt). */
  async spend(key: string): Promise<void> {
    try {
      await this.#store.quotaSpend(this.#prefix + key, this.#burst, this.#perMinute);
    } catch (e) {
      this.#log.warn({ quota: this.#prefix.trim(), err: (e as Error).message }, 'cluster-wide quota not spent');
    }
  }
}

export class TokenBuckets implements Budgets {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(o: TokenBucketOptions) {
    this.#perMs = o.perMinute / 60_000;
    this.#burst = o.burst;
    this.#maxKeys = o.maxKeys ?? 100_000;
    this.#now = o.now ?? Date.now;
  }

  /** Keys currently below their full budget. */
  get size(): number {
    return this.#buckets.size;
  }

  /** 0 if `key` has a token now, otherwise the whole seconds until it will. */
  wait(key: string): number {
    return waitFor(this.#current(key).tokens, this.#perMs);
  }

  /**
   * Spends one token of `key`. Spending more than there are (several
   * attempts admitted at once, all failing) runs into debt, down to one
   * burst's worth, which is paid off by the refill before the next token.
   */
  spend(key: string): void {
    const b = this.#current(key);
    b.tokens = Math.max(-this.#burst, b.tokens - 1);
    if (!this.#buckets.has(key)) {
      if (this.#buckets.size >= this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value as string);
      this.#buckets.set(key, b);
    }
  }

  /** The key's bucket refilled up to now (a fresh full one if not stored). */
  #current(key: string): Bucket {
    const now = this.#now();
    const b = this.#buckets.get(key);
    if (b === undefined) return { tokens: this.#burst, at: now };
    b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#perMs);
    b.at = now;
    if (b.tokens >= this.#burst) this.#buckets.delete(key); // refilled: nothing to remember
    return b;
  }
}
