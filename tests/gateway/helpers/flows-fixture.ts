// Fixture for the end-to-end flow tests (e2e-flows.test.ts): a scanner that
// looks for secrets in the gateway's files (SQLite db, WAL, keys, the pino
// log) in raw, hex, base64 and base64url form, a fake upstream CSMS for proxy
// mode that records the exact bytes it receives, chargers (ocpp-rpc RPCClient,
// strict) that record every frame on their wire, and endpoint clients.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { GatewayClient, type Delivery } from '../../../src/client/gateway-client.js';
import type { Endpoint } from '../../../src/keystore/endpoint.js';
import type { OcppProtocol } from '../../../src/gateway/ocpp/validators.js';
import { ocppClient, boot } from './ocpp-clients.js';

// ---- waiting

/** Polls `cond` until it holds; fails with `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- the secret scanner

/**
 * Every form a secret is looked for in: raw UTF-8, hex (both cases), and
 * base64 / base64url at each of the three byte alignments it can have inside
 * a longer encoded string (the full 3-byte groups starting at byte 0, 1, 2 of
 * the secret, so a copy embedded anywhere in an encoded blob is found).
 */
export function encodedForms(secret: string): { form: string; text: string }[] {
  const b = Buffer.from(secret, 'utf8');
  if (b.length < 9) throw new Error(`secret ${JSON.stringify(secret)} too short to scan for without false positives (need >= 9 bytes)`);
  const out = new Map<string, string>();
  const add = (form: string, text: string) => {
    if (!out.has(text)) out.set(text, form);
  };
  add('raw', secret);
  add('hex', b.toString('hex'));
  add('HEX', b.toString('hex').toUpperCase());
  for (let k = 0; k < 3; k++) {
    const part = b.subarray(k, k + Math.floor((b.length - k) / 3) * 3);
    add(`base64@${k}`, part.toString('base64'));
    add(`base64url@${k}`, part.toString('base64url'));
  }
  return [...out].map(([text, form]) => ({ form, text }));
}

export interface Blob {
  name: string;
  data: Buffer;
}

/** Every file under `dir` (recursively), read now. */
export function readTree(dir: string): Blob[] {
  const out: Blob[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue; // e.g. a -shm file removed meanwhile
    if (st.isDirectory()) out.push(...readTree(p));
    else if (st.isFile()) out.push({ name: p, data: readFileSync(p) });
  }
  return out;
}

/** Where each secret appears, as "secret (form) in file". */
export function findSecrets(blobs: Blob[], secrets: string[]): string[] {
  const hits: string[] = [];
  for (const s of secrets) {
    for (const { form, text } of encodedForms(s)) {
      const needle = Buffer.from(text, 'utf8');
      for (const b of blobs) if (b.data.includes(needle)) hits.push(`${JSON.stringify(s)} (${form}) in ${b.name}`);
    }
  }
  return hits;
}

// ---- fake upstream CSMS (proxy mode)

export interface UpstreamFrame {
  station: string;
  data: Buffer;
  binary: boolean;
}

export interface FakeUpstream {
  url: string;
  /** every frame received, in order, with the exact bytes */
  received: UpstreamFrame[];
  /** the subprotocol picked per station */
  protocols: Map<string, string>;
  close(): Promise<void>;
}

