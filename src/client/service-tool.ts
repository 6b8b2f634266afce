import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64u } from '../core/base64url.js';
import { EvsealError, type ErrorCode } from '../core/errors.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { loadSession, sessionExists } from '../keystore/sessions.js';
import { GatewayClient, type Delivery, type Notice } from './gateway-client.js';
import { encodeCommand, encodeInitFrame, encodeMsgFrame, parseResult, parseSessionFrame, type CommandResult, type ToolCommand } from './session-frames.js';

/**
 * The service tool's side of `evseal tool` (docs/service-tool.md): opens a
 * session to a charger through the gateway, sends commands in it and waits
 * for the sealed results. The gateway only routes; the charger decides.
 */

/** Why a command got no result. */
export type ToolFailure = 'refused' | 'expired' | 'timeout';

export class ToolError extends EvsealError {
  readonly outcome: ToolFailure;
  constructor(outcome: ToolFailure, code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ToolError';
    this.outcome = outcome;
  }
}

/** A message this tool handed to the gateway (for logs and tests). */
export interface SentMessage {
  id: string;
  to: string;
  kind: string;
  expires: number;
  body: string;
  seq: number;
}

interface Waiter {
  msgId: string;
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export const COMMAND_KIND = 'command';

export class ServiceTool {
  readonly ep: Endpoint;
  #gw: GatewayClient | undefined;
  #early: (() => void)[] = [];
  readonly #waiters = new Map<string, Waiter>();
  /** every message sent, in order */
  readonly sent: SentMessage[] = [];

  constructor(ep: Endpoint) {
    this.ep = ep;
  }

  /** Connects as the tool's identity and publishes its bundle. */
  static async connect(ep: Endpoint, url: string, o: { gatewayKey?: string; ca?: string | string[]; timeoutMs?: number } = {}): Promise<ServiceTool> {
    const tool = new ServiceTool(ep);
    const gw = await GatewayClient.connect(url, { chain: ep.id.chain, privateKey: ep.id.privateKey, ...o, onMessage: tool.onDelivery, onNotice: tool.onNotice });
    tool.attach(gw);
    await gw.publishBundle(readFileSync(join(ep.id.dir, 'bundle.json'), 'utf8'));
    return tool;
  }

