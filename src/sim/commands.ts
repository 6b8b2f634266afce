import { randomBytes } from 'node:crypto';
import { b64u } from '../core/base64url.js';
import { EvsealError, type SecurityReason } from '../core/errors.js';
import { ID_RE, MSG_ID_RE } from '../core/roles.js';
import { parseSessionInit } from '../core/session/handshake.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { securityLog } from '../keystore/security-log.js';
import { loadSession, sessionExists } from '../keystore/sessions.js';
import {
  encodeMsgFrame,
  encodeResult,
  parseCommand,
  parseSessionFrame,
  CONFIG_KEY_RE,
  type CommandResult,
  type SessionFrame,
  type ToolCommand,
} from '../client/session-frames.js';
import type { CarrierResult } from '../gateway/ocpp/carriers.js';

/**
 * The charger side of `evseal tool` (docs/service-tool.md): a simulated
 * station's handling of `session` deliveries that carry service-tool
 * commands. It decides, in a fixed order, whether the sender may command
 * this charger at all; executes the command against simulated state; and
 * seals the result into the same session. Every refusal is a DataTransfer
 * `Rejected` with a stable code, and a line in the charger's security log.
 *
 * Files (in the charger's keystore, encrypted when it is):
 *   sim/state.json     the simulated state: configuration, resets, connector locks
 *   sim/commands.json  every session delivery processed or refused, by (sender, message id),
 *                      with the sealed reply until the gateway has taken it
 */

export interface SessionDelivery {
  from: string;
  kind: string;
  id: string;
  expires: number;
  body: string;
}

/** A message for the station → gateway `session` carrier. */
export interface OutgoingSession {
  to: string;
  kind: string;
  id: string;
  expires: number;
  body: string;
}

export type CommandEvent =
  | { type: 'command'; msgId: string; from: string; operator: string; cmd: string; ok: boolean; error?: string }
  | { type: 'refused'; msgId?: string; from?: string; code: string }
  | { type: 'replay'; msgId: string; from: string };

export interface Handled {
  answer: CarrierResult;
  event: CommandEvent;
  /** to be sent (after the answer) through the `session` carrier, then confirmed with markSent(key) */
  reply?: { key: string; message: OutgoingSession };
}

export interface ChargerCommandOptions {
  /** Operators whose service tools may command this charger (default: the charger's own operator). */
  toolOperators?: string[];
  /** A session older than this (seconds since it was accepted) takes no more commands (default 900). */
  maxSessionAgeSec?: number;
  /** Number of connectors (default 2). */
  connectors?: number;
  now?: () => number;
}

type Lock = 'Locked' | 'Unlocked';

export interface SimState {
  v: 1;
  config: Record<string, string>;
  resets: number;
  lastReset: { type: 'Soft' | 'Hard'; at: string } | null;
  connectors: Record<string, Lock>;
  commands: number;
}

interface JournalEntry {
  /** Unix seconds after which the entry is dropped */
  until: number;
  /** set for a refused delivery: the same code is given again */
  code?: string;
  reply?: OutgoingSession;
  sent?: boolean;
}

const STATE = 'sim/state.json';
const JOURNAL = 'sim/commands.json';
const READ_ONLY = new Set(['ChargePointVendor', 'ChargePointModel', 'FirmwareVersion', 'NumberOfConnectors']);
const INTEGER_KEYS = new Set(['HeartbeatInterval', 'MeterValueSampleInterval', 'ConnectionTimeOut', 'ResetRetries']);
const BOOLEAN_KEYS = new Set(['LocalAuthorizeOffline', 'AuthorizeRemoteTxRequests', 'UnlockConnectorOnEVSideDisconnect']);
export const FIRMWARE_VERSION = '0.1.0-sim';
/** The only session kind a charger takes commands in. */
export const COMMAND_KIND = 'command';

function initialState(connectors: number): SimState {
  const c: Record<string, Lock> = {};
  for (let i = 1; i <= connectors; i++) c[String(i)] = 'Locked';
  return {
    v: 1,
    config: {
      ChargePointVendor: 'evseal',
      ChargePointModel: 'sim-charger',
      FirmwareVersion: FIRMWARE_VERSION,
      NumberOfConnectors: String(connectors),
      HeartbeatInterval: '300',
      MeterValueSampleInterval: '60',
      ConnectionTimeOut: '120',
      ResetRetries: '1',
      LocalAuthorizeOffline: 'true',
      AuthorizeRemoteTxRequests: 'false',
      UnlockConnectorOnEVSideDisconnect: 'true',
    },
    resets: 0,
    lastReset: null,
    connectors: c,
    commands: 0,
  };
}

