import { EvsealError } from '../core/errors.js';
import { ID_RE, isRole, type Role } from '../core/roles.js';
import { isKind } from '../core/role-policy.js';
import type { AuditEntry, GatewayStore, QueuedMessage, TreeHead } from './store/store.js';
import type { DeliverySink, Principal, Receipt, Router, Submission } from './context.js';
import type { Metrics } from './metrics.js';
import type { RoutePolicy } from './route-policy.js';
import { routeAllowed } from './route-policy.js';
import type { Logger } from 'pino';

/** What the router needs of the audit log: fold in new entries and sign a head; make receipts. */
export interface AuditSigner {
  sync(): Promise<TreeHead>;
  receipt(index: number, head: TreeHead): Receipt;
}

export interface RouterLimits {
  /** messages held per recipient before submissions to it are refused */
  maxQueuePerRecipient: number;
  /** failed delivery attempts before a message is dead-lettered */
  maxAttempts: number;
  /** longest accepted message lifetime (ms), whatever the sender says */
  maxLifetimeMs: number;
  /** largest accepted body (characters) */
  maxBodyChars: number;
  /** pause before a failed delivery is retried (ms) */
  retryDelayMs: number;
}

export const DEFAULT_ROUTER_LIMITS: RouterLimits = {
  maxQueuePerRecipient: 10_000,
  maxAttempts: 5,
  maxLifetimeMs: 30 * 24 * 3600 * 1000,
  maxBodyChars: 1024 * 1024,
  retryDelayMs: 1000,
};

interface Pending {
  from: Principal;
  s: Submission;
  size: number;
  t0: bigint;
  resolve: (r: { seq: number; duplicate: boolean; receipt: Receipt | undefined }) => void;
  reject: (e: unknown) => void;
}

interface Attached {
  sink: DeliverySink;
  /** seqs pushed to the sink and not yet acknowledged, ascending */
  inflight: number[];
  /** highest seq pushed so far: the next read starts after it */
  cursor: number;
  pumping: boolean;
  again: boolean;
  timers: Set<NodeJS.Timeout>;
}

const MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Store-and-forward routing. Submissions that arrive in the same tick are
 * committed in one transaction (group commit), so a durable acknowledgement
 * costs one fsync per batch rather than per message. Delivery is in seq
 * order per recipient, which keeps every (sender, recipient) pair in order.
 */
export class MailRouter implements Router {
  readonly #store: GatewayStore;
  readonly #audit: AuditSigner;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #policy: RoutePolicy;
  readonly #limits: RouterLimits;
  readonly #now: () => number;
  readonly #roleOf: (id: string) => Promise<Role | undefined>;
  readonly #sinks = new Map<string, Attached>();
  /**
   * Messages held per recipient, counted here instead of by a query per
   * submission: read from the store the first time a recipient is seen, then
   * kept up to date by this process (a single-process gateway owns its store).
   */
  readonly #depth = new Map<string, number>();
  #queue: Pending[] = [];
  #acks: { recipient: string; seqs: number[]; resolve: (r: Receipt[]) => void; reject: (e: unknown) => void }[] = [];
  #flushing = false;
  #scheduled = false;
  #closed = false;

  constructor(o: {
    store: GatewayStore;
    audit: AuditSigner;
    metrics: Metrics;
    log: Logger;
    policy: RoutePolicy;
    limits?: Partial<RouterLimits>;
    now?: () => number;
    /** The role of a recipient id: a registered station is a charger, a directory entry names its role. */
    roleOf: (id: string) => Promise<Role | undefined>;
  }) {
    this.#store = o.store;
    this.#audit = o.audit;
    this.#metrics = o.metrics;
    this.#log = o.log;
    this.#policy = o.policy;
    this.#limits = { ...DEFAULT_ROUTER_LIMITS, ...o.limits };
    this.#now = o.now ?? Date.now;
    this.#roleOf = o.roleOf;
  }

  get limits(): RouterLimits {
    return this.#limits;
  }

