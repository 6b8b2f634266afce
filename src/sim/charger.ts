import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import ocpp from 'ocpp-rpc';
import { inspectEnvelope } from '../core/envelope.js';
import { EvsealError } from '../core/errors.js';
import { DEFAULT_ROLE_POLICY, defaultKind, type RolePolicy } from '../core/role-policy.js';
import type { Role } from '../core/roles.js';
import { prekeyToJSON } from '../core/prekey.js';
import { writeFileAtomic } from '../keystore/atomic-file.js';
import { readPublicOneTime } from '../keystore/identity-dir.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { EVSEAL_VENDOR, type CarrierResult } from '../gateway/ocpp/carriers.js';
import { ChargerCommands, type OutgoingSession } from './commands.js';
import { ocppValidators, type OcppProtocol } from '../gateway/ocpp/validators.js';
import { SimFirmware, type FirmwareEvent, type SimFirmwareOptions } from './firmware.js';

/**
 * A simulated charging station (an endpoint, not part of the gateway: only
 * the CLI imports it). It is an ocpp-rpc client in strict mode that boots,
 * heartbeats, opens the sealed messages the gateway delivers and answers
 * each with a sealed reply when the role policy lets a charger write back
 * to the sender's role. It also takes service-tool commands over sessions
 * (`session` deliveries, see commands.ts and docs/service-tool.md) and
 * answers them in the same session. It reports metadata only, never a plaintext.
 */

export type SimEvent =
  | { type: 'booted'; protocol: string; interval: number }
  | { type: 'heartbeat'; currentTime: string }
  | { type: 'opened'; msgId: string; from: string; role: string; kind: string; size: number; file?: string }
  | { type: 'replay'; msgId: string; from: string }
  | { type: 'refused'; msgId?: string; from?: string; code: string }
  | { type: 'command'; msgId: string; from: string; operator: string; cmd: string; ok: boolean; error?: string }
  | { type: 'replied'; inReplyTo: string; to: string; kind: string; seq: number }
  | { type: 'reply-failed'; inReplyTo: string; to: string; code: string }
  | { type: 'notice'; notice: unknown }
  | FirmwareEvent;

export interface SimChargerOptions {
  endpoint: Endpoint;
  /** ws(s)://host:port/ocpp — the station id (the endpoint's own id) is appended */
  gateway: string;
  password?: string;
  protocol: OcppProtocol;
  /** Stop heartbeating after this many (default: never). */
  heartbeats?: number;
  /** Default: the interval the CSMS gave in BootNotification. */
  heartbeatIntervalMs?: number;
  /** Finish after this many messages were opened and answered. */
  count?: number;
  /** Each plaintext is written here as <msgId>.bin; without it plaintexts are discarded. */
  outDir?: string;
  rolePolicy?: RolePolicy;
  /** Operators whose service tools may command this charger (default: the charger's own operator). */
  toolOperators?: string[];
  /** A tool session older than this takes no more commands (seconds, default 900). */
  toolSessionMaxAgeSec?: number;
  /** Extra `ws` options, e.g. { ca, cert, key } for TLS and mutual TLS. */
  wsOpts?: Record<string, unknown>;
  onEvent: (e: SimEvent) => void;
  /** Extra OCPP handlers for CSMS → station calls (e.g. SetNetworkProfile), by action. */
  handlers?: Record<string, (params: unknown, io: SimIo) => Promise<Record<string, unknown>>>;
  /** Takes UpdateFirmware / SignedUpdateFirmware: downloads, verifies and installs packages (see firmware.ts). */
  firmware?: Omit<SimFirmwareOptions, 'endpoint'>;
  /** Runs once after boot and bundle publication, e.g. a scripted transaction. */
  afterBoot?: (io: SimIo) => Promise<void>;
}

/** What hooks may do with the charger's connection. */
export interface SimIo {
  call(action: string, params: Record<string, unknown>): Promise<unknown>;
  carrier(messageId: string, data: string): Promise<CarrierResult>;
}

