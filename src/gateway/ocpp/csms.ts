import { createHash } from 'node:crypto';
import { b64u } from '../../core/base64url.js';
import { EvsealError } from '../../core/errors.js';
import type { GatewayContext } from '../context.js';
import { EVSEAL_VENDOR, handleCarrier, stationPrincipal } from './carriers.js';
import type { OcppProtocol } from './validators.js';
import { own, putOwn } from '../own-keys.js';

/**
 * The built-in CSMS: it answers the core charger → CSMS calls of OCPP 1.6,
 * 2.0.1 and 2.1 with schema-valid responses and keeps each station's state
 * (store.putStationState) so an operator sees boots, heartbeats, connector
 * status, transactions, firmware status and security events. It authorizes
 * every token: tariffs and authorization lists are an upstream CSMS's job
 * (proxy mode). It never signs certificates: SignCertificate is forwarded to
 * the CA service.
 */

export interface Transaction {
  id: string;
  state: 'active' | 'ended';
  idTag?: string;
  evse?: number;
  connector?: number;
  /** Wh, energy register at start and stop (1.6 meterStart/meterStop, 2.x first/last register value) */
  meterStart?: number;
  meterStop?: number;
  lastMeter?: number;
  started?: string;
  stopped?: string;
  stopReason?: string;
  seqNo?: number;
}

export interface StationState {
  protocol?: OcppProtocol;
  boot?: { at: string; reason?: string; vendor: string; model: string; serialNumber?: string; firmwareVersion?: string };
  lastHeartbeat?: string;
  /** by "connector" (1.6) or "evse/connector" (2.x) */
  connectors: Record<string, { status: string; errorCode?: string; at: string }>;
  transactions: Record<string, Transaction>;
  /** next 1.6 transactionId (an integer, unique per station) */
  nextTransactionId: number;
  firmware?: { status: string; at: string; requestId?: number; signed?: boolean };
  securityEvents: { type: string; at: string; techInfo?: string }[];
  certificate?: { status: 'forwarded' | 'rejected'; at: string; type?: string };
}

/** Bounds on kept history, so a chatty station cannot grow its state without limit. */
const KEEP_ENDED_TRANSACTIONS = 50;
const KEEP_SECURITY_EVENTS = 50;
/**
 * Bounds on what a station can open: more transactions open at once, or
 * more connectors, than any real station has. Past them the oldest open
 * transaction is ended as abandoned (its stop was lost; charging is never
 * refused for it), and a connector not seen before is not recorded.
 */
const MAX_OPEN_TRANSACTIONS = 64;
const MAX_CONNECTORS = 128;
export const ABANDONED = 'evseal:Abandoned';
/** How long a forwarded CSR may wait for the CA service. */
const CSR_LIFETIME_MS = 24 * 3600_000;

type Params = Record<string, unknown>;
export type Handler = (params: Params) => Promise<object>;

interface SampledValue {
  value: string | number;
  measurand?: string;
  unit?: string;
  unitOfMeasure?: { unit?: string; multiplier?: number };
}
interface MeterValue {
  sampledValue: SampledValue[];
}

/** The last Energy.Active.Import.Register reading in Wh (the default measurand), if any. */
export function energyRegisterWh(meterValues: MeterValue[] | undefined): number | undefined {
  let wh: number | undefined;
  for (const mv of meterValues ?? []) {
    for (const sv of mv.sampledValue) {
      if (sv.measurand !== undefined && sv.measurand !== 'Energy.Active.Import.Register') continue;
      const v = Number(sv.value);
      if (!Number.isFinite(v)) continue;
      const unit = sv.unit ?? sv.unitOfMeasure?.unit ?? 'Wh';
      const scale = (unit === 'kWh' ? 1000 : 1) * 10 ** (sv.unitOfMeasure?.multiplier ?? 0);
      wh = v * scale;
    }
  }
  return wh;
}

function emptyState(): StationState {
  return { connectors: {}, transactions: {}, nextTransactionId: 1, securityEvents: [] };
}