/** Strict parse of the gateway → station `session` carrier data. Throws ERR_INVALID_INPUT. */
export function parseSessionDelivery(data: string): SessionDelivery {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'session delivery is not JSON');
  }
  const o = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(o).sort().join(',') !== 'body,expires,from,id,kind') {
    throw new EvsealError('ERR_INVALID_INPUT', 'session delivery: expected {from, kind, id, expires, body}');
  }
  if (typeof o.from !== 'string' || !ID_RE.test(o.from) || typeof o.id !== 'string' || !MSG_ID_RE.test(o.id)) throw new EvsealError('ERR_INVALID_INPUT', 'session delivery: bad sender or message id');
  if (typeof o.kind !== 'string' || !Number.isSafeInteger(o.expires) || typeof o.body !== 'string') throw new EvsealError('ERR_INVALID_INPUT', 'session delivery: bad field types');
  return { from: o.from, kind: o.kind, id: o.id, expires: o.expires as number, body: o.body };
}

class Refusal extends Error {
  constructor(
    readonly code: 'ERR_OPEN_FAILED' | 'ERR_POLICY_DENIED' | 'ERR_INVALID_INPUT',
    readonly reason: string,
    readonly detail?: string,
  ) {
    super(reason);
  }
}

/** True for the opaque refusals of the keystore (handshake or ratchet failed); other errors are local faults. */
const opaque = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED';

export class ChargerCommands {
  readonly #ep: Endpoint;
  readonly #operators: ReadonlySet<string>;
  readonly #maxAgeSec: number;
  readonly #connectors: number;
  readonly #now: () => number;
  readonly #log: ReturnType<typeof securityLog>;

