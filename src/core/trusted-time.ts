/**
 * A clock that never runs behind trusted time.
 *
 * A charger's wall clock is set by its CSMS, which is exactly the party
 * evseal treats as the adversary. If certificate expiry and CRL freshness
 * were checked against the wall clock alone, a CSMS could set the clock
 * back and revive an expired certificate or a stale CRL.
 *
 * The clock keeps a monotonic high-water `mark` (milliseconds since the
 * epoch) raised only from signed timestamps the endpoint has verified: a
 * CRL's thisUpdate (signed by the CA), the creation time of a verified
 * envelope, and so on. `now()` is max(wall clock, mark): a wall clock set
 * back can never pull verification time behind the mark, while a wall clock
 * that runs ahead still expires things early (fail closed).
 *
 * The mark is persisted by the caller (keystore) and restored via the
 * constructor.
 */
export class TrustedClock {
  #mark: number;
  readonly #wall: () => number;

  constructor(mark = 0, wall: () => number = Date.now) {
    this.#mark = Number.isFinite(mark) && mark > 0 ? Math.floor(mark) : 0;
    this.#wall = wall;
  }

  /** Trusted verification time: max(wall clock, mark). */
  now(): Date {
    const w = this.#wall();
    return new Date(Number.isFinite(w) ? Math.max(w, this.#mark) : this.#mark);
  }

  /** Raise the mark to `t` if `t` is later; never lowers it. Non-finite times are ignored. */
  observe(t: Date | number): void {
    const ms = typeof t === 'number' ? t : t.getTime();
    if (Number.isFinite(ms) && ms > this.#mark) this.#mark = Math.floor(ms);
  }

  /** The high-water mark in milliseconds since the epoch (what the caller persists). */
  get mark(): number {
    return this.#mark;
  }
}