  /** Boundary checks on the clear metadata; the body stays opaque. */
  #check(from: Principal, s: Submission): void {
    const bad = (why: string): never => {
      throw new EvsealError('ERR_INVALID_INPUT', why);
    };
    if (!ID_RE.test(s.to)) bad('recipient id is not valid');
    if (!isKind(s.kind)) bad('kind is not valid');
    if (!MSG_ID.test(s.msgId)) bad('message id is not valid');
    if (typeof s.body !== 'string' || s.body.length === 0) bad('body is empty');
    if (s.body.length > this.#limits.maxBodyChars) throw new EvsealError('ERR_LIMIT', `body exceeds ${this.#limits.maxBodyChars} characters`);
    if (!Number.isSafeInteger(s.expires)) bad('expiry is not valid');
    const now = this.#now();
    if (s.expires <= now) bad('message has already expired');
    if (s.expires - now > this.#limits.maxLifetimeMs) throw new EvsealError('ERR_LIMIT', 'message lifetime exceeds the gateway maximum');
    if (s.to === from.id) bad('a message to oneself is not routed');
  }

  async submit(from: Principal, s: Submission): Promise<{ seq: number; duplicate: boolean; receipt: Receipt | undefined }> {
    if (this.#closed) throw new EvsealError('ERR_STATE', 'gateway is shutting down');
    const t0 = process.hrtime.bigint();
    try {
      this.#check(from, s);
      const toRole = await this.#roleOf(s.to);
      if (!toRole || !isRole(toRole)) throw new EvsealError('ERR_NOT_FOUND', `unknown recipient ${s.to}`);
      if (!routeAllowed(this.#policy, from.role, s.kind, toRole, s.format)) {
        throw new EvsealError('ERR_POLICY_DENIED', `route policy forbids ${s.kind} from ${from.role} to ${toRole}`);
      }
      let depth = this.#depth.get(s.to);
      if (depth === undefined) this.#depth.set(s.to, (depth = await this.#store.depth(s.to)));
      if (depth >= this.#limits.maxQueuePerRecipient) throw new EvsealError('ERR_LIMIT', `mailbox of ${s.to} is full`);
      // Counted now, so a batch of submissions cannot overshoot the limit; undone for duplicates and failures.
      this.#depth.set(s.to, depth + 1);
    } catch (e) {
      this.#metrics.refused.inc({ code: e instanceof EvsealError ? e.code : 'ERR_INTERNAL' });
      throw e;
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ from, s, size: s.body.length, t0, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing || this.#queue.length === 0) return;
    this.#flushing = true;
    const batch = this.#queue;
    this.#queue = [];
    try {
      const now = this.#now();
      const { results, auditIndexes } = await this.#store.enqueue(
        batch.map((p) => ({
          msg: { msgId: p.s.msgId, sender: p.from.id, recipient: p.s.to, kind: p.s.kind, format: p.s.format, body: p.s.body, expires: p.s.expires, created: now },
          audit: entry(now, p.from.id, p.s.to, p.s.kind, p.size, p.s.msgId, 'accepted'),
        })),
      );
      const head = await this.#audit.sync();
      const recipients = new Set<string>();
      batch.forEach((p, i) => {
        const r = results[i]!;
        const idx = auditIndexes[i];
        if (r.duplicate) this.#addDepth(p.s.to, -1);
        else {
          this.#metrics.routed.inc({ format: p.s.format });
          this.#metrics.queued.inc();
          recipients.add(p.s.to);
        }
        this.#metrics.acceptLatency.observe(Number(process.hrtime.bigint() - p.t0) / 1e9);
        p.resolve({ seq: r.seq, duplicate: r.duplicate, receipt: idx === undefined ? undefined : this.#audit.receipt(idx, head) });
      });
      for (const to of recipients) this.#pump(to);
    } catch (e) {
      this.#log.error({ err: (e as Error).message }, 'enqueue failed');
      for (const p of batch) {
        this.#addDepth(p.s.to, -1);
        p.reject(new EvsealError('ERR_STATE', 'message could not be stored'));
      }
    } finally {
      this.#flushing = false;
      if (this.#queue.length > 0) this.#schedule();
    }
  }

  #addDepth(recipient: string, n: number): void {
    const d = this.#depth.get(recipient);
    if (d !== undefined) this.#depth.set(recipient, Math.max(0, d + n));
  }

  attach(recipient: string, sink: DeliverySink): () => void {
    const old = this.#sinks.get(recipient);
    if (old) for (const t of old.timers) clearTimeout(t);
    const a: Attached = { sink, inflight: [], cursor: 0, pumping: false, again: false, timers: new Set() };
    this.#sinks.set(recipient, a);
    this.#pump(recipient);
    void this.#sendNotices(recipient, a);
    return () => {
      if (this.#sinks.get(recipient) === a) {
        for (const t of a.timers) clearTimeout(t);
        this.#sinks.delete(recipient);
      }
    };
  }

  async #sendNotices(recipient: string, a: Attached): Promise<void> {
    if (!a.sink.notice) return;
    try {
      const ns = await this.#store.notices(recipient, 0);
      if (this.#sinks.get(recipient) !== a) return;
      for (const n of ns) a.sink.notice({ type: n.type, msgId: n.msgId, peer: n.peer, reason: n.reason });
      if (ns.length > 0) await this.#store.ackNotices(recipient, ns[ns.length - 1]!.seq);
    } catch (e) {
      this.#log.error({ err: (e as Error).message, recipient }, 'notice delivery failed');
    }
  }

  /** Pushes queued messages to the attached sink, up to its window. */
  #pump(recipient: string): void {
    const a = this.#sinks.get(recipient);
    if (!a) return;
    if (a.pumping) {
      a.again = true;
      return;
    }
    a.pumping = true;
    void (async () => {
      try {
        do {
          a.again = false;
          const room = a.sink.window - a.inflight.length;
          if (room <= 0) break;
          const msgs = await this.#store.pending(recipient, a.cursor, room, this.#now());
          if (this.#sinks.get(recipient) !== a) return;
          for (const m of msgs) {
            a.inflight.push(m.seq);
            a.cursor = m.seq;
            a.sink.push(m);
          }
          if (msgs.length === room) a.again = true;
        } while (a.again);
      } catch (e) {
        this.#log.error({ err: (e as Error).message, recipient }, 'delivery pump failed');
      } finally {
        a.pumping = false;
      }
    })();
  }

  async ack(recipient: string, seq: number): Promise<Receipt[]> {
    return this.#remove(recipient, [seq]);
  }

  async ackMany(recipient: string, seqs: number[]): Promise<Receipt[]> {
    return this.#remove(recipient, seqs);
  }

  /** Acknowledgements that arrive in one tick share one transaction and one signed tree head, like submissions. */
  #remove(recipient: string, seqs: number[]): Promise<Receipt[]> {
    return new Promise((resolve, reject) => {
      this.#acks.push({ recipient, seqs, resolve, reject });
      if (this.#acks.length === 1) setImmediate(() => void this.#flushAcks());
    });
  }

  async #flushAcks(): Promise<void> {
    const batch = this.#acks.splice(0);
    if (batch.length === 0) return;
    const now = this.#now();
    let results;
    try {
      results = await this.#store.ackBatch(batch, (m) => entry(now, m.sender, m.recipient, m.kind, m.body.length, m.msgId, 'delivered'));
    } catch (e) {
      this.#log.error({ err: (e as Error).message }, 'acknowledgement failed');
      for (const b of batch) b.reject(new EvsealError('ERR_STATE', 'acknowledgement could not be stored'));
      return;
    }
    const head = results.some((r) => r.removed.length > 0) ? await this.#audit.sync() : undefined;
    batch.forEach((b, i) => b.resolve(this.#removed(b.recipient, b.seqs, results[i]!, now, head)));
  }

  #removed(recipient: string, seqs: number[], r: { removed: QueuedMessage[]; auditIndexes: number[] }, now: number, head: TreeHead | undefined): Receipt[] {
    const { removed, auditIndexes } = r;
    const a = this.#sinks.get(recipient);
    if (a) {
      const done = new Set(seqs);
      a.inflight = a.inflight.filter((s) => !done.has(s));
      this.#pump(recipient);
    }
    if (removed.length === 0) return [];
    this.#addDepth(recipient, -removed.length);
    this.#metrics.delivered.inc(removed.length);
    this.#metrics.queued.dec(removed.length);
    for (const m of removed) this.#metrics.deliveryLatency.observe(Math.max(0, now - m.created) / 1000);
    return auditIndexes.map((i) => this.#audit.receipt(i, head!));
  }

  async failed(recipient: string, seq: number, reason: string): Promise<void> {
    const a = this.#sinks.get(recipient);
    if (a) a.inflight = a.inflight.filter((s) => s !== seq);
    const attempts = await this.#store.addAttempt(seq);
    if (attempts >= this.#limits.maxAttempts) {
      const now = this.#now();
      const m = await this.#store.deadLetter(seq, reason, (q) => entry(now, q.sender, q.recipient, q.kind, q.body.length, q.msgId, 'dead-lettered'), now);
      if (m) {
        await this.#audit.sync();
        this.#metrics.deadLettered.inc();
        this.#addDepth(recipient, -1);
        this.#metrics.queued.dec();
        this.#log.warn({ msgId: m.msgId, sender: m.sender, recipient, attempts }, 'message dead-lettered');
        const senderSink = this.#sinks.get(m.sender);
        if (senderSink) void this.#sendNotices(m.sender, senderSink);
      }
      if (a) this.#pump(recipient);
      return;
    }
    if (!a) return;
    // Retry this message alone after a pause; it counts against the window meanwhile.
    a.inflight.push(seq);
    a.inflight.sort((x, y) => x - y);
    const t = setTimeout(() => {
      a.timers.delete(t);
      if (this.#sinks.get(recipient) !== a) return;
      this.#store.message(seq).then(
        (m) => {
          if (m && this.#sinks.get(recipient) === a) a.sink.push(m);
          else {
            a.inflight = a.inflight.filter((s) => s !== seq);
            this.#pump(recipient);
          }
        },
        (e: unknown) => this.#log.error({ err: (e as Error).message, recipient }, 'retry failed'),
      );
    }, this.#limits.retryDelayMs);
    t.unref();
    a.timers.add(t);
  }

  /** Drops expired messages and tells their senders (when connected). */
  async expire(): Promise<number> {
    const now = this.#now();
    const gone = await this.#store.expire(now, (m) => entry(now, m.sender, m.recipient, m.kind, m.body.length, m.msgId, 'expired'));
    if (gone.length === 0) return 0;
    await this.#audit.sync();
    this.#metrics.expired.inc(gone.length);
    for (const m of gone) this.#addDepth(m.recipient, -1);
    this.#metrics.queued.dec(gone.length);
    for (const sender of new Set(gone.map((m) => m.sender))) {
      const s = this.#sinks.get(sender);
      if (s) void this.#sendNotices(sender, s);
    }
    return gone.length;
  }

  /** Stops accepting, and waits until every batch in progress is committed. */
  async drain(): Promise<void> {
    this.#closed = true;
    while (this.#flushing || this.#scheduled || this.#queue.length > 0) {
      if (!this.#flushing && !this.#scheduled) await this.#flush();
      else await new Promise((r) => setTimeout(r, 5));
    }
    await this.#flushAcks();
    for (const a of this.#sinks.values()) for (const t of a.timers) clearTimeout(t);
  }
}

export function entry(time: number, sender: string, recipient: string, kind: string, size: number, msgId: string, outcome: string): AuditEntry {
  return { time, sender, recipient, kind, size, msgId, outcome };
}