/** `current`, the transaction just started or updated, is never the one abandoned (iteration order only approximates age). */
function pruneTransactions(s: StationState, current?: string): void {
  const open = Object.values(s.transactions).filter((t) => t.state === 'active' && t.id !== current);
  const room = MAX_OPEN_TRANSACTIONS - (current !== undefined && own(s.transactions, current)?.state === 'active' ? 1 : 0);
  for (const t of open.slice(0, Math.max(0, open.length - room))) {
    t.state = 'ended';
    t.stopReason = ABANDONED;
  }
  const ended = Object.values(s.transactions).filter((t) => t.state === 'ended');
  for (const t of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED_TRANSACTIONS))) delete s.transactions[t.id];
}

/** Records a connector's status; a connector not seen before is not recorded once the station has MAX_CONNECTORS. */
function setConnector(s: StationState, key: string, v: StationState['connectors'][string]): void {
  if (Object.hasOwn(s.connectors, key) || Object.keys(s.connectors).length < MAX_CONNECTORS) putOwn(s.connectors, key, v);
}

/**
 * How often a station's lastHeartbeat alone is written to the store, at most
 * (seconds). Between writes it is kept in memory; a crash can lose at most
 * this much of it, and nothing else.
 */
export const HEARTBEAT_WRITE_SEC = 900;

interface StationEntry {
  state: Promise<StationState>;
  tail: Promise<unknown>;
  users: number;
  /** time (ms) of the lastHeartbeat in the store, as far as this process wrote it */
  storedHeartbeat: number | undefined;
  /** a heartbeat is newer in memory than in the store */
  unsaved: boolean;
}

export class Csms {
  readonly #ctx: GatewayContext;
  readonly #caService: string | undefined;
  readonly #heartbeatSec: number;
  /** Loaded state, a write queue (updates apply one at a time) and the number of connections, per station. */
  readonly #stations = new Map<string, StationEntry>();

  constructor(ctx: GatewayContext, o: { caService?: string; heartbeatIntervalSec?: number }) {
    this.#ctx = ctx;
    this.#caService = o.caService;
    this.#heartbeatSec = o.heartbeatIntervalSec ?? 300;
  }

  #iso(): string {
    return new Date(this.#ctx.now()).toISOString();
  }

