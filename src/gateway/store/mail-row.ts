import type { AuditEntry, Notice, QueuedMessage, StationRecord } from './store.js';

/** Rows as both SQL stores hold them (snake_case columns), and the records they map to. */

/** A mailbox (or dead-letter) row. */
export interface MailRow {
  seq: number;
  msg_id: string;
  sender: string;
  recipient: string;
  kind: string;
  format: string;
  body: string;
  expires: number;
  created: number;
  attempts: number;
}

export const toMsg = (r: MailRow): QueuedMessage => ({
  seq: r.seq,
  msgId: r.msg_id,
  sender: r.sender,
  recipient: r.recipient,
  kind: r.kind,
  format: r.format,
  body: r.body,
  expires: r.expires,
  created: r.created,
  attempts: r.attempts,
});

export interface StationRow {
  id: string;
  password_hash: string | null;
  cert_fp: string | null;
  created: number;
}

export const toStation = (r: StationRow): StationRecord => ({ id: r.id, passwordHash: r.password_hash ?? undefined, certFingerprint: r.cert_fp ?? undefined, created: r.created });

export interface NoticeRow {
  seq: number;
  recipient: string;
  type: Notice['type'];
  msg_id: string;
  peer: string;
  reason: string;
  created: number;
}

export const toNotice = (r: NoticeRow): Notice => ({ seq: r.seq, recipient: r.recipient, type: r.type, msgId: r.msg_id, peer: r.peer, reason: r.reason, created: r.created });

export interface AuditRow {
  time: number;
  sender: string;
  recipient: string;
  kind: string;
  size: number;
  msg_id: string;
  outcome: string;
}

export const toAuditEntry = (r: AuditRow): AuditEntry => ({ time: r.time, sender: r.sender, recipient: r.recipient, kind: r.kind, size: r.size, msgId: r.msg_id, outcome: r.outcome });