/**
 * Envelopes this charger has processed, kept in ID_DIR/sim-processed.json
 * until their expiry plus skew. It is written inside Endpoint.open's commit
 * step, before the replay record: a redelivery after a lost acknowledgement
 * is recognised and acknowledged again without opening (it would be refused
 * as a replay), and a crash before the write lets the envelope open again.
 */
class ProcessedJournal {
  readonly #path: string;
  #seen: Record<string, number>;

  constructor(dir: string) {
    this.#path = join(dir, 'sim-processed.json');
    this.#seen = existsSync(this.#path) ? (JSON.parse(readFileSync(this.#path, 'utf8')) as Record<string, number>) : {};
  }

  has(key: string): boolean {
    return key in this.#seen;
  }

  add(key: string, keepUntilSec: number, nowSec: number): void {
    for (const [k, until] of Object.entries(this.#seen)) if (until < nowSec) delete this.#seen[k];
    this.#seen[key] = keepUntilSec;
    writeFileAtomic(this.#path, JSON.stringify(this.#seen) + '\n');
  }
}

type Client = InstanceType<typeof ocpp.RPCClient>;

function bootParams(protocol: OcppProtocol): Record<string, unknown> {
  return protocol === 'ocpp1.6'
    ? { chargePointVendor: 'evseal', chargePointModel: 'sim-charger' }
    : { reason: 'PowerUp', chargingStation: { vendorName: 'evseal', model: 'sim-charger' } };
}

function statusParams(protocol: OcppProtocol, now: Date): Record<string, unknown> {
  return protocol === 'ocpp1.6'
    ? { connectorId: 1, errorCode: 'NoError', status: 'Available', timestamp: now.toISOString() }
    : { timestamp: now.toISOString(), connectorStatus: 'Available', evseId: 1, connectorId: 1 };
}

const codeOf = (e: unknown): string => (e instanceof EvsealError ? e.code : (e as { rpcErrorCode?: string })?.rpcErrorCode ?? 'ERR_STATE');

/** Runs until `count` messages were answered and `heartbeats` sent (whichever are set), or until `signal` aborts. */
export async function runSimCharger(o: SimChargerOptions, signal?: AbortSignal): Promise<{ opened: number }> {
  const ep = o.endpoint;
  const me = ep.id.file;
  const policy = o.rolePolicy ?? DEFAULT_ROLE_POLICY;
  const journal = new ProcessedJournal(ep.id.dir);
  const commands = new ChargerCommands(ep, { toolOperators: o.toolOperators, maxSessionAgeSec: o.toolSessionMaxAgeSec });
  if (o.outDir) mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
  const client: Client = new ocpp.RPCClient({
    endpoint: o.gateway.replace(/\/+$/, ''),
    identity: me.id,
    password: o.password ?? null,
    protocols: [o.protocol],
    strictMode: true,
    strictModeValidators: ocppValidators(),
    reconnect: false,
    callTimeoutMs: 30_000,
    wsOpts: o.wsOpts ?? {},
  } as ConstructorParameters<typeof ocpp.RPCClient>[0]);

  let opened = 0;
  let replies: Promise<void> = Promise.resolve();
  let wake: () => void = () => {};

  const carrier = async (messageId: string, data: string): Promise<CarrierResult> =>
    (await client.call('DataTransfer', { vendorId: EVSEAL_VENDOR, messageId, data })) as CarrierResult;

  /** Seals a short receipt back to the sender, when the policy allows the charger any kind to that role. */
  async function reply(inReplyTo: string, to: string, role: Role, size: number): Promise<void> {
    const kind = defaultKind(policy, me.role, role);
    if (kind === undefined) return;
    let code: string;
    try {
      const b = await carrier('get-bundle', to);
      if (b.status === 'Accepted' && b.data !== undefined) {
        const payload = Buffer.from(JSON.stringify({ inReplyTo, received: size }));
        const r = await carrier('envelope', ep.seal(b.data, payload, { kind, contentType: 'application/json' }));
        if (r.status === 'Accepted') {
          o.onEvent({ type: 'replied', inReplyTo, to, kind, seq: (JSON.parse(r.data ?? '{}') as { seq: number }).seq });
          return;
        }
        code = r.data ?? r.status;
      } else {
        code = b.data ?? b.status;
      }
    } catch (e) {
      code = codeOf(e);
    }
    o.onEvent({ type: 'reply-failed', inReplyTo, to, code });
  }

  function openDelivery(data: string): CarrierResult {
    let h;
    try {
      h = inspectEnvelope(data);
    } catch (e) {
      o.onEvent({ type: 'refused', code: codeOf(e) });
      return { status: 'Rejected', data: codeOf(e) };
    }
    const key = `${h.fromCert}.${h.id}`;
    if (journal.has(key)) {
      o.onEvent({ type: 'replay', msgId: h.id, from: h.from });
      return { status: 'Accepted' };
    }
    let file: string | undefined;
    let res;
    try {
      res = ep.open(data, {
        beforeCommit: (x) => {
          if (o.outDir) writeFileAtomic((file = join(o.outDir, `${x.header.id}.bin`)), x.plaintext);
          journal.add(key, x.header.expires + me.settings.skewSec, Math.floor(Date.now() / 1000));
        },
      });
    } catch (e) {
      o.onEvent({ type: 'refused', msgId: h.id, code: codeOf(e) });
      return { status: 'Rejected', data: codeOf(e) };
    }
    opened++;
    o.onEvent({ type: 'opened', msgId: h.id, from: h.from, role: res.sender.role, kind: h.kind, size: res.plaintext.length, ...(file ? { file } : {}) });
    const size = res.plaintext.length;
    const role = res.sender.role;
    // after the Accepted answer has gone out: the reply is a call of its own
    replies = replies.then(() => new Promise<void>((r) => setImmediate(r))).then(() => reply(h.id, h.from, role, size)).finally(() => wake());
    return { status: 'Accepted' };
  }

  /** Sends a sealed command result through the station -> gateway `session` carrier; the journal forgets it once the gateway holds it. */
  async function sendSessionReply(key: string, m: OutgoingSession, inReplyTo: string): Promise<void> {
    let code: string;
    try {
      const r = await carrier('session', JSON.stringify(m));
      if (r.status === 'Accepted') {
        commands.markSent(key);
        o.onEvent({ type: 'replied', inReplyTo, to: m.to, kind: m.kind, seq: (JSON.parse(r.data ?? '{}') as { seq: number }).seq });
        return;
      }
      code = r.data ?? r.status;
    } catch (e) {
      code = codeOf(e);
    }
    o.onEvent({ type: 'reply-failed', inReplyTo, to: m.to, code });
  }

  function sessionDelivery(data: string): CarrierResult {
    const h = commands.handle(data);
    o.onEvent(h.event);
    if (h.event.type === 'command') opened++;
    const reply = h.reply;
    if (reply) {
      const inReplyTo = h.event.type === 'refused' ? '' : h.event.msgId;
      // after the Accepted answer has gone out: the reply is a call of its own
      replies = replies
        .then(() => new Promise<void>((r) => setImmediate(r)))
        .then(() => sendSessionReply(reply.key, reply.message, inReplyTo))
        .finally(() => wake());
    } else if (h.event.type !== 'replay') {
      wake();
    }
    return h.answer;
  }

  const io: SimIo = { call: (action, params) => client.call(action, params), carrier };
  for (const [action, fn] of Object.entries(o.handlers ?? {})) {
    client.handle(action, async ({ params }) => {
      await booted;
      return fn(params, io);
    });
  }

  let markBooted: () => void = () => {};
  const booted = new Promise<void>((r) => (markBooted = r));

  client.handle('DataTransfer', async ({ params }) => {
    // a delivery may arrive in the same packet as the boot answer: report the boot first
    await booted;
    const p = params as { vendorId: string; messageId?: string; data?: unknown };
    if (p.vendorId !== EVSEAL_VENDOR) return { status: 'UnknownVendorId' };
    if (p.messageId === 'notice') {
      o.onEvent({ type: 'notice', notice: typeof p.data === 'string' ? JSON.parse(p.data) : p.data });
      return { status: 'Accepted' };
    }
    if (p.messageId === 'session' && typeof p.data === 'string') return { ...sessionDelivery(p.data) };
    if (p.messageId !== 'envelope' || typeof p.data !== 'string') return { status: 'UnknownMessageId' };
    return { ...openDelivery(p.data) };
  });

  // stops the heartbeat loop and the wait below, on the caller's signal or when done
  const stop = new AbortController();
  signal?.addEventListener('abort', () => stop.abort(), { once: true });
  stop.signal.addEventListener('abort', () => wake(), { once: true });
  const firmware = o.firmware ? new SimFirmware({ ...o.firmware, endpoint: ep }, o.protocol, o.onEvent) : undefined;
  for (const [action, fn] of Object.entries(firmware?.handlers(io.call, stop.signal) ?? {})) {
    client.handle(action, async ({ params }) => {
      await booted;
      return fn(params);
    });
  }
  let lost = false;
  client.on('close', () => {
    lost = !stop.signal.aborted;
    wake();
  });

  await client.connect();
  let beats = 0;
  const finished = () =>
    (o.count !== undefined || o.heartbeats !== undefined) && (o.count === undefined || opened >= o.count) && (o.heartbeats === undefined || beats >= o.heartbeats);
  try {
    const boot = (await client.call('BootNotification', bootParams(o.protocol))) as { status: string; interval: number };
    if (boot.status !== 'Accepted') throw new EvsealError('ERR_STATE', `BootNotification answered ${boot.status}`);
    o.onEvent({ type: 'booted', protocol: o.protocol, interval: boot.interval });
    markBooted();
    await client.call('StatusNotification', statusParams(o.protocol, new Date()));
    // Publish this charger's bundle so endpoints can seal to it while it is offline.
    const pub = await carrier('publish-bundle', readFileSync(join(ep.id.dir, 'bundle.json'), 'utf8'));
    // (a gateway without a directory answers UnknownMessageId: nothing to report then)
    if (pub.status === 'Rejected') o.onEvent({ type: 'refused', code: pub.data ?? pub.status });
    // And its one-time prekeys: a service tool claims one (once) for the first message of a session.
    const otks = readPublicOneTime(ep.id.dir);
    if (pub.status === 'Accepted' && otks.length > 0) {
      const r = await carrier('publish-prekeys', JSON.stringify(otks.map(prekeyToJSON)));
      if (r.status === 'Rejected') o.onEvent({ type: 'refused', code: r.data ?? r.status });
    }
    if (o.afterBoot) await o.afterBoot(io);
    // Command results sealed before a crash or a lost connection, not yet taken by the gateway.
    for (const u of commands.unsentReplies()) replies = replies.then(() => sendSessionReply(u.key, u.message, u.key.slice(u.key.indexOf('/') + 1)));

    const intervalMs = o.heartbeatIntervalMs ?? Math.max(1, boot.interval) * 1000;
    const heartbeats = (async () => {
      while (!stop.signal.aborted && (o.heartbeats === undefined || beats < o.heartbeats)) {
        const hb = (await client.call('Heartbeat', {})) as { currentTime: string };
        beats++;
        o.onEvent({ type: 'heartbeat', currentTime: hb.currentTime });
        wake();
        await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    })();
    void heartbeats.catch(() => wake());

    while (!stop.signal.aborted && !lost && !finished()) {
      await new Promise<void>((resolve) => (wake = resolve));
    }
    await replies;
    await firmware?.idle();
    stop.abort();
    await heartbeats.catch((e: unknown) => {
      if (!lost) throw e;
    });
    if (lost && !finished()) throw new EvsealError('ERR_STATE', 'the gateway closed the connection');
    return { opened };
  } finally {
    stop.abort();
    await client.close({ code: 1000, awaitPending: true });
  }
}
