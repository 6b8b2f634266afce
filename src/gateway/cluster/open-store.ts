import { EvsealError } from '../../core/errors.js';
import type { GatewayStore } from '../store/store.js';

/**
 * The store the administration and audit commands work on: the embedded
 * SQLite store of a data directory, or the cluster's PostgreSQL store
 * (exactly one). Modules load only for the one asked for.
 */
export async function openAdminStore(o: { data?: string; store?: string }): Promise<GatewayStore> {
  if ((o.data === undefined) === (o.store === undefined)) throw new EvsealError('ERR_USAGE', 'give exactly one of --data DIR or --store postgres://…');
  if (o.store !== undefined) {
    const { PostgresStore } = await import('../store/postgres.js');
    return PostgresStore.open({ url: o.store, poolSize: 1 });
  }
  const { SqliteStore } = await import('../store/sqlite.js');
  return new SqliteStore(o.data as string);
}

/** Runs `fn` on the admin store (see openAdminStore) and closes it. */
export async function withAdminStore<T>(where: { data?: string; store?: string }, fn: (s: GatewayStore) => Promise<T>): Promise<T> {
  const store = await openAdminStore(where);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
