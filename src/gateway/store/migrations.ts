/**
 * The PostgreSQL schema, as numbered migrations. A store applies the ones
 * its database has not seen, in order, each in its own transaction, under an
 * advisory lock: several gateway nodes starting at once migrate once.
 * A migration is never edited after release; a change is a new entry.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'gateway store',
    sql: `
CREATE TABLE stations (id TEXT PRIMARY KEY, password_hash TEXT, cert_fp TEXT, created BIGINT NOT NULL);
CREATE TABLE station_state (id TEXT PRIMARY KEY, state TEXT NOT NULL);
-- seq is drawn only while the audit counter row is locked, so seq order is commit order across nodes
CREATE TABLE mailbox (
  seq BIGSERIAL PRIMARY KEY, msg_id TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
  kind TEXT NOT NULL, format TEXT NOT NULL, body TEXT NOT NULL, expires BIGINT NOT NULL, created BIGINT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX mailbox_recipient ON mailbox (recipient, seq);
CREATE INDEX mailbox_expires ON mailbox (expires);
-- the deduplication record: every (sender, msg_id) accepted, kept until the message's expiry
CREATE TABLE accepted (sender TEXT NOT NULL, msg_id TEXT NOT NULL, seq BIGINT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (sender, msg_id));
CREATE INDEX accepted_expires ON accepted (expires);
-- messages committed but not yet published on the bus (cluster mode)
CREATE TABLE outbox (seq BIGINT PRIMARY KEY, recipient TEXT NOT NULL, created BIGINT NOT NULL);
CREATE TABLE dead_letters (
  seq BIGINT PRIMARY KEY, msg_id TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL, kind TEXT NOT NULL,
  format TEXT NOT NULL, body TEXT NOT NULL, expires BIGINT NOT NULL, created BIGINT NOT NULL, attempts INTEGER NOT NULL,
  reason TEXT NOT NULL);
CREATE TABLE notices (
  seq BIGSERIAL PRIMARY KEY, recipient TEXT NOT NULL, type TEXT NOT NULL, msg_id TEXT NOT NULL,
  peer TEXT NOT NULL, reason TEXT NOT NULL, created BIGINT NOT NULL);
CREATE INDEX notices_recipient ON notices (recipient, seq);
CREATE TABLE bundles (id TEXT PRIMARY KEY, role TEXT NOT NULL, bundle TEXT NOT NULL, updated BIGINT NOT NULL);
CREATE TABLE otks (n BIGSERIAL PRIMARY KEY, owner TEXT NOT NULL, kid TEXT NOT NULL, json TEXT NOT NULL, UNIQUE (owner, kid));
CREATE TABLE otks_claimed (owner TEXT NOT NULL, kid TEXT NOT NULL, PRIMARY KEY (owner, kid));
CREATE TABLE crls (anchor TEXT PRIMARY KEY, crl_number NUMERIC NOT NULL, pem TEXT NOT NULL);
-- one row: the next audit index. Every append locks it, which serialises appends across nodes
CREATE TABLE audit_counter (id INTEGER PRIMARY KEY CHECK (id = 1), next BIGINT NOT NULL);
INSERT INTO audit_counter (id, next) VALUES (1, 0);
CREATE TABLE audit (idx BIGINT PRIMARY KEY, time BIGINT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
  kind TEXT NOT NULL, size BIGINT NOT NULL, msg_id TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE tree_heads (size BIGINT PRIMARY KEY, root TEXT NOT NULL, time BIGINT NOT NULL, sig TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`,
  },
  {
    version: 2,
    name: 'cluster-wide quotas',
    sql: `
-- token buckets shared by the nodes (failed logins, one-time prekey claims), by the database server's clock in ms;
-- full_at: when the bucket is full again, after which its row may go
CREATE TABLE quotas (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at BIGINT NOT NULL, full_at BIGINT NOT NULL);
CREATE INDEX quotas_full_at ON quotas (full_at);
`,
  },
];
