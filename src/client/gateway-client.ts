import { randomBytes, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { b64u, fromB64u } from '../core/base64url.js';
import { EXPORTER_LABEL, NONCE_BYTES, signChallenge } from '../core/challenge.js';
import { EvsealError, type ErrorCode } from '../core/errors.js';
import { MSG_ID_RE } from '../core/roles.js';
// The wire shapes the gateway defines (docs/gateway-protocol.md, docs/audit.md).
import type { Receipt } from '../gateway/context.js';
import type { AuditEntry } from '../gateway/store/store.js';

export type { Receipt, AuditEntry };

/** A message delivered by the gateway (docs/gateway-protocol.md §3.3). */
export interface Delivery {
  seq: number;
  format: 'envelope' | 'session' | 'ocpp-result' | 'ocpp-csr';
  from: string;
  kind: string;
  id: string;
  expires: number;
  body: string;
}

const DELIVERY_FORMATS: ReadonlySet<string> = new Set(['envelope', 'session', 'ocpp-result', 'ocpp-csr']);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

function isDelivery(f: Frame): f is Frame & Delivery {
  const { seq, format, from, kind, id, expires, body } = f;
  const strings = typeof format === 'string' && typeof from === 'string' && typeof kind === 'string' && typeof id === 'string' && typeof body === 'string';
  return strings && isCount(seq) && isCount(expires) && DELIVERY_FORMATS.has(format) && MSG_ID_RE.test(id);
}

export interface Notice {
  /** the gateway's number for this notice: acknowledged (notice-ack) once onNotice has returned */
  seq: number;
  type: string;
  id: string;
  peer: string;
  reason: string;
}



/** A station's progress in a rollout: a firmware status, or a security event it raised. */
export interface RolloutEvent {
  id: string;
  station: string;
  status?: string;
  security?: string;
  at: number;
}

/** A rollout as the gateway holds it. */
export interface RolloutState {
  id: string;
  packageId: string;
  requestId: number;
  created: number;
  expires: number;
  stations: Record<string, { status: string; at: number; msgId?: string; securityEvents?: string[] }>;
}

/** How much of a firmware package the gateway holds. */
export interface FirmwareHeld {
  packageId: string;
  held: number;
  complete: boolean;
}

export interface ClientOptions {
  /** leaf first, DER */
  chain: Uint8Array[];
  privateKey: KeyObject;
  /** refuse a gateway whose receipt key (base64url SPKI) differs */
  gatewayKey?: string;
  /** PEM CA certificates for a wss:// gateway */
  ca?: string | string[];
  onMessage?: (d: Delivery) => void;
  onNotice?: (n: Notice) => void;
  /** progress of the firmware rollouts this endpoint started (docs/gateway-protocol.md §3.5) */
  onRolloutEvent?: (e: RolloutEvent) => void;
  /** ms to wait for the handshake and for each answer (default 10 s) */
  timeoutMs?: number;
  /**
   * ms to wait for the answer to a request whose work grows with its size:
   * starting a rollout (store lookups and a queued call per station, and in
   * a cluster perhaps a copy of the package first) and committing an upload
   * (hashing the whole package). Default 10 minutes; the connection's loss
   * still ends the wait at once.
   */
  longTimeoutMs?: number;
}

type Frame = Record<string, unknown> & { t: string };

/** Requests answered after work that grows with their size: they wait longTimeoutMs. */
const LONG_REQUESTS: ReadonlySet<string> = new Set(['rollout', 'firmware-commit']);

/**
 * The endpoint side of the gateway protocol: authenticates with the
 * identity's key, then submits, receives and acknowledges sealed messages
 * and talks to the directory. It moves sealed bytes only; sealing and
 * opening stay with the caller's Endpoint.
 */
export class GatewayClient {
  readonly #ws: WebSocket;
  readonly #o: ClientOptions;
  readonly #pending = new Map<number, { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #acks: { resolve: (r: Receipt[]) => void; reject: (e: Error) => void }[] = [];
  #ref = 0;
  #closed: Error | undefined;
  gateway = { id: '', key: '' };
  identity = { id: '', role: '', operator: '' };

  private constructor(ws: WebSocket, o: ClientOptions) {
    this.#ws = ws;
    this.#o = o;
  }

  static connect(url: string, o: ClientOptions): Promise<GatewayClient> {
    const ws = new WebSocket(`${url.replace(/\/$/, '')}/endpoint`, { ca: o.ca, perMessageDeflate: false, maxPayload: 32 * 1024 * 1024 });
    const c = new GatewayClient(ws, o);
    const timeoutMs = o.timeoutMs ?? 10_000;
    let exporter = new Uint8Array(0);
    ws.on('upgrade', (res: IncomingMessage) => {
      if (res.socket instanceof TLSSocket) exporter = new Uint8Array(res.socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)));
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new EvsealError('ERR_UNAUTHENTICATED', 'gateway handshake timed out')), timeoutMs);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        ws.terminate();
        reject(e);
      };
      ws.once('error', (e) => fail(new EvsealError('ERR_STATE', `cannot reach gateway: ${e.message}`)));
      ws.once('close', (code, reason) => fail(new EvsealError('ERR_UNAUTHENTICATED', `gateway closed the connection (${code} ${reason.toString()})`)));
      const onHandshake = (raw: WebSocket.RawData): void => {
        let f: Frame;
        try {
          f = JSON.parse(raw.toString()) as Frame;
        } catch {
          return fail(new EvsealError('ERR_INVALID_INPUT', 'gateway sent a malformed frame'));
        }
        if (f.t === 'challenge') {
          if (typeof f.gateway !== 'string' || typeof f.key !== 'string' || typeof f.nonce !== 'string') return fail(new EvsealError('ERR_INVALID_INPUT', 'malformed challenge'));
          if (o.gatewayKey !== undefined && f.key !== o.gatewayKey) return fail(new EvsealError('ERR_UNAUTHENTICATED', 'gateway key differs from the pinned key'));
          c.gateway = { id: f.gateway, key: f.key };
          const nonce = randomBytes(NONCE_BYTES);
          const sig = signChallenge(o.privateKey, nonce, fromB64u(f.nonce, 'nonce'), f.gateway, exporter);
          ws.send(JSON.stringify({ t: 'auth', chain: o.chain.map(b64u), nonce: b64u(nonce), sig: b64u(sig) }));
          return;
        }
        if (f.t === 'welcome') {
          clearTimeout(timer);
          ws.off('message', onHandshake);
          ws.removeAllListeners('close');
          ws.removeAllListeners('error');
          c.identity = { id: String(f.id), role: String(f.role), operator: String(f.operator) };
          c.#listen();
          resolve(c);
          return;
        }
        if (f.t === 'error') return fail(new EvsealError((f.code as ErrorCode) ?? 'ERR_UNAUTHENTICATED', String(f.message ?? 'refused')));
      };
      ws.on('message', onHandshake);
    });
  }

  #listen(): void {
    this.#ws.on('message', (raw) => {
      let f: Frame;
      try {
        f = JSON.parse(raw.toString()) as Frame;
      } catch {
        return;
      }
      if (f.t === 'msg') {
        // The gateway is not trusted: a delivery without the documented shape is dropped here, so nothing downstream sees one.
        if (isDelivery(f)) this.#o.onMessage?.(f);
      } else if (f.t === 'notice') {
        if (!isCount(f.seq) || typeof f.type !== 'string' || typeof f.id !== 'string' || typeof f.peer !== 'string' || typeof f.reason !== 'string') return;
        this.#o.onNotice?.(f as unknown as Notice);
        // Acknowledged once handled: a notice lost with the connection comes again on the next one.
        this.#ws.send(JSON.stringify({ t: 'notice-ack', seq: f.seq }));
      } else if (f.t === 'rollout-event') this.#o.onRolloutEvent?.(f as unknown as RolloutEvent);
      else if (f.t === 'acked') {
        // Answers come in the order the acks were sent.
        this.#acks.shift()?.resolve(f.receipts as Receipt[]);
      } else if (typeof f.ref === 'number') {
        const p = this.#pending.get(f.ref);
        if (!p) return;
        this.#pending.delete(f.ref);
        clearTimeout(p.timer);
        if (f.t === 'error') p.reject(new EvsealError((f.code as ErrorCode) ?? 'ERR_STATE', String(f.message)));
        else p.resolve(f);
      }
    });
    const onEnd = (why: string): void => {
      this.#closed ??= new EvsealError('ERR_STATE', `gateway connection lost (${why})`);
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(this.#closed);
      }
      this.#pending.clear();
      for (const a of this.#acks.splice(0)) a.reject(this.#closed);
    };
    this.#ws.on('close', (code, reason) => onEnd(`${code} ${reason.toString()}`));
    this.#ws.on('error', (e) => onEnd(e.message));
  }

  #request(frame: Record<string, unknown>): Promise<Frame> {
    if (this.#closed) return Promise.reject(this.#closed);
    const ref = ++this.#ref;
    const ms = LONG_REQUESTS.has(String(frame.t)) ? (this.#o.longTimeoutMs ?? 600_000) : (this.#o.timeoutMs ?? 10_000);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new EvsealError('ERR_STATE', `gateway did not answer ${String(frame.t)} in time`));
      }, ms);
      this.#pending.set(ref, { resolve, reject, timer });
      this.#ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  /** Submits a sealed envelope; resolves once the gateway holds it durably. */
  async sendEnvelope(envelope: string): Promise<{ seq: number; duplicate: boolean; receipt?: Receipt }> {
    const f = await this.#request({ t: 'send', format: 'envelope', body: envelope });
    return { seq: f.seq as number, duplicate: f.duplicate as boolean, receipt: f.receipt as Receipt | undefined };
  }

  /** Submits a session message (its metadata travels beside the opaque body). */
  async sendSession(m: { to: string; kind: string; id: string; expires: number; body: string }): Promise<{ seq: number; duplicate: boolean; receipt?: Receipt }> {
    const f = await this.#request({ t: 'send', format: 'session', ...m });
    return { seq: f.seq as number, duplicate: f.duplicate as boolean, receipt: f.receipt as Receipt | undefined };
  }

  /**
   * Has the gateway make an OCPP call to a station (for example a
   * SetNetworkProfile whose secrets are sealed with the ocpp layer's protect).
   * The station's answer comes back as a delivery of format 'ocpp-result'.
   */
  async sendOcppCall(m: { to: string; kind: string; id: string; expires: number; action: string; payload: Record<string, unknown> }): Promise<{ seq: number; duplicate: boolean; receipt?: Receipt }> {
    const f = await this.#request({ t: 'send', format: 'ocpp-call', to: m.to, kind: m.kind, id: m.id, expires: m.expires, body: JSON.stringify({ action: m.action, payload: m.payload }) });
    return { seq: f.seq as number, duplicate: f.duplicate as boolean, receipt: f.receipt as Receipt | undefined };
  }

  /** A CA service's signed certificate chain for a station's forwarded CSR (format ocpp-cert; the gateway sends it as CertificateSigned). */
  async sendOcppCert(m: { to: string; id: string; expires: number; certificateChain: string; certificateType?: string; requestId?: number }): Promise<{ seq: number; duplicate: boolean; receipt?: Receipt }> {
    const { to, id, expires, ...body } = m;
    const f = await this.#request({ t: 'send', format: 'ocpp-cert', to, kind: 'certificate', id, expires, body: JSON.stringify(body) });
    return { seq: f.seq as number, duplicate: f.duplicate as boolean, receipt: f.receipt as Receipt | undefined };
  }

  /** Acknowledges processed deliveries (batched); resolves with their delivery receipts. */
  ack(...seqs: number[]): Promise<Receipt[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#acks.push({ resolve, reject });
      this.#ws.send(JSON.stringify({ t: 'ack', seqs }));
    });
  }

  /** Reports a delivery that could not be processed; the gateway retries it and dead-letters it after its attempt limit. */
  nack(seq: number, reason: string): void {
    if (!this.#closed) this.#ws.send(JSON.stringify({ t: 'nack', seq, reason }));
  }

  async publishBundle(bundle: string): Promise<void> {
    await this.#request({ t: 'publish-bundle', bundle });
  }
  async getBundle(id: string): Promise<string | undefined> {
    const f = await this.#request({ t: 'get-bundle', id });
    return typeof f.bundle === 'string' ? f.bundle : undefined;
  }
  async publishPrekeys(prekeys: unknown[]): Promise<number> {
    return (await this.#request({ t: 'publish-prekeys', prekeys })).count as number;
  }
  async claimPrekey(id: string): Promise<unknown | undefined> {
    const f = await this.#request({ t: 'claim-prekey', id });
    return f.prekey ?? undefined;
  }
  async publishCrl(pem: string): Promise<{ anchor: string; crlNumber: string; fresh: boolean }> {
    const f = await this.#request({ t: 'publish-crl', pem });
    return { anchor: f.anchor as string, crlNumber: f.crlNumber as string, fresh: f.fresh as boolean };
  }
  async getCrls(): Promise<string[]> {
    return (await this.#request({ t: 'get-crls' })).pems as string[];
  }
  /** The audit entry at `index` and its inclusion proof in the tree of `size` entries. */
  async inclusionProof(index: number, size: number): Promise<{ entry: AuditEntry; path: string[] }> {
    const f = await this.#request({ t: 'audit-proof', index, size });
    return { entry: f.entry as AuditEntry, path: f.path as string[] };
  }
  async consistencyProof(from: number, to: number): Promise<string[]> {
    return (await this.#request({ t: 'audit-consistency', from, to })).path as string[];
  }

  /** How many bytes of a package the gateway already holds (an upload resumes there). */
  async firmwareHeld(packageId: string): Promise<FirmwareHeld> {
    const f = await this.#request({ t: 'firmware-held', packageId });
    return { packageId, held: f.held as number, complete: f.complete as boolean };
  }
  /** Sends package bytes [offset, offset + data.length) of a `size`-byte package. */
  async firmwareChunk(packageId: string, size: number, offset: number, data: Uint8Array): Promise<FirmwareHeld> {
    const f = await this.#request({ t: 'firmware-chunk', packageId, size, offset, data: b64u(data) });
    return { packageId, held: f.held as number, complete: f.complete as boolean };
  }
  /** Completes an upload: the gateway checks the SHA-256 of what it holds and that it is that package. */
  async firmwareCommit(packageId: string, sha256: Uint8Array): Promise<FirmwareHeld & { version: string; model: string; publisher: string; devices: number }> {
    const f = await this.#request({ t: 'firmware-commit', packageId, sha256: b64u(sha256) });
    return { packageId, held: f.held as number, complete: f.complete as boolean, version: f.version as string, model: f.model as string, publisher: f.publisher as string, devices: f.devices as number };
  }
  /**
   * Deletes a package and any partial upload of it; refused (ERR_STATE) while
   * a rollout may still send a station to it, unless `force`. Resolves to
   * whether the gateway held anything.
   */
  async firmwareDelete(packageId: string, o: { force?: boolean } = {}): Promise<boolean> {
    return (await this.#request({ t: 'firmware-delete', packageId, ...(o.force ? { force: true } : {}) })).deleted as boolean;
  }
  /** Starts a rollout (idempotent by id); stations absent means every device in the package. */
  async startRollout(r: { id: string; packageId: string; stations?: string[]; lifetimeSec: number }): Promise<RolloutState> {
    const f = await this.#request({ t: 'rollout', id: r.id, packageId: r.packageId, ...(r.stations ? { stations: r.stations } : { all: true }), lifetime: r.lifetimeSec });
    return f.rollout as RolloutState;
  }
  async rolloutStatus(id: string): Promise<RolloutState> {
    return (await this.#request({ t: 'rollout-status', id })).rollout as RolloutState;
  }

  /** Resolves when the gateway closes the connection (revocation, replacement, shutdown). */
  closed(): Promise<{ code: number; reason: string }> {
    return new Promise((resolve) => {
      if (this.#ws.readyState === WebSocket.CLOSED) return resolve({ code: 1006, reason: '' });
      this.#ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#ws.readyState === WebSocket.CLOSED) return resolve();
      this.#ws.once('close', () => resolve());
      this.#ws.close(1000);
    });
  }
}
