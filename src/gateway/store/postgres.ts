import pg from 'pg';
import { EvsealError } from '../../core/errors.js';
import { MIGRATIONS } from './migrations.js';
import type { AuditEntry, EnqueueResult, GatewayStore, NewMessage, Notice, QueuedMessage, StationRecord, TreeHead } from './store.js';
import { toAuditEntry, toMsg, toNotice, toStation, type AuditRow, type MailRow, type NoticeRow, type StationRow } from './mail-row.js';

/** The database server's clock in ms: one clock for every node. */
const NOW_MS = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

/** Advisory lock keys (any constants unique to evseal): migrations, tree-head inserts. */
const LOCK_MIGRATE = 0x65767365;
const LOCK_HEADS = 0x65767366;
/** How long a signed tree head may wait to be coalesced with the next (ms). */
const HEAD_FLUSH_MS = 50;

const INT8_OID = 20;
/** BIGINT columns hold Unix ms, seqs and counts: all safe integers. NUMERIC (CRL numbers) stays a string. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/** What the bus needs to hear after a commit: the fresh messages (cluster mode, see cluster/bus.ts). */
export type QueuedListener = (msgs: { seq: number; recipient: string }[]) => void;

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db, optionally ?schema=NAME to keep the tables in their own schema */
  url: string;
  /** connections held by this process */
  poolSize?: number;
  /** also record every fresh message in the outbox, for the bus to publish (cluster mode) */
  outbox?: boolean;
}

/** Splits our own `schema` parameter off a connection string. */
export function parseStoreUrl(url: string): { connectionString: string; schema: string | undefined } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new EvsealError('ERR_USAGE', 'the store must be a postgres:// URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new EvsealError('ERR_USAGE', 'the store must be a postgres:// URL');
  const schema = u.searchParams.get('schema') ?? undefined;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new EvsealError('ERR_USAGE', 'schema must be 1 to 63 of a-z 0-9 _');
  u.searchParams.delete('schema');
  return { connectionString: u.toString(), schema };
}

/** For error messages: the URL without a password. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

/**
 * The cluster's store: every gateway node shares one PostgreSQL database.
 * Appends to the audit log lock the single audit_counter row for the rest of
 * their transaction, so audit indexes and mailbox seqs are handed out in
 * commit order across nodes: the log stays one gap-free Merkle log, and a
 * reader that sees seq n has seen every seq below it.
 */
export class PostgresStore implements GatewayStore {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #outbox: boolean;
  #onQueued: QueuedListener | undefined;

  private constructor(pool: pg.Pool, outbox: boolean) {
    this.#pool = pool;
    this.#outbox = outbox;
  }

  /** Connects, creates the schema if asked for one, and applies pending migrations. */
  static async open(o: PostgresStoreOptions): Promise<PostgresStore> {
    const { connectionString, schema } = parseStoreUrl(o.url);
    const pool = new pg.Pool({
      connectionString,
      max: o.poolSize ?? 4,
      types,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
      connectionTimeoutMillis: 10_000,
    });
    // An idle client losing its server is reported here; the pool replaces it.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, o.outbox ?? false);
    try {
      await store.#migrate(schema);
    } catch (e) {
      await pool.end();
      if (e instanceof EvsealError) throw e;
      throw new EvsealError('ERR_STATE', `PostgreSQL store ${redactUrl(o.url)}: ${(e as Error).message}`);
    }
    return store;
  }

  /** Version of the newest migration applied. */
  async schemaVersion(): Promise<number> {
    const r = await this.#pool.query<{ v: number | null }>('SELECT max(version)::int AS v FROM evseal_migrations');
    return r.rows[0]?.v ?? 0;
  }