  /** Wire these into GatewayClient.connect's onMessage / onNotice, then call attach(). */
  readonly onDelivery = (d: Delivery): void => {
    if (this.#gw) this.#delivery(d);
    else this.#early.push(() => this.#delivery(d));
  };

  readonly onNotice = (n: Notice): void => {
    if (this.#gw) this.#notice(n);
    else this.#early.push(() => this.#notice(n));
  };

  attach(gw: GatewayClient): void {
    this.#gw = gw;
    for (const f of this.#early.splice(0)) f();
    void gw.closed().then(({ code, reason }) => {
      for (const [h, w] of this.#waiters) {
        clearTimeout(w.timer);
        this.#waiters.delete(h);
        w.reject(new EvsealError('ERR_STATE', `gateway connection lost (${code}${reason ? ` ${reason}` : ''})`));
      }
    });
  }

  get gateway(): GatewayClient {
    if (!this.#gw) throw new EvsealError('ERR_USAGE', 'service tool is not attached to a gateway connection');
    return this.#gw;
  }

  /**
   * Opens a session to `charger` with `command` as its first payload and
   * waits for the result. A one-time prekey is claimed from the directory
   * when one is available. The gateway holds the command until `timeoutMs`
   * (the charger may be offline meanwhile) and drops it after.
   */
  async open(charger: string, command: ToolCommand, o: { timeoutMs?: number; oneTimePrekey?: boolean } = {}): Promise<{ session: ToolSession; result: CommandResult }> {
    const gw = this.gateway;
    const timeoutMs = o.timeoutMs ?? 30_000;
    const bundle = await gw.getBundle(charger);
    if (bundle === undefined) throw new EvsealError('ERR_NOT_FOUND', `no bundle for ${charger} in the gateway directory`);
    const otk = o.oneTimePrekey === false ? undefined : await gw.claimPrekey(charger);
    const maxLifetime = this.ep.id.file.settings.maxLifetimeSec;
    const { handle, message } = this.ep.startSession(bundle, encodeCommand(command), {
      kind: COMMAND_KIND,
      // the first message is accepted no longer than the tool waits for it (plus the charger's skew)
      lifetimeSec: Math.max(1, Math.min(maxLifetime, Math.ceil(timeoutMs / 1000))),
      ...(otk !== undefined ? { oneTimePrekeyJson: otk } : {}),
    });
    const session = new ToolSession(this, charger, handle);
    const result = await this.request(session, encodeInitFrame(message), timeoutMs);
    return { session, result };
  }

  /** @internal sends a frame and waits for the next result in its session */
  async request(session: ToolSession, body: string, timeoutMs: number): Promise<CommandResult> {
    if (this.#waiters.has(session.handle)) throw new EvsealError('ERR_USAGE', 'one command at a time per session');
    const gw = this.gateway;
    const id = b64u(randomBytes(16));
    const expires = Date.now() + timeoutMs;
    let resolve!: (r: CommandResult) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<CommandResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined); // settled before it is awaited (a timeout during sendSession) is not unhandled
    const timer = setTimeout(() => {
      this.#waiters.delete(session.handle);
      reject(new ToolError('timeout', 'ERR_STATE', `no answer from ${session.charger} within ${Math.round(timeoutMs / 1000)} s; the gateway drops the command now`));
    }, timeoutMs);
    // registered before sending: the answer may come before sendSession resolves
    this.#waiters.set(session.handle, { msgId: id, resolve, reject, timer });
    try {
      const r = await gw.sendSession({ to: session.charger, kind: COMMAND_KIND, id, expires, body });
      this.sent.push({ id, to: session.charger, kind: COMMAND_KIND, expires, body, seq: r.seq });
    } catch (e) {
      clearTimeout(timer);
      this.#waiters.delete(session.handle);
      throw e;
    }
    return done;
  }

  #delivery(d: Delivery): void {
    const gw = this.#gw!;
    // Envelopes and sessions opened *to* this tool are not this command's business: left for `evseal recv`.
    if (d.format !== 'session') return;
    let frame;
    try {
      frame = parseSessionFrame(d.body);
    } catch {
      gw.nack(d.seq, 'malformed');
      return;
    }
    if (frame.t !== 'msg') return;
    const store = this.ep.id.store;
    if (!sessionExists(store, frame.handle)) {
      gw.nack(d.seq, 'unknown-session');
      return;
    }
    const { rec } = loadSession(store, frame.handle);
    if (rec.side !== 'initiator' || rec.peer.id !== d.from) {
      gw.nack(d.seq, 'wrong-sender');
      return;
    }
    let pt: Uint8Array;
    try {
      pt = this.ep.sessionDecrypt(frame.handle, frame.message);
    } catch (e) {
      if (!(e instanceof EvsealError) || e.code !== 'ERR_OPEN_FAILED') throw e;
      // forged or replayed: the genuine answer may still come
      gw.nack(d.seq, 'open-failed');
      return;
    }
    void gw.ack(d.seq).catch(() => undefined);
    const w = this.#waiters.get(frame.handle);
    // a late answer in a session this tool gave up on: acknowledged, nothing to do
    if (!w) return;
    this.#waiters.delete(frame.handle);
    clearTimeout(w.timer);
    try {
      w.resolve(parseResult(pt));
    } catch (e) {
      w.reject(e as Error);
    }
  }

  #notice(n: Notice): void {
    for (const [h, w] of this.#waiters) {
      if (w.msgId !== n.id) continue;
      this.#waiters.delete(h);
      clearTimeout(w.timer);
      if (n.type === 'expired') {
        w.reject(new ToolError('expired', 'ERR_STATE', `the command expired in the gateway before ${n.peer} took it`));
      } else {
        w.reject(new ToolError('refused', 'ERR_POLICY_DENIED', `${n.peer} refused the command (the gateway dead-lettered it: ${n.reason})`));
      }
    }
  }

  close(): Promise<void> {
    for (const w of this.#waiters.values()) clearTimeout(w.timer);
    this.#waiters.clear();
    return this.#gw ? this.#gw.close() : Promise.resolve();
  }
}

/** An open session to one charger: further commands go through the ratchet. */
export class ToolSession {
  readonly tool: ServiceTool;
  readonly charger: string;
  readonly handle: string;

  constructor(tool: ServiceTool, charger: string, handle: string) {
    this.tool = tool;
    this.charger = charger;
    this.handle = handle;
  }

  /** Sends the next command in this session and waits for its result. */
  send(command: ToolCommand, o: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const body = encodeMsgFrame(this.handle, this.tool.ep.sessionEncrypt(this.handle, encodeCommand(command)));
    return this.tool.request(this, body, o.timeoutMs ?? 30_000);
  }
}

/** Parses `evseal tool` command words: get-diagnostics | get-config [KEY...] | set-config K=V | reset [Soft|Hard] | unlock-connector N. */
export function parseCommandArgs(name: string, args: string[]): ToolCommand {
  const usage = (why: string): never => {
    throw new EvsealError('ERR_USAGE', why);
  };
  const none = () => {
    if (args.length > 0) usage(`${name} takes no arguments`);
  };
  let c: ToolCommand;
  switch (name) {
    case 'get-diagnostics':
      none();
      c = { cmd: 'get-diagnostics' };
      break;
    case 'get-config':
      c = args.length > 0 ? { cmd: 'get-config', keys: args } : { cmd: 'get-config' };
      break;
    case 'set-config': {
      if (args.length !== 1) usage('set-config takes one KEY=VALUE');
      const eq = args[0]!.indexOf('=');
      if (eq <= 0) usage('set-config takes KEY=VALUE');
      c = { cmd: 'set-config', key: args[0]!.slice(0, eq), value: args[0]!.slice(eq + 1) };
      break;
    }
    case 'reset': {
      if (args.length > 1) usage('reset takes at most one argument, Soft or Hard');
      const t = args[0];
      if (t !== undefined && t !== 'Soft' && t !== 'Hard') usage('reset type must be Soft or Hard');
      c = t === undefined ? { cmd: 'reset' } : { cmd: 'reset', type: t as 'Soft' | 'Hard' };
      break;
    }
    case 'unlock-connector': {
      if (args.length !== 1 || !/^[1-9][0-9]?$/.test(args[0]!)) usage('unlock-connector takes a connector number, 1 to 99');
      c = { cmd: 'unlock-connector', connector: Number(args[0]) };
      break;
    }
    default:
      return usage(`unknown command ${JSON.stringify(name)} (get-diagnostics, get-config, set-config, reset, unlock-connector)`);
  }
  try {
    encodeCommand(c);
  } catch (e) {
    usage((e as Error).message);
  }
  return c;
}
