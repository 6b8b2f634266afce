/**
 * The gateway's one storage interface. The embedded default is SQLite
 * (sqlite.ts); the cluster runs the same gateway on PostgreSQL. Every method
 * is async so that a networked store fits the same shape.
 *
 * What is stored is metadata and sealed bytes only: the gateway never holds
 * a plaintext, a content key or a CA key.
 */

/** A registered charging station (OCPP client). */
export interface StationRecord {
  id: string;
  /** scrypt hash of the Basic-auth password ("scrypt$N$r$p$salt$hash", base64url), if profile 1/2 is allowed */
  passwordHash?: string;
  /** SHA-256 fingerprint ("sha256:hex") of the station's client certificate, if profile 3 is allowed */
  certFingerprint?: string;
  created: number; // Unix ms
}

/** A sealed message waiting in a recipient's mailbox. */
export interface QueuedMessage {
  /** store-wide, strictly increasing: delivery order, and per (sender, recipient) order */
  seq: number;
  /** the message id chosen by the sender (envelope header id, or the session frame id) */
  msgId: string;
  sender: string;
  recipient: string;
  kind: string;
  /** "envelope" or "session" */
  format: string;
  /** the sealed body as sent: never parsed beyond its clear header */
  body: string;
  /** Unix ms; the message is dropped (outcome "expired") after this */
  expires: number;
  created: number; // Unix ms
  attempts: number;
}

export type NewMessage = Omit<QueuedMessage, 'seq' | 'attempts'>;

/** A notice for a sender about its own message (currently: dead-lettered). */
export interface Notice {
  seq: number;
  recipient: string; // who the notice is for (the original sender)
  type: 'dead-letter' | 'expired';
  msgId: string;
  peer: string; // the original recipient
  reason: string;
  created: number;
}

/** One metadata-only audit entry (docs/gateway-protocol.md, "Audit log"). */
export interface AuditEntry {
  time: number; // Unix ms
  sender: string;
  recipient: string;
  kind: string;
  size: number;
  msgId: string;
  outcome: string;
}

/** A signed tree head: what receipts and consistency proofs refer to. */
export interface TreeHead {
  size: number;
  root: string; // base64url SHA-256
  time: number; // Unix ms
  sig: string; // base64url, SIG_CONTEXT.receipt over the canonical tree head
}

export interface EnqueueResult {
  seq: number;
  /** true when (sender, msgId) was already queued or delivered: the earlier acceptance stands */
  duplicate: boolean;
}

export interface GatewayStore {
  readonly kind: string;
  /**
   * True when this process is the only writer of the mailbox (the embedded
   * store): the router may then push what it commits straight from memory
   * instead of reading it back. Unset for a store shared by several nodes.
   */
  readonly exclusive?: boolean;
  /** A store shared by several nodes: its server's clock (µs since the epoch), one clock for all of them. */
  clockMicros?(): Promise<bigint>;
  /**
   * A store shared by several nodes: token buckets kept for all of them
   * (./token-buckets.ts StoreTokenBuckets), by the store's clock. The
   * tokens of `key` now (a full `burst` if never spent).
   */
  quotaTokens?(key: string, burst: number, perMinute: number): Promise<number>;
  /** Spends one token of `key`, down to a debt of one burst. */
  quotaSpend?(key: string, burst: number, perMinute: number): Promise<void>;
  /** Removes the buckets that are full again (as good as never spent); how many. */
  quotaSweep?(): Promise<number>;

  // stations
  putStation(s: StationRecord): Promise<void>;
  getStation(id: string): Promise<StationRecord | undefined>;
  listStations(): Promise<StationRecord[]>;
  /** Built-in CSMS state of a station (JSON object), replaced as a whole. */
  putStationState(id: string, state: Record<string, unknown>): Promise<void>;
  getStationState(id: string): Promise<Record<string, unknown> | undefined>;
  /** Of `ids`, the registered stations, each with its CSMS state (undefined before it has one): one lookup for a whole rollout. */
  stationStates(ids: readonly string[]): Promise<Map<string, Record<string, unknown> | undefined>>;

