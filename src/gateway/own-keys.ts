/**
 * Records keyed by ids that others choose (a station's transaction ids, the
 * station ids of a rollout) are read and written as own properties only:
 * a key such as `__proto__` or `constructor` must never resolve to a
 * prototype that the caller then writes to, nor set one.
 */
export function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

export function putOwn<T>(rec: Record<string, T>, key: string, v: T): T {
  Object.defineProperty(rec, key, { value: v, enumerable: true, writable: true, configurable: true });
  return v;
}