  async #migrate(schema: string | undefined): Promise<void> {
    const c = await this.#pool.connect();
    try {
      await c.query('SELECT pg_advisory_lock($1)', [LOCK_MIGRATE]);
      if (schema) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await c.query('CREATE TABLE IF NOT EXISTS evseal_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)');
      const done = new Set((await c.query<{ version: number }>('SELECT version FROM evseal_migrations')).rows.map((r) => r.version));
      const newest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
      const ahead = [...done].filter((v) => v > newest);
      if (ahead.length > 0) throw new EvsealError('ERR_STATE', `the database has schema version ${Math.max(...ahead)}, newer than this gateway's ${newest}`);
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await c.query('BEGIN');
        try {
          await c.query(m.sql);
          await c.query('INSERT INTO evseal_migrations (version, name, applied) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK');
          throw e;
        }
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [LOCK_MIGRATE]).catch(() => undefined);
      c.release();
    }
  }

  /** Called after each commit that queued fresh messages (the bus publishes them). */
  set onQueued(fn: QueuedListener | undefined) {
    this.#onQueued = fn;
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  /**
   * One round trip for a whole transaction (simple query protocol, so no
   * parameters: callers inline only values they have checked). A failure
   * leaves the session inside the aborted transaction; it is rolled back
   * before the connection goes back to the pool.
   */
  async #script(sql: string): Promise<void> {
    const c = await this.#pool.connect();
    try {
      await c.query(sql);
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  /** Locks the audit counter for the rest of the transaction; returns the next index. */
  async #lockAudit(c: pg.PoolClient): Promise<number> {
    return (await c.query<{ next: number }>('SELECT next FROM audit_counter WHERE id = 1 FOR UPDATE')).rows[0]!.next;
  }

  /** Appends entries at indexes next.. (the counter must be locked); returns the new next. */
  async #insertAudit(c: pg.PoolClient, next: number, entries: AuditEntry[]): Promise<number> {
    if (entries.length === 0) return next;
    const end = next + entries.length;
    await c.query(
      `WITH a AS (INSERT INTO audit (idx, time, sender, recipient, kind, size, msg_id, outcome)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[]))
       UPDATE audit_counter SET next = $9 WHERE id = 1`,
      [entries.map((_, i) => next + i), ...columns(entries, AUDIT_COLS), end],
    );
    return end;
  }

  async putStation(s: StationRecord): Promise<void> {
    await this.#pool.query(
      'INSERT INTO stations (id, password_hash, cert_fp, created) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, cert_fp = excluded.cert_fp',
      [s.id, s.passwordHash ?? null, s.certFingerprint ?? null, s.created],
    );
  }
  async getStation(id: string): Promise<StationRecord | undefined> {
    const r = (await this.#pool.query('SELECT * FROM stations WHERE id = $1', [id])).rows[0] as StationRow | undefined;
    return r && toStation(r);
  }
  async listStations(): Promise<StationRecord[]> {
    return ((await this.#pool.query('SELECT * FROM stations ORDER BY id COLLATE "C"')).rows as StationRow[]).map(toStation);
  }
  async putStationState(id: string, state: Record<string, unknown>): Promise<void> {
    await this.#pool.query('INSERT INTO station_state (id, state) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET state = excluded.state', [id, JSON.stringify(state)]);
  }
  async getStationState(id: string): Promise<Record<string, unknown> | undefined> {
    const r = (await this.#pool.query<{ state: string }>('SELECT state FROM station_state WHERE id = $1', [id])).rows[0];
    return r && (JSON.parse(r.state) as Record<string, unknown>);
  }
  async stationStates(ids: readonly string[]): Promise<Map<string, Record<string, unknown> | undefined>> {
    const r = await this.#pool.query<{ id: string; state: string | null }>(
      'SELECT s.id, st.state FROM stations s LEFT JOIN station_state st ON st.id = s.id WHERE s.id = ANY($1::text[])',
      [[...new Set(ids)]],
    );
    return new Map(r.rows.map((x) => [x.id, x.state === null ? undefined : (JSON.parse(x.state) as Record<string, unknown>)]));
  }

  async enqueue(batch: { msg: NewMessage; audit: AuditEntry }[]): Promise<{ results: EnqueueResult[]; auditIndexes: (number | undefined)[] }> {
    const key = (sender: string, id: string): string => `${sender}\n${id}`;
    const fresh: { seq: number; recipient: string }[] = [];
    const out = await this.#tx(async (c) => {
      const next = await this.#lockAudit(c);
      // Looked up after the lock: a concurrent acceptance of the same message on another node has committed by now.
      const prior = new Map<string, number>();
      const found = await c.query<{ sender: string; msg_id: string; seq: number }>(
        'SELECT a.sender, a.msg_id, a.seq FROM accepted a JOIN unnest($1::text[], $2::text[]) AS k(s, m) ON a.sender = k.s AND a.msg_id = k.m',
        [batch.map((b) => b.msg.sender), batch.map((b) => b.msg.msgId)],
      );
      for (const r of found.rows) prior.set(key(r.sender, r.msg_id), r.seq);
      // The first of a (sender, msgId) in the batch is fresh unless already accepted; a repeat names the first.
      const firsts = new Set<string>();
      const toInsert = batch.filter(({ msg: m }) => {
        const k = key(m.sender, m.msgId);
        if (prior.has(k) || firsts.has(k)) return false;
        firsts.add(k);
        return true;
      });
      const seqOf = new Map<string, number>();
      if (toInsert.length > 0) {
        // One statement: the mailbox rows (seqs drawn in batch order), their dedup rows, in cluster mode their
        // outbox rows, their audit entries at next.., and the counter moved past them.
        const rows = await c.query<{ seq: number; sender: string; msg_id: string }>(
          `WITH m AS (
             INSERT INTO mailbox (msg_id, sender, recipient, kind, format, body, expires, created)
             SELECT msg_id, sender, recipient, kind, format, body, expires, created
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) WITH ORDINALITY
               AS t(msg_id, sender, recipient, kind, format, body, expires, created, ord)
             ORDER BY ord
             RETURNING seq, sender, msg_id, recipient, expires),
           a AS (INSERT INTO accepted (sender, msg_id, seq, expires) SELECT sender, msg_id, seq, expires FROM m),
           o AS (INSERT INTO outbox (seq, recipient, created) SELECT seq, recipient, $10 FROM m WHERE $9),
           e AS (INSERT INTO audit (idx, time, sender, recipient, kind, size, msg_id, outcome)
             SELECT $11::bigint + ord - 1, time, sender, recipient, kind, size, msg_id, outcome
             FROM unnest($12::bigint[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[], $18::text[]) WITH ORDINALITY
               AS x(time, sender, recipient, kind, size, msg_id, outcome, ord)),
           n AS (UPDATE audit_counter SET next = $11::bigint + $19::bigint WHERE id = 1)
           SELECT seq, sender, msg_id FROM m`,
          [
            ...columns(toInsert.map((b) => b.msg), MSG_COLS),
            this.#outbox,
            Date.now(),
            next,
            ...columns(toInsert.map((b) => b.audit), AUDIT_COLS),
            toInsert.length,
          ],
        );
        for (const r of rows.rows) seqOf.set(key(r.sender, r.msg_id), r.seq);
      }
      const results: EnqueueResult[] = [];
      const auditIndexes: (number | undefined)[] = [];
      const done = new Set<string>();
      for (const { msg: m } of batch) {
        const k = key(m.sender, m.msgId);
        const earlier = prior.get(k);
        if (earlier !== undefined || done.has(k)) {
          results.push({ seq: earlier ?? (seqOf.get(k) as number), duplicate: true });
          auditIndexes.push(undefined);
          continue;
        }
        const seq = seqOf.get(k) as number;
        auditIndexes.push(next + done.size);
        done.add(k);
        fresh.push({ seq, recipient: m.recipient });
        results.push({ seq, duplicate: false });
      }
      return { results, auditIndexes };
    });
    if (fresh.length > 0) this.#onQueued?.(fresh);
    return out;
  }

  async pending(recipient: string, afterSeq: number, limit: number, now: number): Promise<QueuedMessage[]> {
    const r = await this.#pool.query('SELECT * FROM mailbox WHERE recipient = $1 AND seq > $2 AND expires > $3 ORDER BY seq LIMIT $4', [recipient, afterSeq, now, limit]);
    return (r.rows as MailRow[]).map(toMsg);
  }
  async depth(recipient: string): Promise<number> {
    return (await this.#pool.query<{ n: number }>('SELECT count(*)::int AS n FROM mailbox WHERE recipient = $1', [recipient])).rows[0]!.n;
  }
  async acceptedSeq(sender: string, msgId: string): Promise<number | undefined> {
    return (await this.#pool.query<{ seq: number }>('SELECT seq FROM accepted WHERE sender = $1 AND msg_id = $2', [sender, msgId])).rows[0]?.seq;
  }
  async message(seq: number): Promise<QueuedMessage | undefined> {
    const r = (await this.#pool.query('SELECT * FROM mailbox WHERE seq = $1', [seq])).rows[0] as MailRow | undefined;
    return r && toMsg(r);
  }
  async ack(recipient: string, seqs: number[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }> {
    return (await this.ackBatch([{ recipient, seqs }], audit))[0]!;
  }
  async ackBatch(items: { recipient: string; seqs: number[] }[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }[]> {
    if (items.every((i) => i.seqs.length === 0)) return items.map(() => ({ removed: [], auditIndexes: [] }));
    return this.#tx(async (c) => {
      // Deleted before the counter is locked (row locks settle a concurrent ack of the same seq), so the lock is held only for the append.
      const keys = items.flatMap((i) => i.seqs.map((q) => [i.recipient, q] as const));
      const rows = (
        await c.query('DELETE FROM mailbox m USING unnest($1::text[], $2::bigint[]) AS k(r, s) WHERE m.recipient = k.r AND m.seq = k.s RETURNING m.*', [keys.map((k) => k[0]), keys.map((k) => k[1])])
      ).rows as MailRow[];
      if (rows.length === 0) return items.map(() => ({ removed: [], auditIndexes: [] }));
      const next = await this.#lockAudit(c);
      const bySeq = new Map(rows.map((r) => [r.seq, toMsg(r)]));
      const out: { removed: QueuedMessage[]; auditIndexes: number[] }[] = [];
      const entries: AuditEntry[] = [];
      for (const { recipient, seqs } of items) {
        // audited in the order the seqs were given, as the embedded store does
        const removed: QueuedMessage[] = [];
        for (const q of seqs) {
          const m = bySeq.get(q);
          if (m && m.recipient === recipient) {
            removed.push(m);
            bySeq.delete(q);
          }
        }
        out.push({ removed, auditIndexes: removed.map((_, i) => next + entries.length + i) });
        entries.push(...removed.map(audit));
      }
      await this.#insertAudit(c, next, entries);
      return out;
    });
  }
  async addAttempt(recipient: string, seq: number): Promise<number> {
    return (await this.#pool.query<{ attempts: number }>('UPDATE mailbox SET attempts = attempts + 1 WHERE seq = $1 AND recipient = $2 RETURNING attempts', [seq, recipient])).rows[0]?.attempts ?? 0;
  }
  async deadLetter(recipient: string, seq: number, reason: string, audit: (m: QueuedMessage) => AuditEntry, now: number): Promise<QueuedMessage | undefined> {
    return this.#tx(async (c) => {
      const next = await this.#lockAudit(c);
      const r = (await c.query('DELETE FROM mailbox WHERE seq = $1 AND recipient = $2 RETURNING *', [seq, recipient])).rows[0] as MailRow | undefined;
      if (!r) return undefined;
      await c.query(
        'INSERT INTO dead_letters (seq, msg_id, sender, recipient, kind, format, body, expires, created, attempts, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason',
        [r.seq, r.msg_id, r.sender, r.recipient, r.kind, r.format, r.body, r.expires, r.created, r.attempts, reason],
      );
      await c.query('INSERT INTO notices (recipient, type, msg_id, peer, reason, created) VALUES ($1, $2, $3, $4, $5, $6)', [r.sender, 'dead-letter', r.msg_id, r.recipient, reason, now]);
      const m = toMsg(r);
      await this.#insertAudit(c, next, [audit(m)]);
      return m;
    });
  }
  async expire(now: number, audit: (m: QueuedMessage) => AuditEntry): Promise<QueuedMessage[]> {
    // Every node sweeps; the counter lock makes each expired message removed, noticed and audited once.
    const due = await this.#pool.query<{ n: number }>('SELECT (SELECT count(*) FROM mailbox WHERE expires <= $1)::int + (SELECT count(*) FROM accepted WHERE expires <= $1)::int AS n', [now]);
    if (due.rows[0]!.n === 0) return [];
    return this.#tx(async (c) => {
      const next = await this.#lockAudit(c);
      const gone = ((await c.query('DELETE FROM mailbox WHERE expires <= $1 RETURNING *', [now])).rows as MailRow[]).map(toMsg).sort((a, b) => a.seq - b.seq);
      for (const m of gone) {
        await c.query('INSERT INTO notices (recipient, type, msg_id, peer, reason, created) VALUES ($1, $2, $3, $4, $5, $6)', [m.sender, 'expired', m.msgId, m.recipient, 'expired before delivery', now]);
      }
      await this.#insertAudit(c, next, gone.map(audit));
      await c.query('DELETE FROM accepted WHERE expires <= $1', [now]);
      return gone;
    });
  }
  async forgetNotices(before: number): Promise<number> {
    return (await this.#pool.query('DELETE FROM notices WHERE created < $1', [before])).rowCount ?? 0;
  }
  async deadLetters(recipient?: string): Promise<(QueuedMessage & { reason: string })[]> {
    const r =
      recipient === undefined
        ? await this.#pool.query('SELECT * FROM dead_letters ORDER BY seq')
        : await this.#pool.query('SELECT * FROM dead_letters WHERE recipient = $1 ORDER BY seq', [recipient]);
    return (r.rows as (MailRow & { reason: string })[]).map((x) => ({ ...toMsg(x), reason: x.reason }));
  }
  async notices(recipient: string, afterSeq: number): Promise<Notice[]> {
    const r = await this.#pool.query('SELECT * FROM notices WHERE recipient = $1 AND seq > $2 ORDER BY seq', [recipient, afterSeq]);
    return (r.rows as NoticeRow[]).map(toNotice);
  }
  async ackNotices(recipient: string, upToSeq: number): Promise<void> {
    await this.#pool.query('DELETE FROM notices WHERE recipient = $1 AND seq <= $2', [recipient, upToSeq]);
  }

  async putBundle(id: string, role: string, bundle: string, now: number): Promise<void> {
    await this.#pool.query(
      'INSERT INTO bundles (id, role, bundle, updated) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET role = excluded.role, bundle = excluded.bundle, updated = excluded.updated',
      [id, role, bundle, now],
    );
  }
  async getBundle(id: string): Promise<string | undefined> {
    return (await this.#pool.query<{ bundle: string }>('SELECT bundle FROM bundles WHERE id = $1', [id])).rows[0]?.bundle;
  }
  async bundleRole(id: string): Promise<string | undefined> {
    return (await this.#pool.query<{ role: string }>('SELECT role FROM bundles WHERE id = $1', [id])).rows[0]?.role;
  }
  async addOneTimePrekeys(owner: string, prekeys: { kid: string; json: string }[]): Promise<number> {
    return this.#tx(async (c) => {
      for (const p of prekeys) {
        await c.query(
          'INSERT INTO otks (owner, kid, json) SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM otks_claimed WHERE owner = $1 AND kid = $2) ON CONFLICT (owner, kid) DO NOTHING',
          [owner, p.kid, p.json],
        );
      }
      return (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM otks WHERE owner = $1', [owner])).rows[0]!.n;
    });
  }
  async claimOneTimePrekey(owner: string): Promise<string | undefined> {
    // SKIP LOCKED: two nodes claiming at once take two different keys, never the same one.
    return this.#tx(async (c) => {
      const r = (
        await c.query<{ kid: string; json: string }>('DELETE FROM otks WHERE n = (SELECT n FROM otks WHERE owner = $1 ORDER BY n LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING kid, json', [owner])
      ).rows[0];
      if (r) await c.query('INSERT INTO otks_claimed (owner, kid) VALUES ($1, $2) ON CONFLICT DO NOTHING', [owner, r.kid]);
      return r?.json;
    });
  }
  async countOneTimePrekeys(owner: string): Promise<number> {
    return (await this.#pool.query<{ n: number }>('SELECT count(*)::int AS n FROM otks WHERE owner = $1', [owner])).rows[0]!.n;
  }
  async putCrl(anchor: string, crlNumber: bigint, pem: string): Promise<boolean> {
    const r = await this.#pool.query(
      'INSERT INTO crls (anchor, crl_number, pem) VALUES ($1, $2::numeric, $3) ON CONFLICT (anchor) DO UPDATE SET crl_number = excluded.crl_number, pem = excluded.pem WHERE crls.crl_number < excluded.crl_number RETURNING 1',
      [anchor, crlNumber.toString(), pem],
    );
    return (r.rowCount ?? 0) > 0;
  }
  async listCrls(): Promise<{ anchor: string; crlNumber: bigint; pem: string }[]> {
    const r = await this.#pool.query<{ anchor: string; crl_number: string; pem: string }>('SELECT anchor, crl_number::text AS crl_number, pem FROM crls ORDER BY anchor COLLATE "C"');
    return r.rows.map((x) => ({ anchor: x.anchor, crlNumber: BigInt(x.crl_number), pem: x.pem }));
  }

  async appendAudit(entries: AuditEntry[]): Promise<number[]> {
    if (entries.length === 0) return [];
    return this.#tx(async (c) => {
      const next = await this.#lockAudit(c);
      await this.#insertAudit(c, next, entries);
      return entries.map((_, i) => next + i);
    });
  }
  async auditSize(): Promise<number> {
    return (await this.#pool.query<{ next: number }>('SELECT next FROM audit_counter WHERE id = 1')).rows[0]!.next;
  }
  async auditEntries(from: number, to: number): Promise<AuditEntry[]> {
    const r = await this.#pool.query('SELECT * FROM audit WHERE idx >= $1 AND idx < $2 ORDER BY idx', [from, to]);
    return (r.rows as AuditRow[]).map(toAuditEntry);
  }
  /**
   * Several nodes sign heads over the one log. A head is kept only if it
   * fits between the stored ones (larger size, no earlier time), so the
   * stored sequence stays what `audit verify` requires; a head that lost
   * that race is still a valid signature over a root of the log (a receipt
   * carrying it checks out), it is just not stored. Same-size heads: the
   * first stays.
   *
   * Written without waiting for its WAL flush (synchronous_commit off), as
   * the embedded store defers heads to its next transaction: a head lost to
   * a crash loses no evidence, since the entries it signs are durable and a
   * node signs a head over them when it starts. Heads signed within
   * HEAD_FLUSH_MS of each other are coalesced (the newest is written), as in
   * the embedded store.
   */
  async putTreeHead(h: TreeHead): Promise<void> {
    const b64 = /^[A-Za-z0-9_-]+$/;
    if (!Number.isSafeInteger(h.size) || !Number.isSafeInteger(h.time) || !b64.test(h.root) || !b64.test(h.sig)) {
      throw new EvsealError('ERR_INVALID_INPUT', 'tree head: size and time must be integers, root and sig base64url');
    }
    this.#pendingHead = h;
    this.#headTimer ??= setTimeout(() => void this.#flushHead().catch(() => undefined), HEAD_FLUSH_MS).unref();
  }

  #pendingHead: TreeHead | undefined;
  #headTimer: NodeJS.Timeout | undefined;

  /** Writes the pending head in one round trip: its values are checked integers and base64url, so they go inline. */
  async #flushHead(): Promise<void> {
    if (this.#headTimer) clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
    const h = this.#pendingHead;
    if (!h) return;
    this.#pendingHead = undefined;
    const [n, r, t, g] = [h.size, `'${h.root}'`, h.time, `'${h.sig}'`];
    await this.#script(
      `BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock(${LOCK_HEADS});
       INSERT INTO tree_heads (size, root, time, sig) SELECT ${n}, ${r}, ${t}, ${g}
         WHERE NOT EXISTS (SELECT 1 FROM tree_heads WHERE (size < ${n} AND time > ${t}) OR (size > ${n} AND time < ${t}))
         ON CONFLICT (size) DO NOTHING;
       COMMIT;`,
    );
  }
  async latestTreeHead(): Promise<TreeHead | undefined> {
    await this.#flushHead();
    return (await this.#pool.query('SELECT size, root, time, sig FROM tree_heads ORDER BY size DESC LIMIT 1')).rows[0] as TreeHead | undefined;
  }
  async treeHeads(): Promise<TreeHead[]> {
    await this.#flushHead();
    return (await this.#pool.query('SELECT size, root, time, sig FROM tree_heads ORDER BY size')).rows as TreeHead[];
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (await this.#pool.query<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key])).rows[0]?.value;
  }
  /** The database server's clock (µs since the epoch): one clock for every node, so it orders events across them. */
  async clockMicros(): Promise<bigint> {
    const r = await this.#pool.query<{ t: string }>("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text AS t");
    return BigInt(r.rows[0]!.t);
  }
  async quotaTokens(key: string, burst: number, perMinute: number): Promise<number> {
    const r = await this.#pool.query<{ t: number }>(`SELECT LEAST($2::float8, tokens + (${NOW_MS} - at) * $3::float8 / 60000) AS t FROM quotas WHERE key = $1`, [key, burst, perMinute]);
    return r.rows[0]?.t ?? burst;
  }
  async quotaSpend(key: string, burst: number, perMinute: number): Promise<void> {
    // one statement: spends from the same node or several at once are each counted
    const tokens = `GREATEST(-$2::float8, LEAST($2::float8, q.tokens + (EXCLUDED.at - q.at) * $3::float8 / 60000) - 1)`;
    await this.#pool.query(
      `INSERT INTO quotas AS q (key, tokens, at, full_at)
         SELECT $1, $2::float8 - 1, ms, ms + ceil(60000 / $3::float8)::bigint FROM (SELECT ${NOW_MS} AS ms) now
       ON CONFLICT (key) DO UPDATE SET tokens = ${tokens}, at = EXCLUDED.at,
         full_at = EXCLUDED.at + ceil(($2::float8 - ${tokens}) * 60000 / $3::float8)::bigint`,
      [key, burst, perMinute],
    );
  }
  async quotaSweep(): Promise<number> {
    return (await this.#pool.query(`DELETE FROM quotas WHERE full_at < ${NOW_MS}`)).rowCount ?? 0;
  }
  /** Sets those of `entries` not set yet, all in one statement: a concurrent reader sees all of them or none. */
  async putSettingsIfAbsent(entries: [string, string][]): Promise<void> {
    await this.#pool.query('INSERT INTO settings (key, value) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (key) DO NOTHING', [entries.map((e) => e[0]), entries.map((e) => e[1])]);
  }
  async putSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.#pool.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [key, value]);
    return (await this.getSetting(key))!;
  }
  async replaceSetting(key: string, expected: string | undefined, value: string): Promise<boolean> {
    const r =
      expected === undefined
        ? await this.#pool.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [key, value])
        : await this.#pool.query('UPDATE settings SET value = $1 WHERE key = $2 AND value = $3', [value, key, expected]);
    return r.rowCount === 1;
  }
  async deleteSetting(key: string, expected?: string): Promise<boolean> {
    const r =
      expected === undefined
        ? await this.#pool.query('DELETE FROM settings WHERE key = $1', [key])
        : await this.#pool.query('DELETE FROM settings WHERE key = $1 AND value = $2', [key, expected]);
    return r.rowCount === 1;
  }
  async settingVersions(prefix: string): Promise<[string, string][]> {
    // xmin: the transaction that wrote the row's current version, new with every write
    const r = await this.#pool.query<{ key: string; v: string }>('SELECT key, xmin::text AS v FROM settings WHERE starts_with(key, $1) ORDER BY key', [prefix]);
    return r.rows.map((x) => [x.key, x.v]);
  }
  async getSettings(keys: readonly string[]): Promise<[string, string][]> {
    const r = await this.#pool.query<{ key: string; value: string }>('SELECT key, value FROM settings WHERE key = ANY($1::text[]) ORDER BY key', [[...keys]]);
    return r.rows.map((x) => [x.key, x.value]);
  }
  async settingsWithPrefix(prefix: string): Promise<[string, string][]> {
    const r = await this.#pool.query<{ key: string; value: string }>('SELECT key, value FROM settings WHERE starts_with(key, $1) ORDER BY key', [prefix]);
    return r.rows.map((x) => [x.key, x.value]);
  }
  async putSetting(key: string, value: string): Promise<void> {
    await this.#pool.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  // The outbox (cluster mode): claimed with SKIP LOCKED so that nodes share the work and a dead node's rows are taken over.

  /**
   * Runs `publish` over outbox rows created before `olderThan` (at most
   * `limit`), locked for this transaction, and removes those it returns.
   * A crash before the commit leaves them for the next sweep: published at
   * least once, deduplicated downstream by seq.
   */
  async drainOutbox(olderThan: number, limit: number, publish: (rows: { seq: number; recipient: string }[]) => Promise<number[]>): Promise<number> {
    return this.#tx(async (c) => {
      const rows = (
        await c.query<{ seq: number; recipient: string }>('SELECT seq, recipient FROM outbox WHERE created < $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED', [olderThan, limit])
      ).rows;
      if (rows.length === 0) return 0;
      await c.query('SET LOCAL synchronous_commit = off');
      const done = await publish(rows);
      if (done.length > 0) await c.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [done]);
      return done.length;
    });
  }
  /**
   * Removes outbox rows the bus has published, without waiting for the WAL
   * flush: a removal lost to a crash only publishes those records again.
   */
  async deleteOutbox(seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    if (!seqs.every((q) => Number.isSafeInteger(q))) throw new EvsealError('ERR_INVALID_INPUT', 'outbox: seqs must be integers');
    await this.#script(`BEGIN; SET LOCAL synchronous_commit = off; DELETE FROM outbox WHERE seq IN (${seqs.join(',')}); COMMIT;`);
  }
  async outboxSize(): Promise<number> {
    return (await this.#pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox')).rows[0]!.n;
  }

  #closed = false;
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#flushHead().catch(() => undefined);
    await this.#pool.end();
  }
}

/** Field order of the unnest() arrays for mailbox and audit rows. */
const MSG_COLS: readonly (keyof NewMessage)[] = ['msgId', 'sender', 'recipient', 'kind', 'format', 'body', 'expires', 'created'];
const AUDIT_COLS: readonly (keyof AuditEntry)[] = ['time', 'sender', 'recipient', 'kind', 'size', 'msgId', 'outcome'];

/** One array per field, for unnest(): column k holds rows[i][keys[k]]. */
const columns = <T>(rows: readonly T[], keys: readonly (keyof T)[]): unknown[][] => keys.map((k) => rows.map((r) => r[k]));
