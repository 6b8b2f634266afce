import { equalBytes } from '../bytes.js';

/**
 * Values derived from a static key (an imported handle, an expanded key),
 * kept per key buffer: a WeakMap entry lasts only as long as the caller
 * keeps that buffer, and each hit is checked against a private copy of the
 * bytes (constant time). A buffer changed in place (wiped, or another key)
 * loses its entry, `drop` wiping the old value's secrets, and is derived
 * afresh; if that throws, nothing stays cached for it.
 */
export class KeyCache<V> {
  readonly #entries = new WeakMap<Uint8Array, { copy: Uint8Array; value: V }>();
  readonly #derive: (key: Uint8Array) => V;
  readonly #drop: ((value: V) => void) | undefined;

  constructor(derive: (key: Uint8Array) => V, drop?: (value: V) => void) {
    this.#derive = derive;
    this.#drop = drop;
  }

  get(key: Uint8Array): V {
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      if (equalBytes(hit.copy, key)) return hit.value;
      this.#entries.delete(key);
      hit.copy.fill(0);
      this.#drop?.(hit.value);
    }
    const value = this.#derive(key);
    this.#entries.set(key, { copy: new Uint8Array(key), value });
    return value;
  }
}
