// A small in-test Router over the real store, standing in for the gateway's
// router so the OCPP service can be tested on its own. It delivers each
// recipient's mailbox in seq order, respects the sink window, and records
// every failed attempt instead of retrying (tests re-push explicitly).
import type { DeliverySink, Principal, Receipt, Router, Submission } from '../../../src/gateway/context.js';
import type { GatewayStore } from '../../../src/gateway/store/store.js';
import { EvsealError } from '../../../src/core/errors.js';

export class TestRouter implements Router {
  readonly failures: { recipient: string; seq: number; reason: string }[] = [];
  readonly acks: { recipient: string; seq: number }[] = [];
  readonly #sinks = new Map<string, { sink: DeliverySink; cursor: number; inflight: number; tail: Promise<void> }>();
  /** Submissions refused with this code when set (to test refusal paths). */
  refuseWith: EvsealError['code'] | undefined;

  constructor(
    readonly store: GatewayStore,
    readonly now: () => number = Date.now,
  ) {}

  async submit(from: Principal, s: Submission): Promise<{ seq: number; duplicate: boolean; receipt: Receipt | undefined }> {
    if (this.refuseWith) throw new EvsealError(this.refuseWith, 'refused by the test router');
    const now = this.now();
    const { results } = await this.store.enqueue([
      {
        msg: { msgId: s.msgId, sender: from.id, recipient: s.to, kind: s.kind, format: s.format, body: s.body, expires: s.expires, created: now },
        audit: { time: now, sender: from.id, recipient: s.to, kind: s.kind, size: s.body.length, msgId: s.msgId, outcome: 'accepted' },
      },
    ]);
    const r = results[0]!;
    await this.#pump(s.to);
    return { seq: r.seq, duplicate: r.duplicate, receipt: undefined };
  }

  attach(recipient: string, sink: DeliverySink): () => void {
    const a = { sink, cursor: 0, inflight: 0, tail: Promise.resolve() };
    this.#sinks.set(recipient, a);
    void this.#pump(recipient);
    return () => {
      if (this.#sinks.get(recipient) === a) this.#sinks.delete(recipient);
    };
  }

  attached(recipient: string): DeliverySink | undefined {
    return this.#sinks.get(recipient)?.sink;
  }

  async ack(recipient: string, seq: number): Promise<Receipt[]> {
    return this.ackMany(recipient, [seq]);
  }

  async ackMany(recipient: string, seqs: number[]): Promise<Receipt[]> {
    const now = this.now();
    await this.store.ack(recipient, seqs, (m) => ({ time: now, sender: m.sender, recipient, kind: m.kind, size: m.body.length, msgId: m.msgId, outcome: 'delivered' }));
    this.acks.push(...seqs.map((seq) => ({ recipient, seq })));
    const a = this.#sinks.get(recipient);
    if (a) a.inflight = Math.max(0, a.inflight - seqs.length);
    await this.#pump(recipient);
    return [];
  }

  async failed(recipient: string, seq: number, reason: string): Promise<void> {
    this.failures.push({ recipient, seq, reason });
    await this.store.addAttempt(recipient, seq);
    const a = this.#sinks.get(recipient);
    if (a) a.inflight = Math.max(0, a.inflight - 1);
  }

  /** Pushes what fits in the window; runs one at a time per recipient so nothing is pushed twice. */
  #pump(recipient: string): Promise<void> {
    const a = this.#sinks.get(recipient);
    if (!a) return Promise.resolve();
    a.tail = a.tail.then(async () => {
      const room = a.sink.window - a.inflight;
      if (room <= 0) return;
      for (const m of await this.store.pending(recipient, a.cursor, room, this.now())) {
        a.cursor = m.seq;
        a.inflight++;
        a.sink.push(m);
      }
    });
    return a.tail;
  }
}