  // mailbox
  /**
   * Makes messages durable. Each (sender, msgId) is accepted once; a repeat
   * returns the original seq with duplicate = true and stores nothing. The
   * audit entries of fresh messages are appended in the same transaction, so
   * a message is never durable without its audit entry or the reverse.
   */
  enqueue(batch: { msg: NewMessage; audit: AuditEntry }[]): Promise<{ results: EnqueueResult[]; auditIndexes: (number | undefined)[] }>;
  /** Messages for `recipient` with seq > afterSeq, in seq order, not expired at `now`. */
  pending(recipient: string, afterSeq: number, limit: number, now: number): Promise<QueuedMessage[]>;
  /** Number of messages queued for `recipient`. */
  depth(recipient: string): Promise<number>;
  /** The seq a (sender, message id) was accepted under, while the store remembers it (until its expiry). */
  acceptedSeq(sender: string, msgId: string): Promise<number | undefined>;
  /** One queued message by seq (for a retry of a single delivery). */
  message(seq: number): Promise<QueuedMessage | undefined>;
  /**
   * Removes delivered messages (those of `recipient` among `seqs`) and
   * appends one audit entry per removed message, atomically. Returns the
   * removed messages and their audit indexes; unknown seqs are ignored.
   */
  ack(recipient: string, seqs: number[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }>;
  /** Several recipients' acknowledgements in one transaction (group commit); results in input order. */
  ackBatch(items: { recipient: string; seqs: number[] }[], audit: (m: QueuedMessage) => AuditEntry): Promise<{ removed: QueuedMessage[]; auditIndexes: number[] }[]>;
  /**
   * Optional: enqueue(batch) and ackBatch(acks, audit) in one transaction,
   * the acknowledgements first; one commit (one fsync) for both. The router
   * then commits everything that arrived in one turn of its event loop at
   * once; without it, it makes the two calls.
   */
  commit?(
    batch: { msg: NewMessage; audit: AuditEntry }[],
    acks: { recipient: string; seqs: number[] }[],
    audit: (m: QueuedMessage) => AuditEntry,
  ): Promise<{ enqueued: { results: EnqueueResult[]; auditIndexes: (number | undefined)[] }; acked: { removed: QueuedMessage[]; auditIndexes: number[] }[] }>;
  /** Counts one more failed delivery attempt of `recipient`'s message `seq`; returns the new count (0: no such message of theirs). */
  addAttempt(recipient: string, seq: number): Promise<number>;
  /** Moves `recipient`'s message `seq` to the dead-letter store, notifies its sender, audits it. */
  deadLetter(recipient: string, seq: number, reason: string, audit: (m: QueuedMessage) => AuditEntry, now: number): Promise<QueuedMessage | undefined>;
  /** Drops messages whose expiry has passed, notifies their senders, audits each. */
  expire(now: number, audit: (m: QueuedMessage) => AuditEntry): Promise<QueuedMessage[]>;
  /** Drops notices made before `before` (Unix ms) that their endpoint never acknowledged; returns how many. */
  forgetNotices(before: number): Promise<number>;
  deadLetters(recipient?: string): Promise<(QueuedMessage & { reason: string })[]>;
  notices(recipient: string, afterSeq: number): Promise<Notice[]>;
  ackNotices(recipient: string, upToSeq: number): Promise<void>;

  // directory
  putBundle(id: string, role: string, bundle: string, now: number): Promise<void>;
  getBundle(id: string): Promise<string | undefined>;
  /** The role a published bundle's certificate carries (checked when it was published). */
  bundleRole(id: string): Promise<string | undefined>;
  /** Adds one-time prekeys (by key id) for `owner`; returns how many are now held. */
  addOneTimePrekeys(owner: string, prekeys: { kid: string; json: string }[]): Promise<number>;
  /** Removes and returns one one-time prekey of `owner`: each is handed out exactly once. */
  claimOneTimePrekey(owner: string): Promise<string | undefined>;
  countOneTimePrekeys(owner: string): Promise<number>;
  /** Keeps the newest CRL per issuing anchor name (higher CRL number wins). */
  putCrl(anchor: string, crlNumber: bigint, pem: string): Promise<boolean>;
  listCrls(): Promise<{ anchor: string; crlNumber: bigint; pem: string }[]>;

  // audit log
  /** Appends entries outside a mailbox operation (connection refusals, directory events). */
  appendAudit(entries: AuditEntry[]): Promise<number[]>;
  auditSize(): Promise<number>;
  /** Leaf entries [from, to) in index order. */
  auditEntries(from: number, to: number): Promise<AuditEntry[]>;
  putTreeHead(h: TreeHead): Promise<void>;
  latestTreeHead(): Promise<TreeHead | undefined>;
  treeHeads(): Promise<TreeHead[]>;

  // key-value settings of the gateway itself (its receipt key, its id)
  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
  /** Sets `key` unless it is set; returns the value it holds after (the one another writer set first wins). */
  putSettingIfAbsent(key: string, value: string): Promise<string>;
  /** Sets `key` to `value` only if it holds `expected` (undefined: only if it is not set); whether it did. */
  replaceSetting(key: string, expected: string | undefined, value: string): Promise<boolean>;
  /** Removes `key` if it holds `expected` (undefined: whatever it holds); whether it did: of several removing one key at once, one sees true. */
  deleteSetting(key: string, expected?: string): Promise<boolean>;
  /** Every setting whose key starts with `prefix`, in key order. */
  settingsWithPrefix(prefix: string): Promise<[string, string][]>;
  /**
   * A store shared by several nodes: each setting whose key starts with
   * `prefix`, in key order, with a version that changes whenever its value
   * is written, so that a reader of large values fetches only the changed
   * ones (getSettings).
   */
  settingVersions?(prefix: string): Promise<[string, string][]>;
  /** Those of `keys` that are set, with their values. */
  getSettings(keys: readonly string[]): Promise<[string, string][]>;

  close(): Promise<void>;
}

/**
 * The audit entry a mailbox operation (ack, deadLetter, expire) appends for
 * each message it removes. The router builds the same entries again with the
 * same function, to hand them to the audit log without reading them back.
 */
export function auditFor(time: number, outcome: string): (m: QueuedMessage) => AuditEntry {
  return (m) => ({ time, sender: m.sender, recipient: m.recipient, kind: m.kind, size: m.body.length, msgId: m.msgId, outcome });
}