  #entry(stationId: string): StationEntry {
    let st = this.#stations.get(stationId);
    if (!st) {
      const state = this.#ctx.store.getStationState(stationId).then((s) => ({ ...emptyState(), ...(s as Partial<StationState> | undefined) }));
      st = { state, tail: state, users: 0, storedHeartbeat: undefined, unsaved: false };
      this.#stations.set(stationId, st);
    }
    return st;
  }

  /**
   * Applies `fn` to the station's state and persists it before the call is
   * answered. A heartbeat-only change (`heartbeat`) is written only when the
   * stored lastHeartbeat is missing or older than the heartbeat write
   * interval: a fleet's heartbeats would otherwise be the store's largest
   * write load (docs/scaling.md). Any other change writes the whole state,
   * and the last connection's close writes what is left.
   */
  #update<T>(stationId: string, fn: (s: StationState) => T, heartbeat = false): Promise<T> {
    const entry = this.#entry(stationId);
    const run = entry.tail.then(async () => {
      const s = await entry.state;
      const r = fn(s);
      const stored = entry.storedHeartbeat;
      if (heartbeat && stored !== undefined && this.#ctx.now() - stored < HEARTBEAT_WRITE_SEC * 1000) entry.unsaved = true;
      else await this.#save(stationId, entry, s);
      return r;
    });
    entry.tail = run.catch(() => undefined);
    return run;
  }

  async #save(stationId: string, entry: StationEntry, s: StationState): Promise<void> {
    await this.#ctx.store.putStationState(stationId, s as unknown as Record<string, unknown>);
    entry.storedHeartbeat = s.lastHeartbeat === undefined ? undefined : Date.parse(s.lastHeartbeat);
    entry.unsaved = false;
  }

  /** Whether the station was ever accepted by a BootNotification (on any connection). */
  async hasBooted(stationId: string): Promise<boolean> {
    return (await this.#entry(stationId).state).boot !== undefined;
  }

  /** A connection of the station closed: the cached state goes with the last one, once its writes are done. */
  async release(stationId: string): Promise<void> {
    const st = this.#stations.get(stationId);
    if (!st || --st.users > 0) return;
    for (let t = st.tail; ; t = st.tail) {
      await t;
      if (t === st.tail) break;
    }
    if (st.users !== 0 || this.#stations.get(stationId) !== st) return;
    if (st.unsaved) {
      const save = st.state.then((s) => this.#save(stationId, st, s));
      st.tail = save.catch((e: unknown) => this.#ctx.log.error({ err: (e as Error).message, stationId }, 'station state not saved'));
      await st.tail;
    }
    if (st.users === 0 && this.#stations.get(stationId) === st) this.#stations.delete(stationId);
  }

  /** The handlers for one connection of a station, by action (pair with release()); `onBooted` runs once a BootNotification was accepted and stored. */
  handlers(protocol: OcppProtocol, stationId: string, onBooted: () => void): Map<string, Handler> {
    this.#entry(stationId).users++;
    const v16 = protocol === 'ocpp1.6';
    const up = <T>(fn: (s: StationState) => T) => this.#update(stationId, fn);
    const h = new Map<string, Handler>();
    const currentTime = () => this.#iso();

    h.set('BootNotification', async (p) => {
      await up((s) => {
        s.protocol = protocol;
        const cs = (v16 ? p : (p.chargingStation as Params)) as Params;
        s.boot = {
          at: this.#iso(),
          ...(v16 ? {} : { reason: p.reason as string }),
          vendor: (v16 ? cs.chargePointVendor : cs.vendorName) as string,
          model: (v16 ? cs.chargePointModel : cs.model) as string,
          ...(typeof (v16 ? cs.chargePointSerialNumber : cs.serialNumber) === 'string' ? { serialNumber: (v16 ? cs.chargePointSerialNumber : cs.serialNumber) as string } : {}),
          ...(typeof cs.firmwareVersion === 'string' ? { firmwareVersion: cs.firmwareVersion } : {}),
        };
      });
      // after this answer has gone out: the CSMS sends nothing before the charger knows it is accepted
      setImmediate(onBooted);
      return { status: 'Accepted', currentTime: currentTime(), interval: this.#heartbeatSec };
    });

    h.set('Heartbeat', async () => {
      await this.#update(
        stationId,
        (s) => {
          s.lastHeartbeat = this.#iso();
        },
        true,
      );
      return { currentTime: currentTime() };
    });

    h.set('StatusNotification', async (p) => {
      await up((s) => {
        if (v16) setConnector(s, String(p.connectorId), { status: p.status as string, errorCode: p.errorCode as string, at: this.#iso() });
        else setConnector(s, `${p.evseId}/${p.connectorId}`, { status: p.connectorStatus as string, at: this.#iso() });
      });
      return {};
    });

    h.set('Authorize', async () => (v16 ? { idTagInfo: { status: 'Accepted' } } : { idTokenInfo: { status: 'Accepted' } }));

    h.set('MeterValues', async (p) => {
      const wh = energyRegisterWh(p.meterValue as MeterValue[]);
      const txId = v16 && p.transactionId !== undefined ? String(p.transactionId) : undefined;
      if (wh !== undefined && txId !== undefined) {
        await up((s) => {
          const t = own(s.transactions, txId);
          if (t && t.state === 'active') t.lastMeter = wh;
        });
      }
      return {};
    });

    if (v16) {
      h.set('StartTransaction', async (p) => {
        const transactionId = await up((s) => {
          const id = s.nextTransactionId++;
          putOwn(s.transactions, String(id), {
            id: String(id),
            state: 'active',
            idTag: p.idTag as string,
            connector: p.connectorId as number,
            meterStart: p.meterStart as number,
            started: p.timestamp as string,
          });
          pruneTransactions(s, String(id));
          return id;
        });
        return { transactionId, idTagInfo: { status: 'Accepted' } };
      });
      h.set('StopTransaction', async (p) => {
        await up((s) => {
          const t = own(s.transactions, String(p.transactionId));
          if (!t) return; // unknown (or pruned) transaction: OCPP still wants an answer
          t.state = 'ended';
          t.meterStop = p.meterStop as number;
          t.stopped = p.timestamp as string;
          if (typeof p.reason === 'string') t.stopReason = p.reason;
          pruneTransactions(s);
        });
        return p.idTag === undefined ? {} : { idTagInfo: { status: 'Accepted' } };
      });
      h.set('SignedFirmwareStatusNotification', async (p) => {
        await up((s) => {
          s.firmware = { status: p.status as string, at: this.#iso(), signed: true, ...(typeof p.requestId === 'number' ? { requestId: p.requestId } : {}) };
        });
        this.#ctx.firmware?.firmwareStatus(stationId, p.status as string, typeof p.requestId === 'number' ? p.requestId : undefined);
        return {};
      });
    } else {
      h.set('TransactionEvent', async (p) => {
        const info = p.transactionInfo as Params;
        const evse = p.evse as Params | undefined;
        const idToken = p.idToken as Params | undefined;
        const wh = energyRegisterWh(p.meterValue as MeterValue[] | undefined);
        await up((s) => {
          const id = info.transactionId as string;
          const known = own(s.transactions, id);
          const t = known ?? putOwn<Transaction>(s.transactions, id, { id, state: 'active', started: p.timestamp as string });
          if (evse) {
            t.evse = evse.id as number;
            if (typeof evse.connectorId === 'number') t.connector = evse.connectorId;
          }
          if (idToken) t.idTag = idToken.idToken as string;
          if (typeof p.seqNo === 'number') t.seqNo = p.seqNo;
          if (wh !== undefined) {
            t.meterStart ??= wh;
            t.lastMeter = wh;
          }
          if (p.eventType === 'Ended') {
            t.state = 'ended';
            t.stopped = p.timestamp as string;
            if (t.lastMeter !== undefined) t.meterStop = t.lastMeter;
            if (typeof info.stoppedReason === 'string') t.stopReason = info.stoppedReason;
          }
          if (!known || t.state === 'ended') pruneTransactions(s, id);
        });
        return idToken ? { idTokenInfo: { status: 'Accepted' } } : {};
      });
    }

    h.set('FirmwareStatusNotification', async (p) => {
      await up((s) => {
        s.firmware = { status: p.status as string, at: this.#iso(), ...(typeof p.requestId === 'number' ? { requestId: p.requestId } : {}) };
      });
      this.#ctx.firmware?.firmwareStatus(stationId, p.status as string, typeof p.requestId === 'number' ? p.requestId : undefined);
      return {};
    });

    h.set('SecurityEventNotification', async (p) => {
      await up((s) => {
        s.securityEvents.push({ type: p.type as string, at: p.timestamp as string, ...(typeof p.techInfo === 'string' ? { techInfo: p.techInfo } : {}) });
        s.securityEvents.splice(0, Math.max(0, s.securityEvents.length - KEEP_SECURITY_EVENTS));
      });
      this.#ctx.firmware?.securityEvent(stationId, p.type as string);
      return {};
    });

    h.set('SignCertificate', async (p) => ({ status: await this.#forwardCsr(stationId, p, up) }));

    h.set('DataTransfer', async (p) => {
      if (p.vendorId !== EVSEAL_VENDOR) return { status: 'UnknownVendorId' };
      return handleCarrier(this.#ctx, stationId, p.messageId, p.data);
    });

    return h;
  }

  /**
   * Sends the CSR (public) to the CA service through the router; Accepted
   * means the request is durably queued there. The message id is derived
   * from the CSR, so a charger repeating the same request is not queued twice.
   */
  async #forwardCsr(stationId: string, p: Params, up: <T>(fn: (s: StationState) => T) => Promise<T>): Promise<'Accepted' | 'Rejected'> {
    const csr = p.csr as string;
    const type = typeof p.certificateType === 'string' ? p.certificateType : undefined;
    let status: 'Accepted' | 'Rejected' = 'Rejected';
    if (this.#caService !== undefined) {
      try {
        const r = await this.#ctx.router.submit(stationPrincipal(stationId), {
          format: 'ocpp-csr',
          to: this.#caService,
          kind: 'csr',
          msgId: b64u(createHash('sha256').update(csr).digest().subarray(0, 16)),
          expires: this.#ctx.now() + CSR_LIFETIME_MS,
          body: JSON.stringify({ csr, ...(type ? { certificateType: type } : {}), ...(typeof p.requestId === 'number' ? { requestId: p.requestId } : {}) }),
        });
        this.#ctx.log.info({ stationId, seq: r.seq, duplicate: r.duplicate }, 'csr forwarded to the CA service');
        status = 'Accepted';
      } catch (e) {
        if (!(e instanceof EvsealError)) throw e;
        this.#ctx.log.warn({ stationId, code: e.code }, 'csr not forwarded');
      }
    }
    await up((s) => {
      s.certificate = { status: status === 'Accepted' ? 'forwarded' : 'rejected', at: this.#iso(), ...(type ? { type } : {}) };
    });
    return status;
  }
}