/** Listens on a loopback port: the CSMS url (path /csms), and a close that ends every connection. */
export async function listenCsms(server: Server, wss: WebSocketServer): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/csms`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * A raw `ws` CSMS: picks the first OCPP subprotocol offered, records every
 * frame byte for byte, and answers the calls a charger makes with
 * schema-valid 2.0.1/2.1 responses (`answer` may override one). It parses
 * frames only to answer them.
 */
export async function fakeUpstream(o: { answer?: (station: string, action: string, params: unknown) => unknown; onCall?: (station: string, action: string, params: unknown) => void } = {}): Promise<FakeUpstream> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered].find((p) => /^ocpp(1\.6|2\.0\.1|2\.1)$/.test(p)) ?? false });
  const up: FakeUpstream = { url: '', received: [], protocols: new Map(), close: async () => {} };
  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const station = decodeURIComponent((req.url ?? '').split('/').pop() ?? '');
    wss.handleUpgrade(req, socket, head, (ws) => {
      up.protocols.set(station, ws.protocol);
      ws.on('message', (data, binary) => {
        up.received.push({ station, data: data as Buffer, binary });
        let f: unknown;
        try {
          f = JSON.parse((data as Buffer).toString('utf8'));
        } catch {
          return;
        }
        if (!Array.isArray(f) || f[0] !== 2) return;
        const [, id, action, params] = f as [number, string, string, unknown];
        o.onCall?.(station, action, params);
        const r = o.answer?.(station, action, params) ?? defaultAnswer(action, params);
        ws.send(JSON.stringify([3, id, r]));
      });
    });
  });
  return Object.assign(up, await listenCsms(server, wss));
}

function defaultAnswer(action: string, params: unknown): unknown {
  const now = new Date().toISOString();
  switch (action) {
    case 'BootNotification':
      return { status: 'Accepted', currentTime: now, interval: 300 };
    case 'Heartbeat':
      return { currentTime: now };
    case 'TransactionEvent':
      return (params as { idToken?: unknown }).idToken ? { idTokenInfo: { status: 'Accepted' } } : {};
    case 'Authorize':
      return { idTokenInfo: { status: 'Accepted' } };
    default:
      return {};
  }
}

// ---- chargers

export type RpcCharger = ReturnType<typeof ocppClient>;

export interface Charger {
  id: string;
  protocol: OcppProtocol;
  rpc: RpcCharger;
  /** every frame on the charger's wire, as text: in = received from the gateway, out = sent */
  wire: { in: string[]; out: string[] };
  close(): Promise<void>;
}

/**
 * An ocpp-rpc RPCClient (strict) for station `id`; `setup` registers its
 * handlers before it connects. It boots and, when given its Endpoint's
 * bundle, publishes it over the org.evseal DataTransfer carrier.
 */
export async function connectCharger(url: string, id: string, protocol: OcppProtocol, o: { bundle?: string; setup?: (rpc: RpcCharger) => void } = {}): Promise<Charger> {
  const rpc = ocppClient({ url }, id, protocol);
  const wire = { in: [] as string[], out: [] as string[] };
  rpc.on('message', ({ message, outbound }: { message: string | Buffer; outbound: boolean }) => (outbound ? wire.out : wire.in).push(message.toString()));
  o.setup?.(rpc);
  await rpc.connect();
  await boot(rpc, protocol);
  if (o.bundle !== undefined) {
    const r = (await rpc.call('DataTransfer', { vendorId: 'org.evseal', messageId: 'publish-bundle', data: o.bundle })) as { status: string };
    if (r.status !== 'Accepted') throw new Error(`publish-bundle: ${JSON.stringify(r)}`);
  }
  return { id, protocol, rpc, wire, close: async () => void (await rpc.close({ code: 1000 })) };
}

/** The CALL frames on a wire, parsed: [id, action, params]. */
export function calls(frames: string[], action?: string): { id: string; action: string; params: Record<string, unknown>; raw: string }[] {
  return frames
    .map((raw) => ({ raw, f: JSON.parse(raw) as unknown[] }))
    .filter(({ f }) => f[0] === 2 && (action === undefined || f[2] === action))
    .map(({ raw, f }) => ({ id: f[1] as string, action: f[2] as string, params: f[3] as Record<string, unknown>, raw }));
}

// ---- endpoints

export interface EndpointConn {
  gc: GatewayClient;
  inbox: Delivery[];
  close(): Promise<void>;
}

/** Connects an endpoint to the gateway's /endpoint service, collects its deliveries and publishes its bundle. */
export async function connectEndpoint(url: string, ep: Endpoint, bundle: string): Promise<EndpointConn> {
  const inbox: Delivery[] = [];
  const gc = await GatewayClient.connect(url, { chain: ep.id.chain, privateKey: ep.id.privateKey, onMessage: (d) => inbox.push(d) });
  await gc.publishBundle(bundle);
  return { gc, inbox, close: () => gc.close() };
}

/** Waits for the endpoint's next delivery matching `pred`. */
export async function nextDelivery(c: EndpointConn, pred: (d: Delivery) => boolean, what: string, ms = 5000): Promise<Delivery> {
  await waitFor(() => c.inbox.some(pred), what, ms);
  return c.inbox.find(pred)!;
}

