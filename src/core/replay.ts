import { EvsealError } from './errors.js';

/**
 * Message ids already accepted, each kept until its envelope's expiry plus
 * clock skew. After that the envelope is refused as expired anyway, so the
 * record can go. Ids are recorded only after an envelope fully verified and
 * decrypted, so forged traffic cannot fill the window.
 */
export class ReplayWindow {
  #seen = new Map<string, number>();
  constructor(readonly maxEntries = 1_000_000) {}

  has(key: string): boolean {
    return this.#seen.has(key);
  }

  add(key: string, keepUntil: number): void {
    if (this.#seen.size >= this.maxEntries) {
      throw new EvsealError('ERR_STATE', 'replay window full; refusing rather than forgetting ids early');
    }
    this.#seen.set(key, keepUntil);
  }

  /** Forgets one id: only for an open whose result the caller could not keep (Endpoint.open's beforeCommit). */
  delete(key: string): void {
    this.#seen.delete(key);
  }

  /** Drops ids whose keep-until time (Unix seconds) is before `nowSec`. */
  prune(nowSec: number): number {
    let n = 0;
    for (const [k, until] of this.#seen) {
      if (until < nowSec) {
        this.#seen.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.#seen.size;
  }

  toJSON(): [string, number][] {
    return [...this.#seen];
  }

  static fromJSON(v: unknown): ReplayWindow {
    const w = new ReplayWindow();
    if (!Array.isArray(v)) throw new EvsealError('ERR_STATE', 'replay window: bad state');
    for (const e of v) {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') throw new EvsealError('ERR_STATE', 'replay window: bad entry');
      w.#seen.set(e[0], e[1]);
    }
    return w;
  }
}
