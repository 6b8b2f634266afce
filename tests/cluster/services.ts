// The real PostgreSQL and NATS (JetStream) on their loopback ports, for the
// store contract tests and the cluster tests. In CI (CI=true) a missing
// service fails the run; elsewhere the tests skip with the reason printed.
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import pg from 'pg';

export const PG_URL = process.env.EVSEAL_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.EVSEAL_TEST_NATS ?? 'nats://127.0.0.1:4222';
const inCi = process.env.CI === 'true';

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: 2000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

async function pgUp(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (e) {
    return `PostgreSQL at ${PG_URL} is not usable: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function natsUp(): Promise<string | undefined> {
  const u = new URL(NATS_URL);
  return (await reachable(u.hostname, Number(u.port || 4222))) ? undefined : `NATS at ${NATS_URL} is not reachable`;
}

/**
 * Why the tests needing these services cannot run (undefined when they can).
 * Throws in CI, so a missing service is a failure there, never a skip.
 */
export async function servicesMissing(need: { pg?: boolean; nats?: boolean }): Promise<string | undefined> {
  const reasons = [need.pg ? await pgUp() : undefined, need.nats ? await natsUp() : undefined].filter((r): r is string => r !== undefined);
  if (reasons.length === 0) return undefined;
  const reason = reasons.join('; ');
  if (inCi) throw new Error(`CI=true and a service the cluster tests need is missing: ${reason}`);
  process.stdout.write(`# skipping: ${reason}\n`);
  return reason;
}

/** A schema of its own for one test (the store creates it); drop() removes it and everything in it. */
export function freshSchema(tag: string): { url: string; schema: string; drop(): Promise<void> } {
  const schema = `evseal_t_${tag}_${randomBytes(5).toString('hex')}`;
  const sep = PG_URL.includes('?') ? '&' : '?';
  return {
    schema,
    url: `${PG_URL}${sep}schema=${schema}`,
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A stream name and subject prefix of its own for one test. */
export function freshBusNames(tag: string): { stream: string; prefix: string } {
  const r = randomBytes(4).toString('hex');
  return { stream: `EVSEAL_T_${tag.toUpperCase()}_${r}`, prefix: `evseal_t.${tag}.${r}` };
}
