import { randomUUID } from 'node:crypto';
import { connect, headers, nanos, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { b64u } from '../../core/base64url.js';
import { utf8 } from '../../core/bytes.js';
import { EvsealError } from '../../core/errors.js';
import { PACKAGE_ID_RE } from '../firmware/packages.js';
import type { PackageReplication } from '../firmware/replication.js';
import { parseOwnerEvent, parseParkedReport, type RolloutManager } from '../firmware/rollouts.js';
import type { RouterBus } from '../router.js';
import type { GatewayTrust } from '../trust.js';
import type { PostgresStore } from '../store/postgres.js';

export interface BusNames {
  /** the one JetStream stream */
  stream: string;
  /** subjects are PREFIX.mail.<recipient token> */
  prefix: string;
}

export const DEFAULT_BUS_NAMES: BusNames = { stream: 'EVSEAL_MAIL', prefix: 'evseal' };

export interface BusOptions extends Partial<BusNames> {
  /** nats://host:port */
  url: string;
  store: PostgresStore;
  log: Logger;
  /** how long the stream keeps a routing record (ms) */
  maxAgeMs?: number;
  /** how often each node sweeps the outbox for rows nobody published (a node died between commit and publish) */
  sweepMs?: number;
  /** a row younger than this is left to the node that wrote it */
  sweepGraceMs?: number;
  /** a label for this node in NATS (connection name) */
  node?: string;
}

/** The subject token of a recipient id: base64url of its UTF-8, so '.', '*' and '>' never reach a subject. */
export const recipientToken = (id: string): string => b64u(utf8(id));

/**
 * Routing between gateway nodes on NATS JetStream (docs/cluster.md).
 *
 * One stream holds `PREFIX.mail.*`: one subject per recipient. When
 * messages commit in PostgreSQL, their outbox rows are published as one
 * record per recipient on its subject, naming the highest seq, which is
 * also the JetStream message id; once the stream acknowledges, the rows are
 * deleted. The node that holds the recipient's connection is subscribed
 * to that subject and, on a record, reads the mailbox from PostgreSQL after
 * its cursor: seqs are handed out in commit order, so that read sees the
 * messages named and everything committed before them, and a record
 * repeated (a republished outbox row) or arriving out of order reads
 * nothing new. A node that dies between commit and
 * publish leaves its outbox rows; any node's sweep publishes them.
 */
export class JetStreamBus implements RouterBus {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #store: PostgresStore;
  readonly #log: Logger;
  readonly #names: BusNames;
  readonly #watched = new Map<string, { sub: Subscription; wake: () => void }>();
  readonly #sweep: NodeJS.Timeout;
  readonly #graceMs: number;
  #closed = false;
  #publishing = 0;

  private constructor(nc: NatsConnection, names: BusNames, o: BusOptions) {
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#store = o.store;
    this.#log = o.log;
    this.#names = names;
    this.#graceMs = o.sweepGraceMs ?? 2000;
    this.#sweep = setInterval(() => void this.sweep(), o.sweepMs ?? 1000);
    this.#sweep.unref();
    o.store.onQueued = (rows) => void this.#publishFresh(rows);
    void this.#watchStatus();
  }

  static async connect(o: BusOptions): Promise<JetStreamBus> {
    const names = { stream: o.stream ?? DEFAULT_BUS_NAMES.stream, prefix: o.prefix ?? DEFAULT_BUS_NAMES.prefix };
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: o.url, name: o.node ?? 'evseal-gateway', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (e) {
      throw new EvsealError('ERR_STATE', `NATS at ${o.url}: ${(e as Error).message}`);
    }
    try {
      await ensureStream(nc, names, o.maxAgeMs ?? 24 * 3600 * 1000);
    } catch (e) {
      await nc.close();
      throw new EvsealError('ERR_STATE', `JetStream stream ${names.stream}: ${(e as Error).message}`);
    }
    return new JetStreamBus(nc, names, o);
  }

  subject(recipient: string): string {
    return `${this.#names.prefix}.mail.${recipientToken(recipient)}`;
  }

  /**
   * Publishes routing records and waits for the stream's acknowledgement;
   * returns the seqs covered. One record per recipient per call, naming the
   * highest seq: a mailbox read after it sees the lower ones too (seqs are
   * in commit order), so one record stands for the whole group. Its
   * JetStream message id is that seq, unique across the cluster.
   */
  async publish(rows: { seq: number; recipient: string }[]): Promise<number[]> {
    const groups = new Map<string, number[]>();
    for (const r of rows) {
      const g = groups.get(r.recipient);
      if (g) g.push(r.seq);
      else groups.set(r.recipient, [r.seq]);
    }
    const done: number[] = [];
    this.#publishing++;
    try {
      const list = [...groups];
      const acks = await Promise.allSettled(
        list.map(([recipient, seqs]) => {
          const top = Math.max(...seqs);
          return this.#js.publish(this.subject(recipient), utf8(JSON.stringify({ seq: top })), { msgID: String(top) });
        }),
      );
      acks.forEach((a, i) => {
        if (a.status === 'fulfilled') done.push(...list[i]![1]);
        else this.#log.warn({ err: (a.reason as Error).message }, 'bus publish failed; the outbox sweep retries');
      });
    } finally {
      this.#publishing--;
    }
    return done;
  }

  async #publishFresh(rows: { seq: number; recipient: string }[]): Promise<void> {
    try {
      await this.#store.deleteOutbox(await this.publish(rows));
    } catch (e) {
      if (!this.#closed) this.#log.warn({ err: (e as Error).message }, 'outbox publish failed; the sweep retries');
    }
  }

  /** Publishes outbox rows older than the grace period (another node's, or ours after a failure). */
  async sweep(): Promise<number> {
    if (this.#closed) return 0;
    try {
      return await this.#store.drainOutbox(Date.now() - this.#graceMs, 500, (rows) => this.publish(rows));
    } catch (e) {
      if (!this.#closed) this.#log.warn({ err: (e as Error).message }, 'outbox sweep failed');
      return 0;
    }
  }

  watch(recipient: string, wake: () => void): () => void {
    this.#watched.get(recipient)?.sub.unsubscribe();
    const sub = this.#nc.subscribe(this.subject(recipient), { callback: (err) => (err ? this.#log.warn({ err: err.message }, 'bus subscription failed') : wake()) });
    const w = { sub, wake };
    this.#watched.set(recipient, w);
    // Once the server has the subscription, read once more: a record published before it arrived was not seen.
    this.#nc.flush().then(wake, () => undefined);
    return () => {
      if (this.#watched.get(recipient) !== w) return;
      this.#watched.delete(recipient);
      sub.unsubscribe();
    };
  }

  /**
   * One connection per recipient across the cluster. A node that attaches a
   * recipient announces it on PREFIX.attach.<recipient> (plain NATS, not the
   * stream) with the database server's time, one clock for all nodes; a node
   * holding an older connection of that recipient evicts it, as one node
   * replaces an older connection. Until the announcement arrives (a few
   * milliseconds) both may be pushed the same message: acknowledgements are
   * idempotent, and the endpoint's replay window refuses the second open.
   */
  claim(recipient: string, evict: () => void): () => void {
    const subject = `${this.#names.prefix}.attach.${recipientToken(recipient)}`;
    const me = { id: randomUUID(), at: undefined as bigint | undefined };
    const heard: bigint[] = [];
    let done = false;
    const consider = (at: bigint): void => {
      if (done) return;
      if (me.at === undefined) heard.push(at);
      else if (at > me.at) {
        done = true;
        evict();
      }
    };
    const sub = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const c = JSON.parse(msg.string()) as { id?: unknown; at?: unknown };
          if (c.id !== me.id && typeof c.at === 'string' && /^\d{1,20}$/.test(c.at)) consider(BigInt(c.at));
        } catch {
          // not a claim: ignored
        }
      },
    });
    // Subscribed before the time is taken, so a newer claim of another node is never missed.
    void this.#nc
      .flush()
      .then(() => this.#store.clockMicros())
      .then((at) => {
        if (done || this.#closed) return;
        me.at = at;
        this.#nc.publish(subject, utf8(JSON.stringify({ id: me.id, at: at.toString() })));
        for (const h of heard.splice(0)) consider(h);
      })
      .catch((e: unknown) => {
        if (!this.#closed) this.#log.warn({ err: (e as Error).message }, 'connection claim failed; an older connection on another node stays open');
      });
    return () => {
      done = true;
      if (!this.#closed) sub.unsubscribe();
    };
  }

  /**
   * CRLs across nodes: a newer CRL one node takes in (an endpoint's
   * publish-crl, or a --crl file it watches) is stored in PostgreSQL, then
   * announced on PREFIX.crl; every node then loads the stored CRLs, and one
   * that is newer for it drops the connections it revokes, as on one node.
   * A node's own announcement comes back to it and changes nothing.
   */
  shareCrls(trust: GatewayTrust): void {
    const subject = `${this.#names.prefix}.crl`;
    this.#nc.subscribe(subject, { callback: (err) => (err ? undefined : void this.#loadCrls(trust)) });
    trust.on('crl', (anchor: string) => {
      if (!this.#closed) this.#nc.publish(subject, utf8(anchor));
    });
  }

  /**
   * Firmware rollouts across nodes: a rollout's state lives on the node that
   * started it, while its stations report to whichever node they are
   * connected to and its owner may be connected to another. A report that
   * belongs to no rollout a node holds is parked in the store and announced
   * on PREFIX.firmware; the node holding the rollout takes it at once (a
   * missed announcement is caught by that node's next look at the store).
   * Each event of a rollout is published on PREFIX.rollout-event for the
   * node holding the owner's connection. A node's own publications come
   * back to it: a parked report then matches nothing, and an event it sent
   * is skipped.
   */
  shareFirmware(rollouts: Pick<RolloutManager, 'takeParked' | 'onParked' | 'emitLocal' | 'onEvent'>): void {
    const reports = `${this.#names.prefix}.firmware`;
    const events = `${this.#names.prefix}.rollout-event`;
    const me = randomUUID();
    this.#nc.subscribe(reports, {
      callback: (err, msg) => {
        if (err) return;
        const p = parseParkedReport(msg.string());
        if (p) void rollouts.takeParked(p).catch((e: unknown) => this.#log.warn({ err: (e as Error).message }, 'parked firmware report not taken; the next look at the store retries'));
        else this.#log.warn({ subject: reports }, 'malformed firmware report on the bus ignored');
      },
    });
    this.#nc.subscribe(events, {
      callback: (err, msg) => {
        if (err || msg.headers?.get('evseal-node') === me) return;
        const e = parseOwnerEvent(msg.string());
        if (e) rollouts.emitLocal(e.owner, e.event);
        else this.#log.warn({ subject: events }, 'malformed rollout event on the bus ignored');
      },
    });
    rollouts.onParked = (p) => {
      if (!this.#closed) this.#nc.publish(reports, utf8(JSON.stringify(p)));
    };
    rollouts.onEvent = (owner, event) => {
      if (this.#closed) return;
      const h = headers();
      h.set('evseal-node', me);
      this.#nc.publish(events, utf8(JSON.stringify({ owner, event })), { headers: h });
    };
  }

  /**
   * Firmware packages across nodes (firmware/replication.ts): a node that
   * takes in a new package announces it on PREFIX.package, and the others
   * copy it; a deletion is announced the same way, and each node drops its
   * copy once the store confirms it. Missed announcements are caught by
   * each node's sweep.
   */
  sharePackages(replication: Pick<PackageReplication, 'announce' | 'ensure' | 'dropIfDeleted'>): void {
    const subject = `${this.#names.prefix}.package`;
    this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const e = parsePackageAnnouncement(msg.string());
        if (!e) return this.#log.warn({ subject }, 'malformed package announcement on the bus ignored');
        if ('held' in e) void replication.ensure(e.held);
        else void replication.dropIfDeleted(e.deleted).catch((x: unknown) => this.#log.warn({ packageId: e.deleted, err: (x as Error).message }, 'deleted package not dropped; the sweep retries'));
      },
    });
    replication.announce = (e) => {
      if (!this.#closed) this.#nc.publish(subject, utf8(JSON.stringify(e)));
    };
  }

  async #loadCrls(trust: GatewayTrust): Promise<void> {
    try {
      for (const c of await this.#store.listCrls()) {
        await trust.addCrl(c.pem).catch((e: unknown) => this.#log.warn({ anchor: c.anchor, err: (e as Error).message }, 'stored CRL refused'));
      }
    } catch (e) {
      if (!this.#closed) this.#log.warn({ err: (e as Error).message }, 'CRL reload failed');
    }
  }

  /** After a reconnect to NATS, records published meanwhile were not seen: every attached recipient reads its mailbox again. */
  async #watchStatus(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === 'reconnect') for (const w of this.#watched.values()) w.wake();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    this.#store.onQueued = undefined;
    while (this.#publishing > 0) await new Promise((r) => setTimeout(r, 5));
    await this.#nc.drain().catch(() => undefined);
  }
}

/** A package announcement as a node published it, or undefined if it is not one. */
export function parsePackageAnnouncement(text: string): { held: string } | { deleted: string } | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const keys = Object.keys(v);
    if (keys.length !== 1) return undefined;
    const id = v[keys[0]!];
    if (typeof id !== 'string' || !PACKAGE_ID_RE.test(id)) return undefined;
    return keys[0] === 'held' ? { held: id } : keys[0] === 'deleted' ? { deleted: id } : undefined;
  } catch {
    return undefined;
  }
}

/** Creates the stream if it is missing (the first node to start does it; the others find it). */
async function ensureStream(nc: NatsConnection, names: BusNames, maxAgeMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const subjects = [`${names.prefix}.mail.*`];
  try {
    const info = await jsm.streams.info(names.stream);
    if (!subjects.every((s) => info.config.subjects?.includes(s))) throw new Error(`exists with other subjects (${info.config.subjects?.join(', ')})`);
    return;
  } catch (e) {
    if (!/not found/i.test((e as Error).message)) throw e;
  }
  await jsm.streams.add({
    name: names.stream,
    subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(maxAgeMs),
    duplicate_window: nanos(120_000),
  });
}

/** Removes a stream (the tests' cleanup). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
