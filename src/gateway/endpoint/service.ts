import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { b64u, fromB64u } from '../../core/base64url.js';
import { EXPORTER_LABEL, NONCE_BYTES, verifyChallenge } from '../../core/challenge.js';
import { envelopeHeader } from '../../core/envelope.js';
import { EvsealError, VerificationFailure } from '../../core/errors.js';
import type { ValidatedIdentity } from '../../core/x509/index.js';
import type { GatewayContext, Principal, Submission } from '../context.js';
import type { QueuedMessage } from '../store/store.js';
import type { GatewayTrust } from '../trust.js';
import type { Directory } from '../directory.js';
import { parseClientFrame, refOf, type ClientFrame } from './frames.js';
import { ocppCallAllowed } from '../route-policy.js';
import { sourceKey } from '../source-key.js';
import { refuseUpgrade } from '../upgrade-refusal.js';
import type { EndpointFirmware } from '../firmware/endpoint.js';

export interface EndpointServiceOptions {
  gatewayId: string;
  /** base64url SPKI of the key that signs receipts, announced in the challenge */
  gatewayKey: string;
  maxFrameBytes: number;
  maxBadMessages: number;
  framesPerSecond: number;
  authTimeoutMs: number;
  /** connections from one source address (IPv6: its /64) still awaiting authentication; more are refused with 429 */
  maxUnauthenticatedPerSource: number;
  /** deliveries in flight per connection */
  window: number;
  /** package upload and rollouts (docs/gateway-protocol.md §3.5); without it those frames are refused */
  firmware?: EndpointFirmware;
}

export interface AuditProofs {
  inclusionProof(index: number, size: number): Promise<string[]>;
  consistencyProof(from: number, to: number): Promise<string[]>;
}

/** WebSocket close codes (docs/gateway-protocol.md §5). */
export const CLOSE = { policy: 1008, tooBig: 1009, shutdown: 1001, authFailed: 4001, revoked: 4003, replaced: 4004, badMessages: 4005 } as const;

interface Conn {
  ws: WebSocket;
  identity: ValidatedIdentity;
  principal: Principal;
  detach: () => void;
}

/**
 * The /endpoint WebSocket service: challenge authentication, then sealed
 * message submission and delivery, the directory and audit proofs. Each
 * frame is validated once (frames.ts); errors go back as error frames with a
 * stable code, and a connection that keeps sending bad frames is closed.
 */
