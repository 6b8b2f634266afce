import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEntry, EnqueueResult, GatewayStore, NewMessage, Notice, QueuedMessage, StationRecord, TreeHead } from './store.js';
import { toAuditEntry, toMsg, toNotice, toStation, type AuditRow, type MailRow, type NoticeRow, type StationRow } from './mail-row.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS stations (id TEXT PRIMARY KEY, password_hash TEXT, cert_fp TEXT, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS station_state (id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mailbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
  kind TEXT NOT NULL, format TEXT NOT NULL, body TEXT NOT NULL, expires INTEGER NOT NULL, created INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS mailbox_recipient ON mailbox (recipient, seq);
CREATE INDEX IF NOT EXISTS mailbox_expires ON mailbox (expires);
-- every (sender, msg_id) ever accepted, so a resend after a lost acknowledgement is not delivered twice
CREATE TABLE IF NOT EXISTS accepted (sender TEXT NOT NULL, msg_id TEXT NOT NULL, seq INTEGER NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (sender, msg_id));
CREATE INDEX IF NOT EXISTS accepted_expires ON accepted (expires);
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL, kind TEXT NOT NULL,
  format TEXT NOT NULL, body TEXT NOT NULL, expires INTEGER NOT NULL, created INTEGER NOT NULL, attempts INTEGER NOT NULL,
  reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notices (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, type TEXT NOT NULL, msg_id TEXT NOT NULL,
  peer TEXT NOT NULL, reason TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, role TEXT NOT NULL, bundle TEXT NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS otks (owner TEXT NOT NULL, kid TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (owner, kid));
-- kids already handed out: a republished one-time prekey is never handed out twice
CREATE TABLE IF NOT EXISTS otks_claimed (owner TEXT NOT NULL, kid TEXT NOT NULL, PRIMARY KEY (owner, kid));
CREATE TABLE IF NOT EXISTS crls (anchor TEXT PRIMARY KEY, crl_number TEXT NOT NULL, pem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (idx INTEGER PRIMARY KEY, time INTEGER NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
  kind TEXT NOT NULL, size INTEGER NOT NULL, msg_id TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tree_heads (size INTEGER PRIMARY KEY, root TEXT NOT NULL, time INTEGER NOT NULL, sig TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const HEAD_FLUSH_MS = 50;


/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL, so
 * a committed transaction survives a kill -9 or a power cut. Writes are
 * synchronous inside the Node process; callers batch them (the router
 * commits every frame that arrived in one tick in one transaction).
 */
export class SqliteStore implements GatewayStore {
  readonly kind = 'sqlite';
  /** One gateway process owns the file (see GatewayStore.exclusive). */
  readonly exclusive = true;
  readonly path: string;
  readonly #db: Database.Database;
  readonly #q;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, 'evseal.db');
    const db = new Database(this.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    this.#db = db;
    this.#q = {
      putStation: db.prepare('INSERT INTO stations (id, password_hash, cert_fp, created) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET password_hash = excluded.password_hash, cert_fp = excluded.cert_fp'),
      getStation: db.prepare('SELECT * FROM stations WHERE id = ?'),
      listStations: db.prepare('SELECT * FROM stations ORDER BY id'),
      putState: db.prepare('INSERT INTO station_state (id, state) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state'),
      getState: db.prepare('SELECT state FROM station_state WHERE id = ?'),
      accepted: db.prepare('SELECT seq FROM accepted WHERE sender = ? AND msg_id = ?'),
      insertMail: db.prepare('INSERT INTO mailbox (msg_id, sender, recipient, kind, format, body, expires, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      insertAccepted: db.prepare('INSERT INTO accepted (sender, msg_id, seq, expires) VALUES (?, ?, ?, ?)'),
      pending: db.prepare('SELECT * FROM mailbox WHERE recipient = ? AND seq > ? AND expires > ? ORDER BY seq LIMIT ?'),
      depth: db.prepare('SELECT count(*) AS n FROM mailbox WHERE recipient = ?'),
      deleteFor: db.prepare('DELETE FROM mailbox WHERE seq = ? AND recipient = ? RETURNING *'),
      bySeq: db.prepare('SELECT * FROM mailbox WHERE seq = ?'),
      deleteSeq: db.prepare('DELETE FROM mailbox WHERE seq = ?'),
      attempt: db.prepare('UPDATE mailbox SET attempts = attempts + 1 WHERE seq = ? AND recipient = ? RETURNING attempts'),
      insertDead: db.prepare('INSERT OR REPLACE INTO dead_letters (seq, msg_id, sender, recipient, kind, format, body, expires, created, attempts, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      deadAll: db.prepare('SELECT * FROM dead_letters ORDER BY seq'),
      deadFor: db.prepare('SELECT * FROM dead_letters WHERE recipient = ? ORDER BY seq'),
      expired: db.prepare('SELECT * FROM mailbox WHERE expires <= ? ORDER BY seq'),
      forgetAccepted: db.prepare('DELETE FROM accepted WHERE expires <= ?'),
      insertNotice: db.prepare('INSERT INTO notices (recipient, type, msg_id, peer, reason, created) VALUES (?, ?, ?, ?, ?, ?)'),
      notices: db.prepare('SELECT * FROM notices WHERE recipient = ? AND seq > ? ORDER BY seq'),
      ackNotices: db.prepare('DELETE FROM notices WHERE recipient = ? AND seq <= ?'),
      forgetNotices: db.prepare('DELETE FROM notices WHERE created < ?'),
      putBundle: db.prepare('INSERT INTO bundles (id, role, bundle, updated) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET role = excluded.role, bundle = excluded.bundle, updated = excluded.updated'),
      getBundle: db.prepare('SELECT bundle FROM bundles WHERE id = ?'),
      bundleRole: db.prepare('SELECT role FROM bundles WHERE id = ?'),
      addOtk: db.prepare('INSERT OR IGNORE INTO otks (owner, kid, json) SELECT @owner, @kid, @json WHERE NOT EXISTS (SELECT 1 FROM otks_claimed WHERE owner = @owner AND kid = @kid)'),
      markClaimed: db.prepare('INSERT OR IGNORE INTO otks_claimed (owner, kid) VALUES (?, ?)'),
      countOtk: db.prepare('SELECT count(*) AS n FROM otks WHERE owner = ?'),
      claimOtk: db.prepare('DELETE FROM otks WHERE rowid = (SELECT rowid FROM otks WHERE owner = ? ORDER BY rowid LIMIT 1) RETURNING kid, json'),
      getCrl: db.prepare('SELECT crl_number FROM crls WHERE anchor = ?'),
      putCrl: db.prepare('INSERT INTO crls (anchor, crl_number, pem) VALUES (?, ?, ?) ON CONFLICT(anchor) DO UPDATE SET crl_number = excluded.crl_number, pem = excluded.pem'),
      listCrls: db.prepare('SELECT * FROM crls ORDER BY anchor'),
      auditSize: db.prepare('SELECT count(*) AS n FROM audit'),
      insertAudit: db.prepare('INSERT INTO audit (idx, time, sender, recipient, kind, size, msg_id, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      auditRange: db.prepare('SELECT * FROM audit WHERE idx >= ? AND idx < ? ORDER BY idx'),
      putHead: db.prepare('INSERT OR REPLACE INTO tree_heads (size, root, time, sig) VALUES (?, ?, ?, ?)'),
      latestHead: db.prepare('SELECT * FROM tree_heads ORDER BY size DESC LIMIT 1'),
      heads: db.prepare('SELECT * FROM tree_heads ORDER BY size'),
      getSetting: db.prepare('SELECT value FROM settings WHERE key = ?'),
      putSetting: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      putSettingIfAbsent: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING'),
      replaceSetting: db.prepare('UPDATE settings SET value = ? WHERE key = ? AND value = ?'),
      deleteSetting: db.prepare('DELETE FROM settings WHERE key = ?'),
      deleteSettingIf: db.prepare('DELETE FROM settings WHERE key = ? AND value = ?'),
      settingsWithPrefix: db.prepare('SELECT key, value FROM settings WHERE substr(key, 1, length(@prefix)) = @prefix ORDER BY key'),
    };
    this.#auditNext = (this.#q.auditSize.get() as { n: number }).n;
  }

  #auditNext: number;

  #appendAudit(e: AuditEntry): number {
    const idx = this.#auditNext;
    this.#q.insertAudit.run(idx, e.time, e.sender, e.recipient, e.kind, e.size, e.msgId, e.outcome);
    this.#auditNext = idx + 1;
    return idx;
  }

  /**
   * The newest signed tree head not yet written. Heads are written with the
   * next transaction (or within HEAD_FLUSH_MS when none comes), so a busy
   * gateway pays no separate disk flush for them. A head lost to a crash is
   * not lost evidence: the entries it signs are durable, its signature
   * verifies against the root recomputed from them, and the gateway signs a
   * new head over them when it starts.
   */
  #pendingHead: TreeHead | undefined;
  #headTimer: NodeJS.Timeout | undefined;

  #writeHead(): void {
    const h = this.#pendingHead;
    if (!h) return;
    this.#pendingHead = undefined;
    if (this.#headTimer) clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
    this.#q.putHead.run(h.size, h.root, h.time, h.sig);
  }

  /** Runs `fn` in one IMMEDIATE transaction; the in-memory audit counter is rolled back with it. */
  #tx<T>(fn: () => T): T {
    const before = this.#auditNext;
    const head = this.#pendingHead;
    try {
      return this.#db
        .transaction(() => {
          this.#writeHead();
          return fn();
        })
        .immediate();
    } catch (e) {
      this.#auditNext = before;
      this.#pendingHead ??= head;
      throw e;
    }
  }

  async putStation(s: StationRecord): Promise<void> {
    this.#q.putStation.run(s.id, s.passwordHash ?? null, s.certFingerprint ?? null, s.created);
  }
  async getStation(id: string): Promise<StationRecord | undefined> {
    const r = this.#q.getStation.get(id) as StationRow | undefined;
    return r && toStation(r);
  }
  async listStations(): Promise<StationRecord[]> {
    return (this.#q.listStations.all() as StationRow[]).map(toStation);
  }
  /**
   * Station states written in one turn of the event loop share one
   * transaction, so one fsync: a fleet reconnecting (boots, connector
   * statuses) writes them in batches, not one disk flush per call. Each
   * write resolves once its batch is committed; the latest state of a
   * station in a batch is the one written.
   */
  #stations: { rows: Map<string, string>; done: Promise<void>; commit: () => void } | undefined;

  putStationState(id: string, state: Record<string, unknown>): Promise<void> {
    const json = JSON.stringify(state); // now: the caller may change the object before the batch commits
    if (!this.#stations) {
      const rows = new Map<string, string>();
      let commit!: () => void;
      const done = new Promise<void>((resolve, reject) => {
        commit = () => {
          if (this.#stations?.rows !== rows) return; // committed already (at close)
          this.#stations = undefined;
          try {
            this.#tx(() => {
              for (const [k, v] of rows) this.#q.putState.run(k, v);
            });
            resolve();
          } catch (e) {
            reject(e);
          }
        };
      });
      this.#stations = { rows, done, commit };
      setImmediate(commit);
    }
    this.#stations.rows.set(id, json);
    return this.#stations.done;
  }
  async getStationState(id: string): Promise<Record<string, unknown> | undefined> {
    return this.#stateOf(id);
  }
  #stateOf(id: string): Record<string, unknown> | undefined {
    const pending = this.#stations?.rows.get(id);
    const text = pending ?? (this.#q.getState.get(id) as { state: string } | undefined)?.state;
    return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
  }
  async stationStates(ids: readonly string[]): Promise<Map<string, Record<string, unknown> | undefined>> {
    const out = new Map<string, Record<string, unknown> | undefined>();
    for (const id of ids) if (this.#q.getStation.get(id) !== undefined) out.set(id, this.#stateOf(id));
    return out;
  }

  async enqueue(batch: { msg: NewMessage; audit: AuditEntry }[]): Promise<{ results: EnqueueResult[]; auditIndexes: (number | undefined)[] }> {
    return this.#tx(() => this.#enqueue(batch));
  }
  async commit(
    batch: { msg: NewMessage; audit: AuditEntry }[],
    acks: { recipient: string; seqs: number[] }[],
    audit: (m: QueuedMessage) => AuditEntry,
  ): Promise<{ enqueued: { results: EnqueueResult[]; auditIndexes: (number | undefined)[] }; acked: { removed: QueuedMessage[]; auditIndexes: number[] }[] }> {
    return this.#tx(() => {
      const acked = acks.map((i) => this.#ackOne(i.recipient, i.seqs, audit));
      return { enqueued: this.#enqueue(batch), acked };
    });
  }
  #enqueue(batch: { msg: NewMessage; audit: AuditEntry }[]): { results: EnqueueResult[]; auditIndexes: (number | undefined)[] } {
    const results: EnqueueResult[] = [];
    const auditIndexes: (number | undefined)[] = [];
    for (const { msg: m, audit } of batch) {
      const prior = this.#q.accepted.get(m.sender, m.msgId) as { seq: number } | undefined;
      if (prior) {
        results.push({ seq: prior.seq, duplicate: true });
        auditIndexes.push(undefined);
        continue;
      }
      const seq = Number(this.#q.insertMail.run(m.msgId, m.sender, m.recipient, m.kind, m.format, m.body, m.expires, m.created).lastInsertRowid);
      this.#q.insertAccepted.run(m.sender, m.msgId, seq, m.expires);
      results.push({ seq, duplicate: false });
      auditIndexes.push(this.#appendAudit(audit));
    }
    return { results, auditIndexes };
  }

  async pending(recipient: string, afterSeq: number, limit: number, now: number): Promise<QueuedMessage[]> {
    return (this.#q.pending.all(recipient, afterSeq, now, limit) as MailRow[]).map(toMsg);
  }
  async depth(recipient: string): Promise<number> {
    return (this.#q.depth.get(recipient) as { n: number }).n;
  }
  async acceptedSeq(sender: string, msgId: string): Promise<number | undefined> {
    return (this.#q.accepted.get(sender, msgId) as { seq: number } | undefined)?.seq;
  }
  async message(seq: number): Promise<QueuedMessage | undefined> {
    const r = this.#q.bySeq.get(seq) as MailRow | undefined;
    return r && toMsg(r);
  }
  async ack(recipient: string, seqs: number[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }> {
    return this.#tx(() => this.#ackOne(recipient, seqs, audit));
  }
  async ackBatch(items: { recipient: string; seqs: number[] }[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }[]> {
    return this.#tx(() => items.map((i) => this.#ackOne(i.recipient, i.seqs, audit)));
  }
  #ackOne(recipient: string, seqs: number[], audit: (m: QueuedMessage) => AuditEntry): { removed: QueuedMessage[]; auditIndexes: number[] } {
    const removed: QueuedMessage[] = [];
    const auditIndexes: number[] = [];
    for (const seq of seqs) {
      const r = this.#q.deleteFor.get(seq, recipient) as MailRow | undefined;
      if (!r) continue;
      const m = toMsg(r);
      removed.push(m);
      auditIndexes.push(this.#appendAudit(audit(m)));
    }
    return { removed, auditIndexes };
  }
  async addAttempt(recipient: string, seq: number): Promise<number> {
    const r = this.#q.attempt.get(seq, recipient) as { attempts: number } | undefined;
    return r?.attempts ?? 0;
  }
  async deadLetter(recipient: string, seq: number, reason: string, audit: (m: QueuedMessage) => AuditEntry, now: number): Promise<QueuedMessage | undefined> {
    return this.#tx(() => {
      const r = this.#q.bySeq.get(seq) as MailRow | undefined;
      if (!r || r.recipient !== recipient) return undefined;
      this.#q.deleteSeq.run(seq);
      this.#q.insertDead.run(r.seq, r.msg_id, r.sender, r.recipient, r.kind, r.format, r.body, r.expires, r.created, r.attempts, reason);
      this.#q.insertNotice.run(r.sender, 'dead-letter', r.msg_id, r.recipient, reason, now);
      const m = toMsg(r);
      this.#appendAudit(audit(m));
      return m;
    });
  }
  async expire(now: number, audit: (m: QueuedMessage) => AuditEntry): Promise<QueuedMessage[]> {
    return this.#tx(() => {
      const gone = (this.#q.expired.all(now) as MailRow[]).map(toMsg);
      for (const m of gone) {
        this.#q.deleteSeq.run(m.seq);
        this.#q.insertNotice.run(m.sender, 'expired', m.msgId, m.recipient, 'expired before delivery', now);
        this.#appendAudit(audit(m));
      }
      this.#q.forgetAccepted.run(now);
      return gone;
    });
  }
  async forgetNotices(before: number): Promise<number> {
    return this.#q.forgetNotices.run(before).changes;
  }
  async deadLetters(recipient?: string): Promise<(QueuedMessage & { reason: string })[]> {
    const rows = (recipient === undefined ? this.#q.deadAll.all() : this.#q.deadFor.all(recipient)) as (MailRow & { reason: string })[];
    return rows.map((r) => ({ ...toMsg(r), reason: r.reason }));
  }
  async notices(recipient: string, afterSeq: number): Promise<Notice[]> {
    return (this.#q.notices.all(recipient, afterSeq) as NoticeRow[]).map(toNotice);
  }
  async ackNotices(recipient: string, upToSeq: number): Promise<void> {
    this.#q.ackNotices.run(recipient, upToSeq);
  }

  async putBundle(id: string, role: string, bundle: string, now: number): Promise<void> {
    this.#q.putBundle.run(id, role, bundle, now);
  }
  async getBundle(id: string): Promise<string | undefined> {
    return (this.#q.getBundle.get(id) as { bundle: string } | undefined)?.bundle;
  }
  async bundleRole(id: string): Promise<string | undefined> {
    return (this.#q.bundleRole.get(id) as { role: string } | undefined)?.role;
  }
  async addOneTimePrekeys(owner: string, prekeys: { kid: string; json: string }[]): Promise<number> {
    return this.#tx(() => {
      for (const p of prekeys) this.#q.addOtk.run({ owner, kid: p.kid, json: p.json });
      return (this.#q.countOtk.get(owner) as { n: number }).n;
    });
  }
  async claimOneTimePrekey(owner: string): Promise<string | undefined> {
    return this.#tx(() => {
      const r = this.#q.claimOtk.get(owner) as { kid: string; json: string } | undefined;
      if (r) this.#q.markClaimed.run(owner, r.kid);
      return r?.json;
    });
  }
  async countOneTimePrekeys(owner: string): Promise<number> {
    return (this.#q.countOtk.get(owner) as { n: number }).n;
  }
  async putCrl(anchor: string, crlNumber: bigint, pem: string): Promise<boolean> {
    return this.#tx(() => {
      const cur = this.#q.getCrl.get(anchor) as { crl_number: string } | undefined;
      if (cur && BigInt(cur.crl_number) >= crlNumber) return false;
      this.#q.putCrl.run(anchor, crlNumber.toString(), pem);
      return true;
    });
  }
  async listCrls(): Promise<{ anchor: string; crlNumber: bigint; pem: string }[]> {
    return (this.#q.listCrls.all() as { anchor: string; crl_number: string; pem: string }[]).map((r) => ({ anchor: r.anchor, crlNumber: BigInt(r.crl_number), pem: r.pem }));
  }

  async appendAudit(entries: AuditEntry[]): Promise<number[]> {
    return this.#tx(() => entries.map((e) => this.#appendAudit(e)));
  }
  async auditSize(): Promise<number> {
    return this.#auditNext;
  }
  async auditEntries(from: number, to: number): Promise<AuditEntry[]> {
    return (this.#q.auditRange.all(from, to) as AuditRow[]).map(toAuditEntry);
  }
  async putTreeHead(h: TreeHead): Promise<void> {
    this.#pendingHead = h;
    this.#headTimer ??= setTimeout(() => this.#tx(() => undefined), HEAD_FLUSH_MS);
  }
  async latestTreeHead(): Promise<TreeHead | undefined> {
    return this.#pendingHead ?? (this.#q.latestHead.get() as TreeHead | undefined);
  }
  async treeHeads(): Promise<TreeHead[]> {
    this.#writeHead();
    return this.#q.heads.all() as TreeHead[];
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (this.#q.getSetting.get(key) as { value: string } | undefined)?.value;
  }
  async putSetting(key: string, value: string): Promise<void> {
    this.#q.putSetting.run(key, value);
  }
  async putSettingIfAbsent(key: string, value: string): Promise<string> {
    this.#q.putSettingIfAbsent.run(key, value);
    return (this.#q.getSetting.get(key) as { value: string }).value;
  }
  async replaceSetting(key: string, expected: string | undefined, value: string): Promise<boolean> {
    const r = expected === undefined ? this.#q.putSettingIfAbsent.run(key, value) : this.#q.replaceSetting.run(value, key, expected);
    return r.changes === 1;
  }
  async deleteSetting(key: string, expected?: string): Promise<boolean> {
    return (expected === undefined ? this.#q.deleteSetting.run(key) : this.#q.deleteSettingIf.run(key, expected)).changes === 1;
  }
  async getSettings(keys: readonly string[]): Promise<[string, string][]> {
    return [...new Set(keys)].sort().flatMap((key) => {
      const r = this.#q.getSetting.get(key) as { value: string } | undefined;
      return r ? [[key, r.value] as [string, string]] : [];
    });
  }
  async settingsWithPrefix(prefix: string): Promise<[string, string][]> {
    return (this.#q.settingsWithPrefix.all({ prefix }) as { key: string; value: string }[]).map((r) => [r.key, r.value]);
  }

  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#stations?.commit();
    this.#writeHead();
    this.#db.close();
  }
}
