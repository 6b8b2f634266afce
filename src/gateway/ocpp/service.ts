import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import ocpp from 'ocpp-rpc';
import type { GatewayContext } from '../context.js';
import { STATION_ID, authenticateStation, type AuthResult, type Refusal } from './auth.js';
import { Csms, type Handler } from './csms.js';
import { stationSink } from './delivery.js';
import { routeSealedFields } from './sealed-fields.js';
import { EvsealError } from '../../core/errors.js';
import { actionLabel } from './frames.js';
import { ConnectionGuard } from './limits.js';
import { LoginGuard } from './login-guard.js';
import { refuseUpgrade } from '../upgrade-refusal.js';
import { createProxy, type OpenedStation } from './proxy.js';
import { OCPP_PROTOCOLS, isOcppProtocol, ocppValidators, type OcppProtocol } from './validators.js';
import type { Budgets } from '../token-buckets.js';

export interface OcppServiceOptions {
  /** Proxy mode: forward every frame to `${upstream}/<stationId>` instead of the built-in CSMS. */
  upstream?: string;
  /** Endpoint id of the CA service that SignCertificate CSRs are routed to; without it they are Rejected. */
  caService?: string;
  /** Largest WebSocket message accepted; a larger one closes the connection (1009). */
  maxFrameBytes: number;
  /** Bad frames in a row (malformed, schema-invalid, over the rate) before the connection is closed. */
  maxBadMessages: number;
  /** Sustained CALLs per second per connection; more are answered with a CALLERROR. */
  callsPerSecond: number;
  /** The server in front is TLS (security profiles 2 and 3; client certificates are checked when presented). */
  tls: boolean;
  /** Timeout of the gateway's own CALLs to a charger (deliveries), default 30 s. */
  callTimeoutMs?: number;
  /** Heartbeat interval the built-in CSMS gives in BootNotification, default 300 s. */
  heartbeatIntervalSec?: number;
  /** Failed logins per station id and source address (login-guard.ts): the burst, its refill per minute, and logins checked at once overall. */
  logins: { failureBurst: number; failuresPerMinute: number; maxPending: number; shared?: Budgets };
}

export interface OcppService {
  /** For an HTTP upgrade of /ocpp/<stationId>: authenticates, then serves or refuses. Never throws. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open station connections. */
  connections(): number;
  disconnect(stationId: string): void;
  close(): Promise<void>;
}

/** The part of ocpp-rpc's RPCServerClient used here (its typings leave events and sessions untyped). */
interface ServerClient {
  session: Record<string, unknown>;
  protocol: string | undefined;
  handle(method: string, handler: (o: { params: unknown }) => Promise<unknown>): void;
  handle(wildcard: (o: { method: string; params: unknown }) => Promise<unknown>): void;
  call(method: string, params: unknown): Promise<unknown>;
  close(o: { code: number; reason: string }): Promise<unknown>;
  on(event: string, fn: (e: never) => void): void;
  once(event: string, fn: () => void): void;
}

