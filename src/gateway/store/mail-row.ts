import type { QueuedMessage } from './store.js';

/** A mailbox row as both SQL stores hold it (snake_case columns). */
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
