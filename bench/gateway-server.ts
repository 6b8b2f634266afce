// Child process of bench/gateway.ts: the server side of one measurement, on
// its own event loop (and, on a 2-core machine, its own core). Modes:
//   evseal      the evseal gateway (startGateway), SQLite store in dataDir
//   ws-forward  the baseline relay: a plain `ws` server that forwards every
//               frame of /s/<i> to /r/<i> and back, unparsed
//   ws-idle     the baseline for idle connections: a plain `ws` server that
//               accepts ocpp1.6 connections and holds them
// argv[2] is a JSON ServerConfig. Talks to the parent over IPC: it sends
// {type:'ready', url, pid} once listening and answers {cmd:'mem'} (after a
// forced GC), {cmd:'conns'} and {cmd:'close'}.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { startGateway, type GatewayLimits, type RunningGateway } from '../src/gateway/server.js';
import { loadTrust } from '../src/keystore/trust-files.js';

export interface ServerConfig {
  mode: 'evseal' | 'ws-forward' | 'ws-idle';
  /** PEM file paths of the server certificate and key: serve wss:// */
  tls?: { cert: string; key: string };
  // evseal only
  dataDir?: string;
  trust?: string;
  crl?: string;
  limits?: Partial<GatewayLimits>;
  logFile?: string;
}

export type ServerReply =
  | { type: 'ready'; url: string; pid: number }
  | { type: 'mem'; rss: number; heapUsed: number; external: number; arrayBuffers: number }
  | { type: 'conns'; endpoints: number; stations: number; sockets: number; dropped: number }
  | { type: 'closed' };

const cfg = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;
const reply = (m: ServerReply): void => void process.send?.(m);
const gc = (globalThis as { gc?: () => void }).gc;

let gw: RunningGateway | undefined;
let server: Server | undefined;
let wss: WebSocketServer | undefined;
let dropped = 0;

if (cfg.mode === 'evseal') {
  const log = pino({ level: 'info', base: { component: 'evseal-gateway' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: cfg.logFile ?? '/dev/null', sync: false }));
  gw = await startGateway({
    host: '127.0.0.1',
    port: 0,
    dataDir: cfg.dataDir!,
    trust: loadTrust(cfg.trust!),
    crlFiles: cfg.crl ? [cfg.crl] : [],
    log,
    ...(cfg.limits ? { limits: cfg.limits } : {}),
    ...(cfg.tls ? { tls: { cert: readFileSync(cfg.tls.cert, 'utf8'), key: readFileSync(cfg.tls.key, 'utf8') } } : {}),
  });
  reply({ type: 'ready', url: gw.url, pid: process.pid });
} else {
  server = cfg.tls ? createHttpsServer({ cert: readFileSync(cfg.tls.cert, 'utf8'), key: readFileSync(cfg.tls.key, 'utf8') }) : createHttpServer();
  wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: 1024 * 1024 + 4096,
    handleProtocols: (offered) => (offered.has('ocpp1.6') ? 'ocpp1.6' : false),
  });
  const peers = new Map<string, WebSocket>();
  wss.on('connection', (ws, req) => {
    ws.on('error', () => ws.terminate());
    if (cfg.mode !== 'ws-forward') return; // ws-idle: hold the connection, nothing else
    const m = /^\/([sr])\/(\d+)$/.exec(req.url ?? '');
    if (!m) return ws.close(1008);
    const self = `${m[1]}:${m[2]}`;
    const other = `${m[1] === 's' ? 'r' : 's'}:${m[2]}`;
    peers.set(self, ws);
    ws.on('message', (data, isBinary) => {
      const p = peers.get(other);
      if (p && p.readyState === p.OPEN) p.send(data as Buffer, { binary: isBinary });
      else dropped++;
    });
    ws.on('close', () => {
      if (peers.get(self) === ws) peers.delete(self);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  reply({ type: 'ready', url: `${cfg.tls ? 'wss' : 'ws'}://127.0.0.1:${port}`, pid: process.pid });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

process.on('message', (msg: { cmd: string }) => {
  void (async () => {
    if (msg.cmd === 'mem') {
      // Settle: several full collections with pauses, so that finalizers run and freed pages can be returned.
      for (let i = 0; i < 3; i++) {
        gc?.();
        await sleep(100);
      }
      const m = process.memoryUsage();
      reply({ type: 'mem', rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
    } else if (msg.cmd === 'conns') {
      const c = gw?.connections() ?? { endpoints: 0, stations: 0 };
      reply({ type: 'conns', ...c, sockets: wss?.clients.size ?? 0, dropped });
    } else if (msg.cmd === 'close') {
      const t = setTimeout(() => process.exit(0), 10_000);
      if (gw) await gw.close();
      if (wss) {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server?.close();
      }
      clearTimeout(t);
      reply({ type: 'closed' });
      setTimeout(() => process.exit(0), 50);
    }
  })();
});
process.on('disconnect', () => process.exit(0));