export function createEndpointService(ctx: GatewayContext, trust: GatewayTrust, directory: Directory, audit: AuditProofs, o: EndpointServiceOptions) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxFrameBytes, perMessageDeflate: false });
  const conns = new Map<string, Conn>();
  const log = ctx.log.child({ component: 'endpoint' });

  // Frames produced in one turn of the event loop (a committed batch answers
  // many submissions at once) leave in one write: the socket is corked until
  // the loop comes round again.
  const corked = new WeakSet<WebSocket>();
  const send = (ws: WebSocket, frame: Record<string, unknown>): void => {
    if (ws.readyState !== ws.OPEN) return;
    const sock = (ws as unknown as { _socket?: Duplex })._socket;
    if (sock && !corked.has(ws)) {
      corked.add(ws);
      sock.cork();
      setImmediate(() => {
        corked.delete(ws);
        sock.uncork();
      });
    }
    ws.send(JSON.stringify(frame));
  };

  function refuse(ws: WebSocket, reason: string, code: number = CLOSE.authFailed): void {
    ctx.metrics.connectionsRefused.inc({ kind: 'endpoint', reason });
    send(ws, { t: 'error', code: 'ERR_UNAUTHENTICATED', message: 'authentication failed' });
    ws.close(code, 'authentication failed');
  }

  /** Connections per source address that have not authenticated yet. */
  const unauthenticated = new Map<string, number>();

  /** `authenticated` is called once the connection has authenticated (it no longer counts as waiting). */
  function onConnection(ws: WebSocket, req: IncomingMessage, authenticated: () => void): void {
    const gatewayNonce = randomBytes(NONCE_BYTES);
    const exporter = req.socket instanceof TLSSocket ? new Uint8Array(req.socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0))) : new Uint8Array(0);
    let conn: Conn | undefined;
    let bad = 0;
    let tokens = o.framesPerSecond;
    let last = Date.now();
    const timer = setTimeout(() => refuse(ws, 'auth-timeout'), o.authTimeoutMs);
    timer.unref();
    send(ws, { t: 'challenge', v: 1, gateway: o.gatewayId, key: o.gatewayKey, nonce: b64u(gatewayNonce) });

    ws.on('message', (data, isBinary) => {
      // Token bucket: a flood is answered with errors, then a close.
      const now = Date.now();
      tokens = Math.min(o.framesPerSecond, tokens + ((now - last) / 1000) * o.framesPerSecond);
      last = now;
      let frame: ClientFrame;
      try {
        if (tokens < 1) throw new EvsealError('ERR_LIMIT', 'frame rate limit exceeded');
        tokens -= 1;
        if (isBinary) throw new EvsealError('ERR_INVALID_INPUT', 'binary frames are not part of the protocol');
        frame = parseClientFrame((data as Buffer).toString('utf8'));
      } catch (e) {
        if (!conn) return refuse(ws, 'malformed', CLOSE.policy); // no slack before authentication
        onBad(e, refOf(safeJson(data)));
        return;
      }
      if (!conn) {
        if (frame.t !== 'auth') return refuse(ws, 'not-authenticated', CLOSE.policy);
        clearTimeout(timer);
        conn = authenticate(ws, frame, gatewayNonce, exporter);
        if (conn) authenticated();
        return;
      }
      handle(conn, frame).catch((e: unknown) => onBad(e, 'ref' in frame ? frame.ref : undefined, false));
    });
    ws.on('close', () => {
      clearTimeout(timer);
      if (conn && conns.get(conn.principal.id) === conn) {
        conns.delete(conn.principal.id);
        ctx.metrics.connections.dec({ kind: 'endpoint' });
        conn.detach();
      }
    });
    ws.on('error', () => ws.terminate());

    function onBad(e: unknown, ref: number | undefined, countsAsBad = true): void {
      const code = e instanceof EvsealError ? e.code : 'ERR_INTERNAL';
      if (!(e instanceof EvsealError)) log.error({ err: (e as Error).message }, 'frame handling failed');
      send(ws, { t: 'error', ...(ref === undefined ? {} : { ref }), code, message: e instanceof EvsealError ? e.message : 'internal error' });
      if (countsAsBad) {
        ctx.metrics.badMessages.inc({ kind: 'endpoint' });
        if (++bad > o.maxBadMessages) ws.close(CLOSE.badMessages, 'too many bad messages');
      }
    }
  }

  function authenticate(ws: WebSocket, f: Extract<ClientFrame, { t: 'auth' }>, gatewayNonce: Uint8Array, exporter: Uint8Array): Conn | undefined {
    let identity: ValidatedIdentity;
    try {
      const chain = f.chain.map((c, i) => fromB64u(c, `chain[${i}]`));
      const clientNonce = fromB64u(f.nonce, 'nonce');
      if (clientNonce.length !== NONCE_BYTES) throw new VerificationFailure('malformed', 'client nonce length');
      identity = trust.validate(chain);
      if (identity.role === 'gateway') throw new VerificationFailure('role-mismatch', 'a gateway is not an endpoint');
      if (!verifyChallenge(identity.publicKey, fromB64u(f.sig, 'sig'), clientNonce, gatewayNonce, o.gatewayId, exporter)) {
        throw new VerificationFailure('bad-signature', 'challenge signature');
      }
    } catch (e) {
      const reason = e instanceof VerificationFailure ? e.reason : 'malformed';
      log.warn({ reason, detail: e instanceof VerificationFailure ? e.detail : (e as Error).message }, 'endpoint refused');
      refuse(ws, reason);
      return undefined;
    }
    const principal: Principal = { id: identity.id, role: identity.role, via: 'endpoint' };
    const prior = conns.get(identity.id);
    if (prior) {
      conns.delete(identity.id);
      ctx.metrics.connections.dec({ kind: 'endpoint' });
      prior.detach();
      prior.ws.close(CLOSE.replaced, 'replaced by a newer connection');
    }
    const conn: Conn = { ws, identity, principal, detach: () => {} };
    conns.set(identity.id, conn);
    ctx.metrics.connections.inc({ kind: 'endpoint' });
    log.info({ id: identity.id, role: identity.role, operator: identity.operator }, 'endpoint connected');
    send(ws, { t: 'welcome', id: identity.id, role: identity.role, operator: identity.operator });
    const detachRouter = ctx.router.attach(identity.id, {
      window: o.window,
      push: (m: QueuedMessage) =>
        send(ws, { t: 'msg', seq: m.seq, format: m.format, from: m.sender, kind: m.kind, id: m.msgId, expires: m.expires, body: m.body }),
      notice: (n) => send(ws, { t: 'notice', seq: n.seq, type: n.type, id: n.msgId, peer: n.peer, reason: n.reason }),
      evict: () => ws.close(CLOSE.replaced, 'replaced by a newer connection'),
    });
    const unsubscribe = o.firmware?.subscribe(identity.id, (e) => send(ws, e));
    conn.detach = () => {
      detachRouter();
      unsubscribe?.();
    };
    return conn;
  }

  /** The clear metadata of a submission: an envelope's own header is authoritative. */
  function submission(c: Conn, f: Extract<ClientFrame, { t: 'send' }>): Submission {
    if (f.format === 'envelope') {
      const h = envelopeHeader(f.body);
      // A sender may only send as itself, with the certificate it authenticated with.
      if (h.from !== c.identity.id || h.fromCert !== b64u(c.identity.certHash)) throw new EvsealError('ERR_POLICY_DENIED', 'envelope sender is not the authenticated endpoint');
      const meta = { to: h.to, kind: h.kind, id: h.id, expires: h.expires * 1000 };
      for (const k of ['to', 'kind', 'id', 'expires'] as const) {
        if (f[k] !== undefined && f[k] !== meta[k]) throw new EvsealError('ERR_INVALID_INPUT', `send: ${k} differs from the envelope header`);
      }
      return { format: 'envelope', to: meta.to, kind: meta.kind, msgId: meta.id, expires: meta.expires, body: f.body };
    }
    if (f.to === undefined || f.kind === undefined || f.id === undefined || f.expires === undefined) {
      throw new EvsealError('ERR_INVALID_INPUT', `send: a ${f.format} message needs to, kind, id and expires`);
    }
    if (f.format === 'ocpp-call') {
      const action = checkOcppCall(f.body);
      if (!ocppCallAllowed(f.kind, action)) throw new EvsealError('ERR_POLICY_DENIED', `an ocpp-call of kind ${f.kind} may not carry ${action}`);
    }
    if (f.format === 'ocpp-cert') checkOcppCert(f.body);
    return { format: f.format, to: f.to, kind: f.kind, msgId: f.id, expires: f.expires, body: f.body };
  }

  async function handle(c: Conn, f: ClientFrame): Promise<void> {
    const ws = c.ws;
    switch (f.t) {
      case 'auth':
        throw new EvsealError('ERR_INVALID_INPUT', 'already authenticated');
      case 'send': {
        const r = await ctx.router.submit(c.principal, submission(c, f));
        send(ws, { t: 'accepted', ref: f.ref, seq: r.seq, duplicate: r.duplicate, ...(r.receipt ? { receipt: r.receipt } : {}) });
        return;
      }
      case 'ack': {
        const receipts = await ctx.router.ackMany(c.principal.id, f.seqs);
        send(ws, { t: 'acked', seqs: f.seqs, receipts });
        return;
      }
      case 'nack':
        await ctx.router.failed(c.principal.id, f.seq, f.reason);
        return;
      case 'notice-ack':
        // cumulative, and only over this endpoint's own notices
        await ctx.store.ackNotices(c.principal.id, f.seq);
        return;
      case 'publish-bundle':
        await directory.publishBundle({ id: c.identity.id, role: c.identity.role, fingerprint: c.identity.fingerprint }, f.bundle);
        send(ws, { t: 'ok', ref: f.ref });
        return;
      case 'get-bundle':
        send(ws, { t: 'bundle', ref: f.ref, bundle: (await ctx.store.getBundle(f.id)) ?? null });
        return;
      case 'publish-prekeys': {
        send(ws, { t: 'ok', ref: f.ref, count: await directory.addOneTimePrekeys(c.identity.id, c.identity, f.prekeys) });
        return;
      }
      case 'claim-prekey': {
        const { json, outcome } = await directory.claimOneTimePrekey(c.identity.id, f.id);
        ctx.metrics.prekeyClaims.inc({ outcome });
        send(ws, { t: 'prekey', ref: f.ref, prekey: json === undefined ? null : (JSON.parse(json) as unknown) });
        return;
      }
      case 'publish-crl': {
        const r = await trust.addCrl(f.pem);
        send(ws, { t: 'ok', ref: f.ref, anchor: r.anchor, crlNumber: r.crlNumber.toString(), fresh: r.fresh });
        return;
      }
      case 'get-crls':
        send(ws, { t: 'crls', ref: f.ref, pems: (await ctx.store.listCrls()).map((c2) => c2.pem) });
        return;
      case 'audit-proof': {
        // The entry travels with its proof: its time and outcome are the gateway's, so the endpoint cannot rebuild the leaf alone.
        // It says who wrote to whom, so only its sender and its recipient are shown it.
        const [entry] = await ctx.store.auditEntries(f.index, f.index + 1);
        if (!entry || (entry.sender !== c.principal.id && entry.recipient !== c.principal.id)) throw new EvsealError('ERR_NOT_FOUND', `no audit entry of yours at index ${f.index}`);
        const path = await audit.inclusionProof(f.index, f.size);
        send(ws, { t: 'proof', ref: f.ref, index: f.index, size: f.size, entry, path });
        return;
      }
      case 'audit-consistency':
        send(ws, { t: 'consistency', ref: f.ref, from: f.from, to: f.to, path: await audit.consistencyProof(f.from, f.to) });
        return;
      case 'firmware-held':
      case 'firmware-chunk':
      case 'firmware-commit':
      case 'firmware-delete':
      case 'rollout':
      case 'rollout-status':
        if (!o.firmware) throw new EvsealError('ERR_NOT_FOUND', 'this gateway does not deliver firmware');
        send(ws, await o.firmware.handle(c.principal, f));
        return;
    }
  }

  /** Re-validates every connected identity; those no longer valid (revoked, expired) are dropped. */
  function recheck(): number {
    let dropped = 0;
    for (const c of [...conns.values()]) {
      try {
        trust.validate([c.identity.certDer]);
      } catch (e) {
        const reason = e instanceof VerificationFailure ? e.reason : 'invalid';
        log.warn({ id: c.principal.id, reason }, 'endpoint dropped');
        conns.delete(c.principal.id);
        ctx.metrics.connections.dec({ kind: 'endpoint' });
        c.detach();
        c.ws.close(CLOSE.revoked, 'identity no longer valid');
        dropped++;
      }
    }
    return dropped;
  }
  trust.on('crl', () => recheck());

  return {
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      // Holding sockets open without authenticating costs the gateway memory and a timer each: bounded per source.
      const source = sourceKey(req.socket.remoteAddress);
      const waiting = unauthenticated.get(source) ?? 0;
      if (waiting >= o.maxUnauthenticatedPerSource) {
        ctx.metrics.connectionsRefused.inc({ kind: 'endpoint', reason: 'throttled' });
        refuseUpgrade(socket, 429, 1);
        return;
      }
      unauthenticated.set(source, waiting + 1);
      let counted = true;
      const settle = (): void => {
        if (!counted) return;
        counted = false;
        const n = (unauthenticated.get(source) ?? 1) - 1;
        if (n > 0) unauthenticated.set(source, n);
        else unauthenticated.delete(source);
      };
      socket.once('close', settle);
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, settle));
    },
    connections: (): number => conns.size,
    recheck,
    async close(): Promise<void> {
      for (const c of conns.values()) c.ws.close(CLOSE.shutdown, 'gateway shutting down');
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

/** An OCPP call an endpoint asks the gateway to make to a station: {"action", "payload"}; the station's schema is checked when it is sent. */
function checkOcppCall(body: string): string {
  const v = safeJson(body) as { action?: unknown; payload?: unknown } | undefined;
  const ok = typeof v === 'object' && v !== null && Object.keys(v).every((k) => k === 'action' || k === 'payload');
  if (!ok || typeof v.action !== 'string' || !/^[A-Za-z]{1,64}$/.test(v.action) || typeof v.payload !== 'object' || v.payload === null || Array.isArray(v.payload)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'ocpp-call body must be {"action": string, "payload": object}');
  }
  return v.action;
}

/** A CA service's answer to a forwarded CSR: {"certificateChain": PEM, "certificateType"?, "requestId"?}. */
function checkOcppCert(body: string): void {
  const v = safeJson(body) as Record<string, unknown> | undefined;
  const keys = ['certificateChain', 'certificateType', 'requestId'];
  const ok = typeof v === 'object' && v !== null && Object.keys(v).every((k) => keys.includes(k));
  if (!ok || typeof v.certificateChain !== 'string' || !v.certificateChain.includes('-----BEGIN CERTIFICATE-----')) {
    throw new EvsealError('ERR_INVALID_INPUT', 'ocpp-cert body must be {"certificateChain": PEM, "certificateType"?, "requestId"?}');
  }
}

function safeJson(data: unknown): unknown {
  try {
    return JSON.parse(String(data));
  } catch {
    return undefined;
  }
}
