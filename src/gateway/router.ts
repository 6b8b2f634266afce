import { EvsealError } from '../core/errors.js';
import { ID_RE, MSG_ID_RE, isRole, type Role } from '../core/roles.js';
import { isKind } from '../core/role-policy.js';
import { auditFor, type AuditEntry, type GatewayStore, type QueuedMessage, type TreeHead } from './store/store.js';
import type { DeliverySink, Principal, Receipt, Router, Submission } from './context.js';
import type { Metrics } from './metrics.js';
import type { RoutePolicy } from './route-policy.js';
import { routeAllowed } from './route-policy.js';
import type { Logger } from 'pino';

/** What the router needs of the audit log: fold in new entries and sign a head; make receipts. */
export interface AuditSigner {
  /** A head covering every entry appended so far (with upTo: at least those below it). */
  sync(upTo?: number): Promise<TreeHead>;
  receipt(index: number, head: TreeHead): Receipt;
  /** Entries the router just committed, handed over so that sync need not read them back. */
  committed?(items: readonly { index: number; entry: AuditEntry }[]): void;
}

/**
 * How the other nodes of a cluster reach this one (cluster/bus.ts): while a
 * recipient is attached here, `wake` runs whenever a message for it commits
 * on any node. A single-process gateway has none.
 */