  constructor(ep: Endpoint, o: ChargerCommandOptions = {}) {
    this.#ep = ep;
    const ops = o.toolOperators && o.toolOperators.length > 0 ? o.toolOperators : [ep.id.file.operator];
    this.#operators = new Set(ops);
    this.#maxAgeSec = o.maxSessionAgeSec ?? 900;
    this.#connectors = o.connectors ?? 2;
    if (!Number.isSafeInteger(this.#connectors) || this.#connectors < 1 || this.#connectors > 99) throw new EvsealError('ERR_USAGE', 'connectors: 1 to 99');
    this.#now = o.now ?? Date.now;
    this.#log = securityLog(ep.id.dir);
  }

  get toolOperators(): string[] {
    return [...this.#operators];
  }

  /** The simulated state (created on first use). */
  state(): SimState {
    const t = this.#ep.id.store.readText(STATE);
    return t === undefined ? initialState(this.#connectors) : (JSON.parse(t) as SimState);
  }

  #saveState(s: SimState): void {
    this.#ep.id.store.write(STATE, JSON.stringify(s) + '\n');
  }

  #journal(): Record<string, JournalEntry> {
    const t = this.#ep.id.store.readText(JOURNAL);
    return t === undefined ? {} : (JSON.parse(t) as Record<string, JournalEntry>);
  }

  #record(key: string, e: JournalEntry): void {
    const nowSec = Math.floor(this.#now() / 1000);
    const j = this.#journal();
    for (const [k, x] of Object.entries(j)) if (x.until < nowSec && (x.reply === undefined || x.sent)) delete j[k];
    j[key] = e;
    this.#ep.id.store.write(JOURNAL, JSON.stringify(j) + '\n');
  }

  /** Replies sealed but not yet taken by the gateway (after a crash or a lost connection): send them again. */
  unsentReplies(): { key: string; message: OutgoingSession }[] {
    return Object.entries(this.#journal())
      .filter(([, e]) => e.reply !== undefined && !e.sent)
      .map(([key, e]) => ({ key, message: e.reply! }));
  }

  /** The gateway holds the reply durably: it need not be sent again. */
  markSent(key: string): void {
    const j = this.#journal();
    const e = j[key];
    if (e === undefined || e.sent) return;
    e.sent = true;
    this.#ep.id.store.write(JOURNAL, JSON.stringify(j) + '\n');
  }

  #security(event: string, reason: string, extra: Record<string, unknown>): void {
    this.#log.sink({ event, reason: reason as SecurityReason, ...extra });
  }

  /**
   * One gateway → station `session` delivery (the DataTransfer data). Checks,
   * in order (docs/service-tool.md §4): the delivery and frame are well formed;
   * for a first message: the sender named inside it is the sender the
   * gateway names, then the handshake (trust policy, revocation, role
   * service-tool, role policy, signature, times, replay, decryption), then
   * the session kind and the tool's operator; for a later message: the
   * session exists, is a command session this charger accepted from that
   * sender, its operator is still allowed, it is not too old, and the ratchet
   * message decrypts (a replay does not). Only then is the command executed.
   */
  handle(data: string): Handled {
    let d: SessionDelivery;
    try {
      d = parseSessionDelivery(data);
    } catch (e) {
      this.#security('command-refused', 'malformed', { detail: (e as Error).message });
      return { answer: { status: 'Rejected', data: 'ERR_INVALID_INPUT' }, event: { type: 'refused', code: 'ERR_INVALID_INPUT' } };
    }
    const key = `${d.from}/${d.id}`;
    const seen = this.#journal()[key];
    if (seen !== undefined) {
      // The gateway delivers again what this charger already handled (a lost
      // answer, or a retry after a refusal): the same answer, nothing re-run.
      if (seen.code !== undefined) return { answer: { status: 'Rejected', data: seen.code }, event: { type: 'refused', msgId: d.id, from: d.from, code: seen.code } };
      return {
        answer: { status: 'Accepted' },
        event: { type: 'replay', msgId: d.id, from: d.from },
        ...(seen.reply && !seen.sent ? { reply: { key, message: seen.reply } } : {}),
      };
    }
    try {
      return this.#process(d, key);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      this.#security('command-refused', e.reason, { msgId: d.id, from: d.from, code: e.code, ...(e.detail ? { detail: e.detail } : {}) });
      this.#record(key, { until: Math.floor(d.expires / 1000) + this.#ep.id.file.settings.skewSec, code: e.code });
      return { answer: { status: 'Rejected', data: e.code }, event: { type: 'refused', msgId: d.id, from: d.from, code: e.code } };
    }
  }

  #process(d: SessionDelivery, key: string): Handled {
    let frame: SessionFrame;
    try {
      frame = parseSessionFrame(d.body);
    } catch (e) {
      throw new Refusal('ERR_INVALID_INPUT', 'malformed', (e as Error).message);
    }
    let handle: string;
    let peer: { id: string; operator: string };
    let payload: Uint8Array;
    if (frame.t === 'init') {
      // The sender named inside the first message must be the one the gateway
      // authenticated. Checked on the structure alone, before anything is
      // committed, so a mislabelled copy cannot burn the genuine session id.
      let claimed: string | undefined;
      try {
        claimed = parseSessionInit(frame.first).hdr.from;
      } catch {
        claimed = undefined; // malformed: the handshake refuses it and logs why
      }
      if (claimed !== undefined && claimed !== d.from) throw new Refusal('ERR_OPEN_FAILED', 'identity-mismatch', `first message from ${claimed}`);
      let a;
      try {
        a = this.#ep.acceptSession(frame.first, { expectedRoles: ['service-tool'] });
      } catch (e) {
        // The precise reason (trust policy, revocation, role, replay, …) is on the line before, from the keystore.
        if (opaque(e)) throw new Refusal('ERR_OPEN_FAILED', 'session-refused');
        throw e;
      }
      if (a.kind !== COMMAND_KIND) throw new Refusal('ERR_POLICY_DENIED', 'kind-not-allowed', a.kind);
      if (!this.#operators.has(a.peer.operator)) throw new Refusal('ERR_POLICY_DENIED', 'operator-not-allowed', a.peer.operator);
      handle = a.handle;
      peer = { id: a.peer.id, operator: a.peer.operator };
      payload = a.payload;
    } else {
      handle = frame.handle;
      if (!sessionExists(this.#ep.id.store, handle)) throw new Refusal('ERR_OPEN_FAILED', 'unknown-session', handle);
      const { rec } = loadSession(this.#ep.id.store, handle);
      if (rec.side !== 'responder' || rec.peer.role !== 'service-tool' || rec.kind !== COMMAND_KIND) throw new Refusal('ERR_OPEN_FAILED', 'not-a-command-session', handle);
      if (rec.peer.id !== d.from) throw new Refusal('ERR_OPEN_FAILED', 'identity-mismatch', `session of ${rec.peer.id}`);
      if (!this.#operators.has(rec.peer.operator)) throw new Refusal('ERR_POLICY_DENIED', 'operator-not-allowed', rec.peer.operator);
      if (Math.floor(this.#now() / 1000) - rec.created > this.#maxAgeSec) throw new Refusal('ERR_OPEN_FAILED', 'session-too-old', handle);
      try {
        payload = this.#ep.sessionDecrypt(handle, frame.message);
      } catch (e) {
        // A replayed, forged or corrupted ratchet message (the keystore logged it too).
        if (opaque(e)) throw new Refusal('ERR_OPEN_FAILED', 'decrypt-failed', handle);
        throw e;
      }
      peer = { id: rec.peer.id, operator: rec.peer.operator };
    }

    let cmd: ToolCommand | undefined;
    let result: CommandResult;
    try {
      cmd = parseCommand(payload);
      result = this.#execute(cmd);
    } catch (e) {
      if (!(e instanceof EvsealError)) throw e;
      result = { ok: false, error: e.code, message: e.message };
    }
    const reply: OutgoingSession = {
      to: peer.id,
      kind: COMMAND_KIND,
      id: b64u(randomBytes(16)),
      // at least a minute, so a command delivered just before its expiry can still be answered
      expires: Math.max(d.expires, this.#now() + 60_000),
      body: encodeMsgFrame(handle, this.#ep.sessionEncrypt(handle, encodeResult(result))),
    };
    this.#record(key, { until: Math.floor(d.expires / 1000) + this.#ep.id.file.settings.skewSec, reply, sent: false });
    return {
      answer: { status: 'Accepted' },
      event: { type: 'command', msgId: d.id, from: peer.id, operator: peer.operator, cmd: cmd?.cmd ?? 'malformed', ok: result.ok, ...(result.ok ? {} : { error: result.error }) },
      reply: { key, message: reply },
    };
  }

  /** Runs one authorised command against the simulated state. Command errors throw EvsealError (answered ok:false). */
  #execute(c: ToolCommand): CommandResult {
    const s = this.state();
    const notFound = (what: string): never => {
      throw new EvsealError('ERR_NOT_FOUND', what);
    };
    let result: unknown;
    switch (c.cmd) {
      case 'get-diagnostics':
        result = {
          stationId: this.#ep.id.file.id,
          operator: this.#ep.id.file.operator,
          model: s.config.ChargePointModel,
          firmware: FIRMWARE_VERSION,
          resets: s.resets,
          lastReset: s.lastReset,
          connectors: Object.entries(s.connectors).map(([n, lock]) => ({ connector: Number(n), lock })),
          commandsExecuted: s.commands,
          configurationKeys: Object.keys(s.config).length,
          time: new Date(this.#now()).toISOString(),
        };
        break;
      case 'get-config': {
        const keys = c.keys ?? Object.keys(s.config);
        result = {
          // own keys only: a tool asking for "constructor" or "toString" gets an unknown key, not a prototype member
          configuration: keys.filter((k) => Object.hasOwn(s.config, k)).map((k) => ({ key: k, value: s.config[k]!, readonly: READ_ONLY.has(k) })),
          unknownKeys: keys.filter((k) => !Object.hasOwn(s.config, k)),
        };
        break;
      }
      case 'set-config': {
        if (!Object.hasOwn(s.config, c.key) || !CONFIG_KEY_RE.test(c.key)) notFound(`unknown configuration key ${c.key}`);
        if (READ_ONLY.has(c.key)) throw new EvsealError('ERR_POLICY_DENIED', `${c.key} is read-only`);
        if (INTEGER_KEYS.has(c.key) && !/^(0|[1-9][0-9]{0,8})$/.test(c.value)) throw new EvsealError('ERR_INVALID_INPUT', `${c.key} takes a non-negative integer`);
        if (BOOLEAN_KEYS.has(c.key) && c.value !== 'true' && c.value !== 'false') throw new EvsealError('ERR_INVALID_INPUT', `${c.key} takes true or false`);
        const previous = s.config[c.key]!;
        s.config[c.key] = c.value;
        result = { key: c.key, value: c.value, previous, status: 'Accepted' };
        break;
      }
      case 'reset': {
        const type = c.type ?? 'Soft';
        s.resets++;
        s.lastReset = { type, at: new Date(this.#now()).toISOString() };
        for (const n of Object.keys(s.connectors)) s.connectors[n] = 'Locked';
        result = { status: 'Accepted', type, resets: s.resets };
        break;
      }
      case 'unlock-connector': {
        const n = String(c.connector);
        if (!(n in s.connectors)) notFound(`no connector ${c.connector}`);
        s.connectors[n] = 'Unlocked';
        result = { connector: c.connector, status: 'Unlocked' };
        break;
      }
    }
    s.commands++;
    this.#saveState(s);
    return { ok: true, result };
  }
}
