import ocpp from 'ocpp-rpc';
import type { DeliverySink, GatewayContext } from '../context.js';
import type { QueuedMessage } from '../store/store.js';
import { createHash } from 'node:crypto';
import { EVSEAL_VENDOR, stationPrincipal } from './carriers.js';
import type { OcppProtocol } from './validators.js';

/** A connected charger as seen by the delivery side: one CALL at a time, answered or failed. */
export interface StationLink {
  readonly protocol: OcppProtocol;
  /** Resolves with the CALLRESULT payload; rejects on CALLERROR, timeout or disconnect. */
  call(action: string, params: Record<string, unknown>): Promise<unknown>;
}

/** The OCPP call that delivers a queued message to a charger, or undefined for a format a charger cannot take. */
export function deliveryCall(m: QueuedMessage, protocol: OcppProtocol): { action: string; params: Record<string, unknown> } | undefined {
  if (m.format === 'envelope') {
    return { action: 'DataTransfer', params: { vendorId: EVSEAL_VENDOR, messageId: 'envelope', data: m.body } };
  }
  if (m.format === 'session') {
    // A ratchet message has no clear header of its own: its metadata travels beside it.
    const data = JSON.stringify({ from: m.sender, kind: m.kind, id: m.msgId, expires: m.expires, body: m.body });
    return { action: 'DataTransfer', params: { vendorId: EVSEAL_VENDOR, messageId: 'session', data } };
  }
  if (m.format === 'ocpp-call') {
    const c = JSON.parse(m.body) as { action: string; payload: Record<string, unknown> }; // checked at submission
    return { action: c.action, params: c.payload };
  }
  if (m.format === 'ocpp-cert') {
    let c: { certificateChain?: unknown; certificateType?: unknown; requestId?: unknown };
    try {
      c = JSON.parse(m.body) as typeof c;
    } catch {
      return undefined;
    }
    if (typeof c?.certificateChain !== 'string') return undefined;
    const params: Record<string, unknown> = { certificateChain: c.certificateChain };
    if (protocol !== 'ocpp1.6' && typeof c.certificateType === 'string') params.certificateType = c.certificateType;
    if (protocol === 'ocpp2.1' && typeof c.requestId === 'number') params.requestId = c.requestId;
    return { action: 'CertificateSigned', params };
  }
  return undefined;
}

function failureReason(e: unknown): string {
  if (e instanceof ocpp.TimeoutError) return 'timeout';
  const code = (e as { rpcErrorCode?: unknown })?.rpcErrorCode;
  return typeof code === 'string' ? `call error ${code}` : 'call failed';
}

type Item = { kind: 'message'; m: QueuedMessage } | { kind: 'notice'; n: { seq: number; type: string; msgId: string; peer: string; reason: string } };

/**
 * The delivery sink of one connected station. OCPP-J allows one CALL in
 * flight per direction, so the window is 1 and messages go strictly in the
 * order the router pushed them. An Accepted answer is the charger's durable
 * acknowledgement (router.ack, even if the connection closed meanwhile);
 * a rejection, a CALLERROR or a timeout is a failed attempt (router.failed).
 * On close, the queued and in-flight messages are simply dropped: they are
 * still in the mailbox and the router pushes them again when the station
 * reattaches.
 */
export function stationSink(ctx: GatewayContext, stationId: string, link: StationLink): DeliverySink & { close(): void } {
  const queue: Item[] = [];
  let running = false;
  let closed = false;

  /** Any CALLRESULT completes an ocpp-call: the station's answer goes back to the endpoint that asked. */
  async function returnResult(m: QueuedMessage, action: string, result: unknown): Promise<void> {
    const body = JSON.stringify({ action, inReplyTo: m.msgId, result });
    const msgId = createHash('sha256').update(`ocpp-result\0${m.msgId}`).digest('base64url').slice(0, 22);
    await ctx.router.submit(stationPrincipal(stationId), { format: 'ocpp-result', to: m.sender, kind: m.kind, msgId, expires: Math.max(m.expires, ctx.now() + 60_000), body });
  }

  async function deliver(m: QueuedMessage): Promise<void> {
    const call = deliveryCall(m, link.protocol);
    let reason: string | undefined;
    let result: { action: string; r: unknown } | undefined;
    if (!call) {
      reason = `format ${m.format} cannot be delivered to a station`;
    } else {
      try {
        const r = (await link.call(call.action, call.params)) as { status?: unknown };
        if (m.format === 'ocpp-call') result = { action: call.action, r };
        else if (r?.status !== 'Accepted') reason = `rejected (${String(r?.status)})`;
      } catch (e) {
        // Lost with the connection: not an attempt against the message. It is
        // still in the mailbox and goes out again when the station reattaches.
        if (closed) return;
        reason = failureReason(e);
      }
    }
    if (reason === undefined) {
      // The station has acted on the call: never repeat it, even if its answer cannot be routed back.
      if (result) await returnResult(m, result.action, result.r).catch((e: unknown) => ctx.log.warn({ stationId, msgId: m.msgId, err: (e as Error).message }, 'ocpp-call result not returned'));
      await ctx.router.ack(stationId, m.seq);
      ctx.log.debug({ stationId, seq: m.seq, msgId: m.msgId }, 'delivered to station');
    } else {
      ctx.log.info({ stationId, seq: m.seq, msgId: m.msgId, reason }, 'delivery to station failed');
      await ctx.router.failed(stationId, m.seq, reason);
    }
  }

  async function pump(): Promise<void> {
    if (running) return;
    running = true;
    try {
      for (let item = queue.shift(); item && !closed; item = queue.shift()) {
        try {
          if (item.kind === 'message') await deliver(item.m);
          else {
            const { seq, ...n } = item.n;
            await link.call('DataTransfer', { vendorId: EVSEAL_VENDOR, messageId: 'notice', data: JSON.stringify(n) });
            // answered: the notice is done with (unanswered, it is sent again when the station next connects)
            await ctx.store.ackNotices(stationId, seq);
          }
        } catch (e) {
          // a router or notice failure must not stop later deliveries
          ctx.log.warn({ stationId, err: (e as Error).message }, 'station delivery step failed');
        }
      }
    } finally {
      running = false;
    }
  }

  return {
    window: 1,
    push(m) {
      if (closed) return;
      queue.push({ kind: 'message', m });
      void pump();
    },
    notice(n) {
      if (closed) return;
      queue.push({ kind: 'notice', n });
      void pump();
    },
    close() {
      closed = true;
      queue.length = 0;
    },
  };
}
