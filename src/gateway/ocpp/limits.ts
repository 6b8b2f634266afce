import { performance } from 'node:perf_hooks';

/**
 * Per-connection flood control. Every CALL takes a token (refilled at
 * `callsPerSecond`, burst of one second's worth); a CALL without one is
 * answered with a CALLERROR. Over-limit calls and bad frames (unparseable,
 * schema-invalid) are strikes; an accepted call clears them, and more than
 * `maxBadMessages` strikes in a row close the connection. A flood of valid
 * calls therefore ends in strikes too, so garbage interleaved with valid
 * calls cannot keep a connection busy forever.
 */
export class ConnectionGuard {
  #tokens: number;
  #last = performance.now();
  #strikes = 0;
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxStrikes: number;

  constructor(o: { callsPerSecond: number; maxBadMessages: number }) {
    this.#rate = o.callsPerSecond;
    this.#burst = Math.max(1, o.callsPerSecond);
    this.#tokens = this.#burst;
    this.#maxStrikes = o.maxBadMessages;
  }

  #take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** A CALL arrived: 'ok' to handle it, 'limited' to refuse it, 'close' to drop the connection. */
  admit(): 'ok' | 'limited' | 'close' {
    if (this.#take()) {
      this.#strikes = 0;
      return 'ok';
    }
    return this.strike() ? 'close' : 'limited';
  }

  /** Counts a bad frame; true when the connection should be closed. */
  strike(): boolean {
    this.#strikes += 1;
    return this.#strikes > this.#maxStrikes;
  }
}
