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

export class TokenBuckets {
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
    const b = this.#current(key);
    return b.tokens >= 1 - EPSILON ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / this.#perMs / 1000));
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
