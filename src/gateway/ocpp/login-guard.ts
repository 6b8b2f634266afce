import { sourceKey } from '../source-key.js';
import { TokenBuckets, type Budgets } from '../token-buckets.js';

export interface LoginGuardOptions {
  failuresPerMinute: number;
  failureBurst: number;
  maxPending: number;
  /** milliseconds clock (tests) */
  now?: () => number;
  /** budgets remembered at most; the oldest go first */
  maxTracked?: number;
  /** in a cluster: the same budgets kept for all nodes (sharedWait), spent along with this node's */
  shared?: Budgets;
}

const keyOf = (address: string | undefined, stationId: string): string => `${sourceKey(address)} ${stationId}`;

/** An admitted login settles with done: a failure resolves once spent from the cluster's budget too (so a refusal goes out only after the guess counts on every node). */
export type Admission = { ok: true; done(failed: boolean): Promise<void> } | { ok: false; status: 429 | 503; retryAfterSec: number };

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
 * - In a cluster (`shared`), each failure is also spent from the cluster's
 *   budget for the same key, which sharedWait checks after admit: guesses
 *   spread over the nodes share one budget.
 */
export class LoginGuard {
  readonly #failures: TokenBuckets;
  readonly #shared: Budgets | undefined;
  readonly #maxPending: number;
  #pending = 0;

  constructor(o: LoginGuardOptions) {
    this.#failures = new TokenBuckets({ burst: o.failureBurst, perMinute: o.failuresPerMinute, ...(o.maxTracked !== undefined ? { maxKeys: o.maxTracked } : {}), ...(o.now ? { now: o.now } : {}) });
    this.#maxPending = o.maxPending;
    this.#shared = o.shared;
  }

  /** In a cluster: 0 if the cluster's budget of this station id and source has a failure left, otherwise the seconds until it has (0 on one node). */
  async sharedWait(address: string | undefined, stationId: string): Promise<number> {
    return this.#shared ? this.#shared.wait(keyOf(address, stationId)) : 0;
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
    const key = keyOf(address, stationId);
    const wait = this.#failures.wait(key);
    if (wait > 0) return { ok: false, status: 429, retryAfterSec: wait };
    if (this.#pending >= this.#maxPending) return { ok: false, status: 503, retryAfterSec: 1 };
    this.#pending++;
    let settled = false;
    return {
      ok: true,
      done: async (failed) => {
        if (settled) return;
        settled = true;
        this.#pending--;
        if (!failed) return;
        this.#failures.spend(key);
        await this.#shared?.spend(key);
      },
    };
  }
}
