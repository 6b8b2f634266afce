import { sourceKey } from '../source-key.js';
import { TokenBuckets } from '../token-buckets.js';

export interface LoginGuardOptions {
  failuresPerMinute: number;
  failureBurst: number;
  maxPending: number;
  /** milliseconds clock (tests) */
  now?: () => number;
  /** budgets remembered at most; the oldest go first */
  maxTracked?: number;
}

export type Admission = { ok: true; done(failed: boolean): void } | { ok: false; status: 429 | 503; retryAfterSec: number };

/**
 * Throttles failed station logins. A password check is scrypt (16 MiB, tens
 * of milliseconds on libuv's small thread pool), so a flood of wrong
 * passwords would both guess and starve the stations that log in correctly.
 *
 * - Each station id, from one source address (IPv6: its /64), has a budget
 *   of `failureBurst` failed logins, refilled at `failuresPerMinute`. An
 *   exhausted budget is refused with 429 and Retry-After before any password
 *   is checked. So a misconfigured charger behind a NAT or a load balancer
 *   throttles itself, not the stations that share its address. Registered
 *   and unregistered ids are treated alike, so the throttle does not tell
 *   which ids exist (the password check already takes as long for both).
 *   Successful logins cost nothing; attempts already admitted when a budget
 *   runs out still count, as debt.
 * - Overall: at most `maxPending` logins are checked at once (which also
 *   bounds how many guesses are in flight); beyond that, 503 with
 *   Retry-After: 1.
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

  /** Budgets currently below full. */
  get tracked(): number {
    return this.#failures.size;
  }

  admit(address: string | undefined, stationId: string): Admission {
    const key = `${sourceKey(address)} ${stationId}`;
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