/** The station id of an /ocpp/<stationId> request path, if well-formed. */
export function stationIdFromUrl(url: string | undefined): string | undefined {
  const m = /^\/ocpp\/([^/?#]+)(?:\?.*)?$/.exec(url ?? '');
  if (!m) return undefined;
  try {
    const id = decodeURIComponent(m[1]!);
    return STATION_ID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function offeredProtocols(header: string | undefined): string[] {
  return (header ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * The gateway's OCPP-J side: chargers connect to /ocpp/<stationId> with
 * ocpp1.6, ocpp2.0.1 or ocpp2.1. Every connection is authenticated first
 * (auth.ts), then served by the built-in CSMS (ocpp-rpc in strict mode) or
 * proxied to an upstream CSMS. In both modes the station is the delivery sink
 * for its own mailbox, and evseal carriers ride in DataTransfer
 * (docs/ocpp-carriers.md). Logs carry actions, ids and reasons, never payloads.
 */
export function createOcppService(ctx: GatewayContext, o: OcppServiceOptions): OcppService {
  const log = ctx.log.child({ component: 'ocpp' });
  const c = { ...ctx, log };
  const callTimeoutMs = o.callTimeoutMs ?? 30_000;
  const live = new Map<string, { close(code: number, reason: string): void; detach(): void }>();
  let closing = false;

  /**
   * Makes a newly opened connection the station's one connection (closing an
   * older one). `attach` then makes it the delivery sink of the station's
   * mailbox; `unregister`, called when the connection closes, undoes both.
   */
  function register(s: OpenedStation): { attach(): void; unregister(): void } {
    const prev = live.get(s.stationId);
    prev?.detach();
    prev?.close(1000, 'replaced by a newer connection');
    const sink = stationSink(c, s.stationId, s.link);
    let detachRouter: (() => void) | undefined;
    let gone = false;
    const entry = {
      close: s.close,
      detach() {
        gone = true;
        sink.close();
        detachRouter?.();
        detachRouter = undefined;
      },
    };
    live.set(s.stationId, entry);
    ctx.metrics.connections.inc({ kind: 'station' });
    log.info({ stationId: s.stationId, protocol: s.protocol }, 'station connected');
    return {
      attach() {
        if (!gone && detachRouter === undefined) {
          detachRouter = ctx.router.attach(s.stationId, { ...sink, evict: () => s.close(1000, 'replaced by a newer connection') });
        }
      },
      unregister() {
        entry.detach();
        if (live.get(s.stationId) === entry) live.delete(s.stationId);
        ctx.metrics.connections.dec({ kind: 'station' });
        log.info({ stationId: s.stationId }, 'station disconnected');
      },
    };
  }

  type Reason = Refusal | 'subprotocol' | 'upstream' | 'closing' | 'internal' | 'throttled' | 'busy';
  function refuse(req: IncomingMessage, socket: Duplex, status: number, reason: Reason, stationId?: string, retryAfterSec?: number): void {
    ctx.metrics.connectionsRefused.inc({ kind: 'station', reason });
    // A throttled flood would flood the log too: its refusals are counted, and logged at debug.
    const level = reason === 'throttled' || reason === 'busy' ? 'debug' : 'warn';
    log[level]({ stationId, reason, remote: req.socket.remoteAddress }, 'station connection refused');
    refuseUpgrade(socket, status, retryAfterSec);
  }

  const logins = new LoginGuard(o.logins);

  // ---- built-in CSMS

  const csms = o.upstream === undefined ? new Csms(c, o) : undefined;
  const admitted = new WeakMap<IncomingMessage, { stationId: string }>();
  const rpc =
    o.upstream === undefined
      ? new ocpp.RPCServer({
          protocols: [...OCPP_PROTOCOLS],
          strictMode: true,
          strictModeValidators: ocppValidators(),
          maxBadMessages: o.maxBadMessages,
          callTimeoutMs,
          respondWithDetailedErrors: false,
          wssOptions: { maxPayload: o.maxFrameBytes },
        })
      : undefined;

  if (rpc && csms) {
    // Authentication already happened in handleUpgrade; this only lets admitted requests through.
    rpc.auth((accept, reject, handshake) => {
      const a = admitted.get(handshake.request);
      if (a) accept(a);
      else reject(401, 'Unauthorized');
    });
    rpc.on('error', (e: Error) => log.error({ err: e.message }, 'ocpp server error'));
    rpc.on('client', (client: ServerClient) => serveClient(client, csms));
  }

  function serveClient(client: ServerClient, csms: Csms): void {
    const { stationId } = client.session as { stationId: string };
    const protocol = client.protocol as OcppProtocol;
    const guard = new ConnectionGuard(o);
    const closeWith = (code: number, reason: string) => void client.close({ code, reason });
    const strike = (kind: string) => {
      ctx.metrics.badMessages.inc({ kind });
      if (guard.strike()) closeWith(1002, 'too many bad messages');
    };

    const serve = (action: string, fn: Handler | undefined) => async ({ params }: { params: unknown }) => {
      const verdict = guard.admit();
      if (verdict !== 'ok') {
        ctx.metrics.badMessages.inc({ kind: 'rate' });
        if (verdict === 'close') closeWith(1008, 'rate limit exceeded');
        throw new ocpp.RPCGenericError('rate limit exceeded');
      }
      ctx.metrics.ocppCalls.inc({ protocol, action: actionLabel(protocol, action) });
      log.debug({ stationId, action }, 'ocpp call');
      if (!fn) throw new ocpp.RPCNotImplementedError(`${action} is not handled by the built-in CSMS`);
      if (action !== 'DataTransfer') {
        try {
          await routeSealedFields(ctx, stationId, params);
        } catch (e) {
          if (!(e instanceof EvsealError)) throw e;
          // The station must not take the CALLRESULT as covering sealed parts that were not stored.
          log.info({ stationId, action, code: e.code }, 'sealed fields refused');
          throw new ocpp.RPCGenericError(`sealed fields not accepted: ${e.code}`);
        }
      }
      try {
        return await fn(params as Record<string, unknown>);
      } catch (e) {
        log.error({ stationId, action, err: (e as Error).message }, 'ocpp handler failed');
        throw new ocpp.RPCInternalError();
      }
    };
    const station = register({
      stationId,
      protocol,
      link: { protocol, call: (action, params) => client.call(action, params) },
      close: closeWith,
    });
    // Handlers go on at once (calls may arrive in the next tick). Deliveries
    // wait for an accepted BootNotification: OCPP wants the CSMS silent until
    // then, and a station that booted on an earlier connection does not boot again.
    for (const [action, fn] of csms.handlers(protocol, stationId, () => station.attach())) client.handle(action, serve(action, fn));
    client.handle(({ method, params }) => serve(method, undefined)({ params }));

    client.on('badMessage', () => strike('malformed'));
    client.on('strictValidationFailure', (e: { outbound: boolean; method: string }) => {
      if (!e.outbound) strike('invalid');
      else log.error({ stationId, action: e.method }, 'gateway produced a schema-invalid frame');
    });
    client.on('socketError', (e: Error & { code?: string }) => {
      if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') ctx.metrics.badMessages.inc({ kind: 'oversized' });
      log.info({ stationId, err: e.message }, 'station socket error');
    });

    void csms.hasBooted(stationId).then(
      (booted) => booted && station.attach(),
      (e: unknown) => log.error({ stationId, err: (e as Error).message }, 'station state unreadable'),
    );
    client.once('close', () => {
      station.unregister();
      void csms.release(stationId);
    });
  }

  // ---- proxy

  const proxy = o.upstream === undefined ? undefined : createProxy(c, { upstream: o.upstream, maxFrameBytes: o.maxFrameBytes, maxBadMessages: o.maxBadMessages, callsPerSecond: o.callsPerSecond, callTimeoutMs }, register);

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const stationId = stationIdFromUrl(req.url);
    if (stationId === undefined) return refuse(req, socket, 400, 'bad-request');
    if (closing) return refuse(req, socket, 503, 'closing', stationId);
    const offered = offeredProtocols(req.headers['sec-websocket-protocol']);
    if (!offered.some(isOcppProtocol)) return refuse(req, socket, 400, 'subprotocol', stationId);
    const gate = logins.admit(req.socket.remoteAddress, stationId);
    if (!gate.ok) return refuse(req, socket, gate.status, gate.status === 429 ? 'throttled' : 'busy', stationId, gate.retryAfterSec);
    let a: AuthResult;
    try {
      // in a cluster, the budget spent on every node
      const wait = await logins.sharedWait(req.socket.remoteAddress, stationId);
      if (wait > 0) {
        void gate.done(false);
        return refuse(req, socket, 429, 'throttled', stationId, wait);
      }
      a = await authenticateStation(await ctx.store.getStation(stationId), stationId, req, o.tls);
    } catch (e) {
      void gate.done(false); // a failure of the gateway is not a failed login
      throw e;
    }
    await gate.done(!a.ok);
    if (!a.ok) return refuse(req, socket, a.reason === 'bad-request' ? 400 : 401, a.reason, stationId);
    if (socket.destroyed) return;
    log.debug({ stationId, profile: a.profile }, 'station authenticated');
    if (proxy) {
      const r = await proxy.accept(req, socket, head, stationId, offered);
      if (r) refuse(req, socket, r.status, 'upstream', stationId);
    } else {
      admitted.set(req, { stationId });
      await rpc!.handleUpgrade(req, socket as Parameters<NonNullable<typeof rpc>['handleUpgrade']>[1], head);
    }
  }

  return {
    handleUpgrade(req, socket, head) {
      // A reset while the request is being authenticated must not become an uncaught error.
      socket.on('error', (e) => log.debug({ err: e.message }, 'upgrade socket error'));
      upgrade(req, socket, head).catch((e: unknown) => {
        log.error({ err: (e as Error).message }, 'station upgrade failed');
        refuse(req, socket, 500, 'internal');
      });
    },
    connections: () => live.size,
    disconnect(stationId) {
      live.get(stationId)?.close(1000, 'disconnected by the operator');
    },
    async close() {
      closing = true;
      for (const s of live.values()) s.close(1001, 'gateway shutting down');
      await rpc?.close({ code: 1001 });
      await proxy?.close();
    },
  };
}
