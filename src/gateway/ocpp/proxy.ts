import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import ocpp from 'ocpp-rpc';
import WebSocket, { WebSocketServer } from 'ws';
import type { GatewayContext } from '../context.js';
import { EVSEAL_VENDOR, handleCarrier } from './carriers.js';
import type { StationLink } from './delivery.js';
import { CALL, CALLERROR, CALLRESULT, actionLabel, callErrorFrame, parseFrame, rpcErrorCode, validatePayload } from './frames.js';
import { ConnectionGuard } from './limits.js';
import { mayCarrySealedFields, routeSealedFields } from './sealed-fields.js';
import { EvsealError } from '../../core/errors.js';
import { isOcppProtocol, type OcppProtocol } from './validators.js';

export interface ProxyOptions {
  upstream: string;
  maxFrameBytes: number;
  maxBadMessages: number;
  callsPerSecond: number;
  callTimeoutMs: number;
}

/** A charger connection the proxy has opened, handed to the service for registration. */
export interface OpenedStation {
  stationId: string;
  protocol: OcppProtocol;
  link: StationLink;
  close(code: number, reason: string): void;
}

/** Ids of the gateway's own CALLs, so their answers can be told from the upstream's. */
const OWN_CALL_PREFIX = 'evseal-';

/** Close codes that may be sent in a close frame (RFC 6455 §7.4), so a peer's code can be passed on. */
function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

function closeBoth(a: WebSocket, code: number, reason: Buffer | string): void {
  if (a.readyState === WebSocket.CONNECTING) a.terminate();
  else if (a.readyState === WebSocket.OPEN) a.close(sendableCode(code) ? code : 1000, reason);
}

/**
 * Proxy mode: each charger gets its own connection to `${upstream}/<stationId>`
 * and every frame is passed on as received, the same bytes and the same
 * text/binary type, in both directions: frames are parsed only to classify
 * them, never re-serialised. The exceptions are evseal's own: a charger's
 * DataTransfer CALL with vendorId org.evseal is answered here, and the
 * charger's answers to the gateway's delivery CALLs (ids prefixed "evseal-")
 * are consumed here. Frames that are not OCPP-J at all are answered with a
 * CALLERROR and count towards the bad-message limit instead of being passed on.
 */