export interface RouterBus {
  watch(recipient: string, wake: () => void): () => void;
  /**
   * Announces that this node now holds `recipient`'s connection; `evict` is
   * called if a newer connection of the same recipient appears on another
   * node. Returns the function that stops listening.
   */
  claim?(recipient: string, evict: () => void): () => void;
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
  /**
   * The store holds nothing for this recipient past the cursor that has not
   * been pushed: fresh commits are then pushed from memory, with no read.
   * Only kept when this router is the mailbox's one writer (see #exclusive).
   */
  synced: boolean;
  timers: Set<NodeJS.Timeout>;
  /** highest notice seq sent on this connection; notices stay stored until the endpoint acknowledges them */
  noticeCursor: number;
  /** stops listening for a newer connection on another node (RouterBus.claim) */
  unclaim?: () => void;
  /** notice sends, one after another, so none goes out twice on one connection */
  noticing: Promise<void>;
}

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
  readonly #bus: RouterBus | undefined;
  /** No other process writes the mailbox (an exclusive store, no cluster bus): what this router commits is all there is. */
  readonly #exclusive: boolean;
  /** The store commits submissions and acknowledgements in one transaction (GatewayStore.commit). */
  readonly #combined: boolean;
  readonly #sinks = new Map<string, Attached>();
  /**
   * Messages held per recipient, counted here instead of by a query per
   * submission: read from the store the first time a recipient is seen, then
   * kept up to date by this process (a single-process gateway owns its store).
   */
  readonly #depth = new Map<string, number>();
  /**
   * Per recipient: submissions admitted (so counted in #depth) whose commit
   * has not ended. Some may be resends of stored messages, which take no
   * room: near the limit, an admission waits for them (#nextFlushEnd).
   */
  readonly #uncommitted = new Map<string, number>();
  #flushEnded: { promise: Promise<void>; resolve: () => void } | undefined;
  /** per sender: the admission of its latest submission, settled */
  readonly #admitting = new Map<string, Promise<void>>();
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
    bus?: RouterBus;
  }) {
    this.#store = o.store;
    this.#audit = o.audit;
    this.#metrics = o.metrics;
    this.#log = o.log;
    this.#policy = o.policy;
    this.#limits = { ...DEFAULT_ROUTER_LIMITS, ...o.limits };
    this.#now = o.now ?? Date.now;
    this.#roleOf = o.roleOf;
    this.#bus = o.bus;
    this.#exclusive = o.store.exclusive === true && o.bus === undefined;
    this.#combined = typeof o.store.commit === 'function';
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
    if (!MSG_ID_RE.test(s.msgId)) bad('message id is not valid');
    if (typeof s.body !== 'string' || s.body.length === 0) bad('body is empty');
    if (s.body.length > this.#limits.maxBodyChars) throw new EvsealError('ERR_LIMIT', `body exceeds ${this.#limits.maxBodyChars} characters`);
    if (!Number.isSafeInteger(s.expires)) bad('expiry is not valid');
    const now = this.#now();
    if (s.expires <= now) bad('message has already expired');
    if (s.expires - now > this.#limits.maxLifetimeMs) throw new EvsealError('ERR_LIMIT', 'message lifetime exceeds the gateway maximum');
    if (s.to === from.id) bad('a message to oneself is not routed');
  }

  /**
   * Admission runs in arrival order per sender: with a networked store the
   * checks wait on queries that may complete out of order, and a later
   * message must not overtake an earlier one into the commit queue.
   */
  submit(from: Principal, s: Submission): Promise<{ seq: number; duplicate: boolean; receipt: Receipt | undefined }> {
    const t0 = process.hrtime.bigint();
    const prev = this.#admitting.get(from.id);
    const turn = prev ? prev.then(() => this.#admit(from, s, t0)) : this.#admit(from, s, t0);
    const settled = turn.then(
      () => undefined,
      () => undefined,
    );
    this.#admitting.set(from.id, settled);
    void settled.then(() => {
      if (this.#admitting.get(from.id) === settled) this.#admitting.delete(from.id);
    });
    return turn.then((t) => t.result);
  }

  async #admit(from: Principal, s: Submission, t0: bigint): Promise<{ result: Promise<{ seq: number; duplicate: boolean; receipt: Receipt | undefined }> }> {
    if (this.#closed) throw new EvsealError('ERR_STATE', 'gateway is shutting down');
    try {
      this.#check(from, s);
      const toRole = await this.#roleOf(s.to);
      if (!toRole || !isRole(toRole)) throw new EvsealError('ERR_NOT_FOUND', `unknown recipient ${s.to}`);
      if (!routeAllowed(this.#policy, from.role, s.kind, toRole, s.format)) {
        throw new EvsealError('ERR_POLICY_DENIED', `route policy forbids ${s.kind} from ${from.role} to ${toRole}`);
      }
      let depth = this.#depth.get(s.to) ?? (await this.#depthOf(s.to));
      while (depth >= this.#limits.maxQueuePerRecipient && (this.#uncommitted.get(s.to) ?? 0) > 0) {
        await this.#nextFlushEnd();
        if (this.#closed) throw new EvsealError('ERR_STATE', 'gateway is shutting down');
        depth = await this.#depthOf(s.to);
      }
      // A resend of a message already stored takes no room: it goes on to be answered as a duplicate.
      if (depth >= this.#limits.maxQueuePerRecipient && (await this.#store.acceptedSeq(from.id, s.msgId)) === undefined) {
        throw new EvsealError('ERR_LIMIT', `mailbox of ${s.to} is full`);
      }
      // Counted now, so a batch of submissions cannot overshoot the limit; undone for duplicates and failures.
      this.#depth.set(s.to, depth + 1);
      this.#uncommitted.set(s.to, (this.#uncommitted.get(s.to) ?? 0) + 1);
    } catch (e) {
      this.#metrics.refused.inc({ code: e instanceof EvsealError ? e.code : 'ERR_INTERNAL' });
      throw e;
    }
    // wrapped, so that awaiting the admission does not wait for the commit
    return {
      result: new Promise((resolve, reject) => {
        this.#queue.push({ from, s, t0, resolve, reject });
        this.#schedule();
      }),
    };
  }

  async #depthOf(recipient: string): Promise<number> {
    let depth = this.#depth.get(recipient);
    if (depth === undefined) this.#depth.set(recipient, (depth = await this.#store.depth(recipient)));
    return depth;
  }

  /** Resolves when the flush under way, or else the next one, has ended. */
  #nextFlushEnd(): Promise<void> {
    if (!this.#flushEnded) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#flushEnded = { promise, resolve };
    }
    return this.#flushEnded.promise;
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  /**
   * One commit per turn of the event loop: the submissions gathered, and,
   * when the store can take both in one transaction (GatewayStore.commit),
   * the acknowledgements too. One fsync and one signed tree head for all.
   */
  async #flush(): Promise<void> {
    if (this.#flushing || (this.#queue.length === 0 && !(this.#combined && this.#acks.length > 0))) return;
    this.#flushing = true;
    const batch = this.#queue;
    this.#queue = [];
    const acks = this.#combined ? this.#acks.splice(0) : [];
    const now = this.#now();
    // the store writes these entries; the same function rebuilds them for the audit log
    const delivered = auditFor(now, 'delivered');
    try {
      const items = batch.map((p) => ({
        msg: { msgId: p.s.msgId, sender: p.from.id, recipient: p.s.to, kind: p.s.kind, format: p.s.format, body: p.s.body, expires: p.s.expires, created: now },
        audit: { time: now, sender: p.from.id, recipient: p.s.to, kind: p.s.kind, size: p.s.body.length, msgId: p.s.msgId, outcome: 'accepted' },
      }));
      const { enqueued, acked } =
        acks.length === 0
          ? { enqueued: await this.#store.enqueue(items), acked: [] }
          : batch.length === 0
            ? { enqueued: { results: [], auditIndexes: [] }, acked: await this.#store.ackBatch(acks, delivered) }
            : await this.#store.commit!(items, acks, delivered);
      const { results, auditIndexes } = enqueued;
      const fresh: { index: number; entry: AuditEntry }[] = [];
      auditIndexes.forEach((index, i) => index !== undefined && fresh.push({ index, entry: items[i]!.audit }));
      for (const r of acked) r.removed.forEach((m, i) => fresh.push({ index: r.auditIndexes[i]!, entry: delivered(m) }));
      const head = fresh.length > 0 ? await this.#syncAudit(fresh) : undefined;
      acks.forEach((b, i) => b.resolve(this.#removed(b.recipient, b.seqs, acked[i]!, now, head)));
      const toPush = new Map<string, QueuedMessage[]>();
      batch.forEach((p, i) => {
        const r = results[i]!;
        const idx = auditIndexes[i];
        if (r.duplicate) this.#addDepth(p.s.to, -1);
        else {
          this.#metrics.routed.inc({ format: p.s.format });
          this.#metrics.queued.inc();
          // only for a recipient attached here: #deliverFresh has nothing to do for the others
          if (this.#sinks.has(p.s.to)) {
            const m: QueuedMessage = { seq: r.seq, ...items[i]!.msg, attempts: 0 };
            const list = toPush.get(p.s.to);
            if (list) list.push(m);
            else toPush.set(p.s.to, [m]);
          }
        }
        this.#metrics.acceptLatency.observe(Number(process.hrtime.bigint() - p.t0) / 1e9);
        p.resolve({ seq: r.seq, duplicate: r.duplicate, receipt: idx === undefined ? undefined : this.#audit.receipt(idx, head!) });
      });
      for (const [to, msgs] of toPush) this.#deliverFresh(to, msgs);
    } catch (e) {
      this.#log.error({ err: (e as Error).message }, 'commit failed');
      for (const p of batch) {
        this.#addDepth(p.s.to, -1);
        p.reject(new EvsealError('ERR_STATE', 'message could not be stored'));
      }
      for (const b of acks) b.reject(new EvsealError('ERR_STATE', 'acknowledgement could not be stored'));
    } finally {
      for (const p of batch) {
        const n = (this.#uncommitted.get(p.s.to) ?? 1) - 1;
        if (n > 0) this.#uncommitted.set(p.s.to, n);
        else this.#uncommitted.delete(p.s.to);
      }
      this.#flushing = false;
      const ended = this.#flushEnded;
      this.#flushEnded = undefined;
      ended?.resolve();
      if (this.#queue.length > 0 || (this.#combined && this.#acks.length > 0)) this.#schedule();
    }
  }

  /**
   * Hands the entries this router just committed to the audit log and signs
   * a head over them: no read-back of what was just written, no size query.
   */
  #syncAudit(fresh: { index: number; entry: AuditEntry }[]): Promise<TreeHead> {
    if (!this.#audit.committed) return this.#audit.sync();
    this.#audit.committed(fresh);
    return this.#audit.sync(fresh.reduce((n, x) => Math.max(n, x.index + 1), 0));
  }

  /** Drops the depth counts, to be re-read from the store: other nodes write it too (cluster mode). */
  forgetDepths(): void {
    this.#depth.clear();
  }

  #addDepth(recipient: string, n: number): void {
    const d = this.#depth.get(recipient);
    if (d !== undefined) this.#depth.set(recipient, Math.max(0, d + n));
  }

  attach(recipient: string, sink: DeliverySink): () => void {
    const old = this.#sinks.get(recipient);
    if (old) {
      for (const t of old.timers) clearTimeout(t);
      old.unclaim?.();
    }
    const a: Attached = { sink, inflight: [], cursor: 0, pumping: false, again: false, synced: false, timers: new Set(), noticeCursor: 0, noticing: Promise.resolve() };
    this.#sinks.set(recipient, a);
    // watched before the first read, so nothing committed elsewhere in between is missed
    const unwatch = this.#bus?.watch(recipient, () => this.#pump(recipient));
    // One connection per recipient across the cluster, as on one node: the older one is closed.
    a.unclaim = this.#bus?.claim?.(recipient, () => {
      if (this.#sinks.get(recipient) === a) a.sink.evict?.();
    });
    this.#pump(recipient);
    this.#sendNotices(recipient, a);
    return () => {
      if (this.#sinks.get(recipient) === a) {
        for (const t of a.timers) clearTimeout(t);
        this.#sinks.delete(recipient);
        unwatch?.();
        a.unclaim?.();
      }
    };
  }

  /**
   * Sends the notices stored for `recipient` that this connection has not
   * been sent yet. They stay stored until the endpoint acknowledges them
   * (notice-ack), so a notice lost with a connection is sent again on the
   * next one: at least once, like deliveries.
   */
  #sendNotices(recipient: string, a: Attached): void {
    const notice = a.sink.notice;
    if (!notice) return;
    a.noticing = a.noticing
      .then(async () => {
        if (this.#sinks.get(recipient) !== a) return;
        const ns = await this.#store.notices(recipient, a.noticeCursor);
        if (this.#sinks.get(recipient) !== a) return;
        for (const n of ns) {
          notice({ seq: n.seq, type: n.type, msgId: n.msgId, peer: n.peer, reason: n.reason });
          a.noticeCursor = n.seq;
        }
      })
      .catch((e: unknown) => this.#log.error({ err: (e as Error).message, recipient }, 'notice delivery failed'));
  }

  /**
   * Messages of `recipient` just committed by this router, in seq order:
   * pushed as they are when the sink is synced and has room, else read back
   * by the pump.
   */
  #deliverFresh(recipient: string, msgs: QueuedMessage[]): void {
    const a = this.#sinks.get(recipient);
    if (!a) return;
    if (!a.synced || a.pumping) return this.#pump(recipient);
    const now = this.#now();
    for (const m of msgs) {
      if (a.inflight.length >= a.sink.window) {
        a.synced = false; // the rest waits in the store for room
        return;
      }
      a.cursor = m.seq;
      if (m.expires <= now) continue; // as pending() skips it; the expiry sweep removes it
      a.inflight.push(m.seq);
      a.sink.push(m);
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
    if (a.synced) return;
    a.pumping = true;
    void (async () => {
      let caughtUp = false;
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
          // a commit for this recipient that landed during the read set `again`: read once more
          else caughtUp = !a.again;
        } while (a.again);
        a.synced = this.#exclusive && caughtUp;
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

  /**
   * Acknowledgements that arrive in one tick share one transaction and one
   * signed tree head: with the submissions when the store can (#flush), else
   * of their own.
   */
  #remove(recipient: string, seqs: number[]): Promise<Receipt[]> {
    return new Promise((resolve, reject) => {
      this.#acks.push({ recipient, seqs, resolve, reject });
      if (this.#combined) this.#schedule();
      else if (this.#acks.length === 1) setImmediate(() => void this.#flushAcks());
    });
  }

  async #flushAcks(): Promise<void> {
    const batch = this.#acks.splice(0);
    if (batch.length === 0) return;
    const now = this.#now();
    // the store writes these entries; the same function rebuilds them for the audit log below
    const audit = auditFor(now, 'delivered');
    let results;
    try {
      results = await this.#store.ackBatch(batch, audit);
    } catch (e) {
      this.#log.error({ err: (e as Error).message }, 'acknowledgement failed');
      for (const b of batch) b.reject(new EvsealError('ERR_STATE', 'acknowledgement could not be stored'));
      return;
    }
    const head = results.some((r) => r.removed.length > 0)
      ? await this.#syncAudit(results.flatMap((r) => r.removed.map((m, i) => ({ index: r.auditIndexes[i]!, entry: audit(m) }))))
      : undefined;
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

  /**
   * A failed delivery of a message pushed to `recipient`'s connection. Any
   * other seq (another recipient's message, one never pushed here, one
   * already acknowledged or pushed to an older connection) is ignored: a
   * connection can neither count attempts against nor fetch a message that
   * is not in flight to it.
   */
  async failed(recipient: string, seq: number, reason: string): Promise<void> {
    const a = this.#sinks.get(recipient);
    if (!a || !a.inflight.includes(seq)) return;
    a.inflight = a.inflight.filter((s) => s !== seq);
    const attempts = await this.#store.addAttempt(recipient, seq);
    if (attempts >= this.#limits.maxAttempts) {
      const now = this.#now();
      const m = await this.#store.deadLetter(recipient, seq, reason, auditFor(now, 'dead-lettered'), now);
      if (m) {
        await this.#audit.sync();
        this.#metrics.deadLettered.inc();
        this.#addDepth(recipient, -1);
        this.#metrics.queued.dec();
        this.#log.warn({ msgId: m.msgId, sender: m.sender, recipient, attempts }, 'message dead-lettered');
        const senderSink = this.#sinks.get(m.sender);
        if (senderSink) this.#sendNotices(m.sender, senderSink);
      }
      this.#pump(recipient);
      return;
    }
    // Retry this message alone after a pause; it counts against the window meanwhile.
    a.inflight.push(seq);
    a.inflight.sort((x, y) => x - y);
    const t = setTimeout(() => {
      a.timers.delete(t);
      if (this.#sinks.get(recipient) !== a) return;
      this.#store.message(seq).then(
        (m) => {
          if (m && m.recipient === recipient && this.#sinks.get(recipient) === a) a.sink.push(m);
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

  /**
   * Drops expired messages and tells their senders (when connected), and
   * notices no endpoint acknowledged within the longest message lifetime.
   */
  async expire(): Promise<number> {
    const now = this.#now();
    await this.#store.forgetNotices(now - this.#limits.maxLifetimeMs);
    const gone = await this.#store.expire(now, auditFor(now, 'expired'));
    if (gone.length === 0) return 0;
    await this.#audit.sync();
    this.#metrics.expired.inc(gone.length);
    for (const m of gone) this.#addDepth(m.recipient, -1);
    this.#metrics.queued.dec(gone.length);
    for (const sender of new Set(gone.map((m) => m.sender))) {
      const s = this.#sinks.get(sender);
      if (s) this.#sendNotices(sender, s);
    }
    return gone.length;
  }

  /** Stops accepting, and waits until every batch in progress is committed. */
  async drain(): Promise<void> {
    this.#closed = true;
    while (this.#flushing || this.#scheduled || this.#queue.length > 0 || (this.#combined && this.#acks.length > 0)) {
      if (!this.#flushing && !this.#scheduled) await this.#flush();
      else await new Promise((r) => setTimeout(r, 5));
    }
    await this.#flushAcks();
    for (const a of this.#sinks.values()) for (const t of a.timers) clearTimeout(t);
  }
}
