import { sourceKey } from '../source-key.js';
import { TokenBuckets } from '../token-buckets.js';

export interface LoginGuardOptions {
  failuresPerMinute: number;
  failureBurst: number;
  maxPending: number;
  /** milliseconds clock (tests) */
  now?: () => number;
  /** sources remembered at most; the oldest go first */
  maxTracked?: number;
}

export type Admission = { ok: true; done(failed: boolean): void } | { ok: false; status: 429 | 503; retryAfterSec: number };

/**
 * Throttles failed station logins. A password check is scrypt (16 MiB, tens
 * of milliseconds on libuv's small thread pool), so a flood of wrong
 * passwords would both guess and starve the stations that log in correctly.
 *
 * - Per source: each address (IPv6: its /64) has a budget of `failureBurst`
 *   failed logins, refilled at `failuresPerMinute`. An exhausted source is
 *   refused with 429 and Retry-After, before any password is checked.
 *   Successful logins cost nothing, so a whole fleet behind one NAT can
 *   reconnect at once; attempts already admitted when the budget runs out
 *   still count, as debt.
 * - Overall: at most `maxPending` logins are checked at once (which also
 *   bounds how many guesses one source has in flight); beyond that, 503 with
 *   Retry-After: 1.
 *
 * The key is the TCP peer address: behind a proxy or a carrier NAT the
 * stations share one budget, which operators size for that (docs/operations.md).
 */
export class LoginGuard {
  readonly #failures: TokenBuckets;
  readonly #maxPending: number;
  #pending = 0;

  constructor(o: LoginGuardOptions) {
    this.#failures = new TokenBuckets({ burst: o.failureBurst, perMinute: o.failuresPerMinute, ...(o.maxTracked !== undefined ? { maxKeys: o.maxTracked } : {}), ...(o.now ? { now: o.now } : {}) });
    this.#maxPending = o.maxPending;
  }

  /** Logins being checked now. */
  get pending(): number {
    return this.#pending;
  }

  /** Sources currently holding less than a full budget. */
  get tracked(): number {
    return this.#failures.size;
  }

  admit(address: string | undefined): Admission {
    const key = sourceKey(address);
    const wait = this.#failures.wait(key);
    if (wait > 0) return { ok: false, status: 429, retryAfterSec: wait };
    if (this.#pending >= this.#maxPending) return { ok: false, status: 503, retryAfterSec: 1 };
    this.#pending++;
    let settled = false;
    return {
      ok: true,
      done: (failed) => {
        if (settled) return;
        settled = true;
        this.#pending--;
        if (failed) this.#failures.spend(key);
      },
    };
  }
}