export function createProxy(ctx: GatewayContext, o: ProxyOptions, register: (c: OpenedStation) => { attach(): void; unregister(): void }) {
  const picked = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxFrameBytes, handleProtocols: (_offered, req) => picked.get(req) ?? false });
  const upstreams = new Set<WebSocket>();
  /** upstreams whose charger side is connected */
  const wired = new WeakSet<WebSocket>();

  /** Opens the upstream, then upgrades the charger with the subprotocol the upstream chose. Returns a refusal, or undefined once upgraded. */
  async function accept(req: IncomingMessage, socket: Duplex, head: Buffer, stationId: string, offered: string[]): Promise<{ status: number; reason: string } | undefined> {
    const headers: Record<string, string> = {};
    if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
    const up = new WebSocket(`${o.upstream.replace(/\/+$/, '')}/${encodeURIComponent(stationId)}`, offered, {
      headers,
      maxPayload: o.maxFrameBytes,
      handshakeTimeout: o.callTimeoutMs,
      perMessageDeflate: false,
    });
    upstreams.add(up);
    up.on('close', () => upstreams.delete(up));
    up.on('error', (e) => ctx.log.info({ stationId, err: e.message }, 'upstream connection error'));
    const early: [Buffer, boolean][] = [];
    const outcome = await new Promise<{ status: number } | undefined>((resolve) => {
      up.once('open', () => {
        // the upstream may speak first; keep its frames until the charger side exists
        up.on('message', (data, isBinary) => early.push([data as Buffer, isBinary]));
        resolve(undefined);
      });
      up.once('unexpected-response', (_r, res) => {
        res.resume();
        up.terminate();
        const s = res.statusCode ?? 502;
        resolve({ status: s === 401 || s === 403 || s === 404 ? s : 502 });
      });
      up.once('error', () => resolve({ status: 502 }));
      socket.once('close', () => resolve({ status: 0 }));
    });
    if (outcome) {
      up.terminate();
      return { status: outcome.status, reason: 'upstream' };
    }
    const protocol = up.protocol;
    if (!isOcppProtocol(protocol) || !offered.includes(protocol)) {
      up.close(1002, 'subprotocol');
      return { status: 502, reason: 'upstream' };
    }
    if (socket.destroyed) {
      up.close(1001);
      return undefined;
    }
    picked.set(req, protocol);
    wss.handleUpgrade(req, socket, head, (ws) => wire(ws, up, stationId, protocol, early));
    // A request ws refuses (bad handshake headers) never reaches wire(): drop the upstream with it.
    socket.once('close', () => {
      if (up.readyState === WebSocket.OPEN && !wired.has(up)) up.close(1001);
    });
    return undefined;
  }

  function wire(ws: WebSocket, up: WebSocket, stationId: string, protocol: OcppProtocol, early: [Buffer, boolean][]): void {
    wired.add(up);
    const guard = new ConnectionGuard(o);
    const pending = new Map<string, { action: string; resolve: (r: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
    let closed = false;

    const send = (text: string) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
    };

    const link: StationLink = {
      protocol,
      call(action, params) {
        return new Promise((resolve, reject) => {
          if (closed) return reject(new Error('connection lost'));
          validatePayload(protocol, action, 'req', params);
          const id = OWN_CALL_PREFIX + randomUUID();
          const timer = setTimeout(() => {
            pending.delete(id);
            reject(new ocpp.TimeoutError('Call timeout'));
          }, o.callTimeoutMs);
          pending.set(id, { action, resolve, reject, timer });
          send(JSON.stringify([CALL, id, action, params]));
        });
      },
    };

    // The upstream CSMS owns the boot sequence; deliveries start with the connection.
    const station = register({ stationId, protocol, link, close: (code, reason) => ws.close(code, reason) });
    station.attach();

    up.removeAllListeners('message');
    up.on('message', (data, isBinary) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(data as Buffer, { binary: isBinary });
    });
    for (const [data, isBinary] of early) ws.send(data, { binary: isBinary });
    up.on('close', (code, reason) => closeBoth(ws, code, reason));

    ws.on('error', (e) => {
      if ((e as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') ctx.metrics.badMessages.inc({ kind: 'oversized' });
      ctx.log.info({ stationId, err: e.message }, 'station socket error');
    });
    ws.on('close', (code, reason) => {
      closed = true;
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error('connection lost'));
      }
      pending.clear();
      station.unregister();
      closeBoth(up, code, reason);
    });

    // Frames queued behind a call whose sealed fields are being stored.
    let ordered: Promise<void> = Promise.resolve();
    let routing = 0;
    const strike = (kind: string, closeCode: number) => {
      ctx.metrics.badMessages.inc({ kind });
      if (!guard.strike()) return false;
      ws.close(closeCode, 'too many bad messages');
      return true;
    };

    async function answerCarrier(id: string, params: unknown): Promise<void> {
      try {
        validatePayload(protocol, 'DataTransfer', 'req', params);
      } catch (e) {
        if (!strike('invalid', 1002)) send(callErrorFrame(id, rpcErrorCode(e, protocol), 'invalid DataTransfer'));
        return;
      }
      const p = params as { messageId?: unknown; data?: unknown };
      try {
        send(JSON.stringify([CALLRESULT, id, await handleCarrier(ctx, stationId, p.messageId, p.data)]));
      } catch (e) {
        ctx.log.error({ stationId, err: (e as Error).message }, 'carrier failed');
        send(callErrorFrame(id, 'InternalError', 'internal error'));
      }
    }

    ws.on('message', (raw, isBinary) => {
      const data = raw as Buffer;
      const f = parseFrame(data.toString('utf8'));
      if ('error' in f) {
        if (!strike('malformed', 1002)) send(callErrorFrame(f.id, f.error, f.message));
        return;
      }
      if (f.type === CALL) {
        const verdict = guard.admit();
        if (verdict !== 'ok') {
          ctx.metrics.badMessages.inc({ kind: 'rate' });
          if (verdict === 'close') ws.close(1008, 'rate limit exceeded');
          else send(callErrorFrame(f.id, 'GenericError', 'rate limit exceeded'));
          return;
        }
        ctx.metrics.ocppCalls.inc({ protocol, action: actionLabel(protocol, f.action) });
        if (f.action === 'DataTransfer' && (f.params as { vendorId?: unknown } | null)?.vendorId === EVSEAL_VENDOR) {
          void answerCarrier(f.id, f.params);
          return;
        }
      } else {
        const own = pending.get(f.id);
        if (own) {
          pending.delete(f.id);
          clearTimeout(own.timer);
          if (f.type === CALLERROR) {
            own.reject(ocpp.createRPCError(String(f.code), typeof f.description === 'string' ? f.description : '') as Error);
          } else {
            try {
              validatePayload(protocol, own.action, 'conf', f.result);
              own.resolve(f.result);
            } catch (e) {
              own.reject(e as Error);
            }
          }
          return;
        }
      }
      const forward = (): void => {
        if (up.readyState === WebSocket.OPEN) up.send(data, { binary: isBinary });
      };
      // A call with sealed fields goes upstream (unchanged) only once they are
      // durable at the gateway; frames after it wait, so order is kept.
      if (f.type === CALL && mayCarrySealedFields(data.toString('utf8'))) {
        const id = f.id;
        routing++;
        ordered = ordered
          .then(() => routeSealedFields(ctx, stationId, f.params))
          .then(forward, (e: unknown) => {
            ctx.log.info({ stationId, code: e instanceof EvsealError ? e.code : 'ERR_INTERNAL' }, 'sealed fields refused');
            send(callErrorFrame(id, 'GenericError', `sealed fields not accepted: ${e instanceof EvsealError ? e.code : 'internal error'}`));
          })
          .finally(() => routing--);
      } else if (routing > 0) ordered = ordered.then(forward);
      else forward();
    });
  }

  return {
    accept,
    async close(): Promise<void> {
      for (const ws of wss.clients) ws.close(1001, 'gateway shutting down');
      for (const up of upstreams) closeBoth(up, 1001, 'gateway shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
