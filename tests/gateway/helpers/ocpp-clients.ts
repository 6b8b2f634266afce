// OCPP clients for the tests: ocpp-rpc's RPCClient (strict mode) and raw `ws` sockets.
import ocpp from 'ocpp-rpc';
import WebSocket from 'ws';
import { ocppValidators, type OcppProtocol } from '../../../src/gateway/ocpp/validators.js';
import type { TestGateway } from './ocpp-gateway.js';

export const PASSWORD = 'correct horse battery staple';

export function ocppClient(gw: Pick<TestGateway, 'url'>, id: string, protocol: OcppProtocol, o: { password?: string | null; wsOpts?: object; validators?: boolean } = {}) {
  return new ocpp.RPCClient({
    endpoint: gw.url,
    identity: id,
    password: o.password === undefined ? PASSWORD : o.password,
    protocols: [protocol],
    strictMode: true,
    // ocpp-rpc's own 1.6 and 2.0.1 schemas are used as shipped (an independent check of
    // our responses); its 2.1 ones cannot resolve in strict mode, so 2.1 needs ours.
    ...(protocol === 'ocpp2.1' || o.validators ? { strictModeValidators: ocppValidators() } : {}),
    reconnect: false,
    wsOpts: o.wsOpts ?? {},
  } as ConstructorParameters<typeof ocpp.RPCClient>[0]);
}


export const basicAuth = (id: string, password: string) => 'Basic ' + Buffer.from(`${id}:${password}`).toString('base64');

/** A raw WebSocket to /ocpp/<id>, for frames no OCPP library would send. */
export async function rawClient(url: string, id: string, protocols: string[], password = PASSWORD): Promise<WebSocket> {
  const ws = new WebSocket(`${url}/${encodeURIComponent(id)}`, protocols, { headers: { authorization: basicAuth(id, password) } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_r, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return ws;
}

/** Collects every frame a socket receives, with its text/binary type. */
export function frames(ws: WebSocket): { data: Buffer; binary: boolean }[] {
  const got: { data: Buffer; binary: boolean }[] = [];
  ws.on('message', (data, binary) => got.push({ data: data as Buffer, binary }));
  return got;
}

/** The close code and reason a socket ends with. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** An accepted BootNotification: the built-in CSMS delivers nothing to a station before its first one. */
export async function boot(cp: { call(method: string, params: unknown): Promise<unknown> }, protocol: OcppProtocol): Promise<void> {
  const params = protocol === 'ocpp1.6' ? { chargePointVendor: 'Acme', chargePointModel: 'T' } : { reason: 'PowerUp', chargingStation: { vendorName: 'Acme', model: 'T' } };
  const r = (await cp.call('BootNotification', params)) as { status: string };
  if (r.status !== 'Accepted') throw new Error(`boot ${r.status}`);
}

/** The HTTP status and Retry-After of an upgrade to `url`/<id> (url: the gateway's OCPP base, …/ocpp) with this password (101 when it opens). */
export async function upgradeStatus(url: string, id: string, password: string): Promise<{ status: number; retryAfter?: string }> {
  const ws = new WebSocket(`${url}/${id}`, ['ocpp1.6'], { headers: { authorization: basicAuth(id, password) } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) });
      res.resume();
      ws.terminate();
    });
    ws.once('error', (e) => (ws.readyState === ws.CLOSED ? undefined : reject(e)));
  });
}
