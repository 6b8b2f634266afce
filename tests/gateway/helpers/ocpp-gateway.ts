// Test fixture: the OCPP service mounted on a real HTTP(S) server on
// 127.0.0.1, over a real SQLite store in a temporary directory, with the
// in-test router and a log captured in memory (to check what it never holds).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createMetrics, type Metrics } from '../../../src/gateway/metrics.js';
import { DEFAULT_LIMITS } from '../../../src/gateway/server.js';
import { createOcppService, type OcppService, type OcppServiceOptions } from '../../../src/gateway/ocpp/service.js';
import { hashPassword } from '../../../src/gateway/ocpp/auth.js';
import { SqliteStore } from '../../../src/gateway/store/sqlite.js';
import type { GatewayContext } from '../../../src/gateway/context.js';
import { Directory } from '../../../src/gateway/directory.js';
import { GatewayTrust } from '../../../src/gateway/trust.js';
import { TestRouter } from './ocpp-router.js';
import { TokenBuckets } from '../../../src/gateway/token-buckets.js';
import type { TrustPolicy } from '../../../src/core/x509/index.js';

export interface TestGateway {
  /** ws(s)://127.0.0.1:port/ocpp — RPCClient appends /<identity> */
  url: string;
  store: SqliteStore;
  router: TestRouter;
  metrics: Metrics;
  service: OcppService;
  ctx: GatewayContext;
  logs: string[];
  addStation(id: string, o?: { password?: string; certFingerprint?: string }): Promise<void>;
  /** Current value of a labelled counter, e.g. refused('bad-password'). */
  counter(name: keyof Metrics, labels: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export async function startGateway(
  o: Partial<OcppServiceOptions> & { tlsServer?: { key: string; cert: string; ca: string }; dataDir?: string; trust?: TrustPolicy } = {},
): Promise<TestGateway> {
  const dir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'evseal-ocpp-'));
  const store = new SqliteStore(dir);
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const metrics = createMetrics();
  const router = new TestRouter(store);
  const { tlsServer, dataDir, trust, ...opts } = o;
  // With a trust policy, the directory carriers (publish-bundle, publish-prekeys, claim-prekey) are served.
  const directory =
    trust === undefined
      ? undefined
      : new Directory(store, new GatewayTrust({ policy: trust, revocationCheck: false, store, log }), Date.now, new TokenBuckets({ burst: DEFAULT_LIMITS.prekeyClaimBurst, perMinute: DEFAULT_LIMITS.prekeyClaimsPerMinute }));
  const ctx: GatewayContext = { store, log, metrics, router, ...(directory ? { directory } : {}), now: Date.now };
  const service = createOcppService(ctx, {
    maxFrameBytes: 64 * 1024,
    maxBadMessages: 3,
    callsPerSecond: 50,
    tls: tlsServer !== undefined,
    callTimeoutMs: 2000,
    logins: { failureBurst: DEFAULT_LIMITS.loginFailureBurst, failuresPerMinute: DEFAULT_LIMITS.loginFailuresPerMinute, maxPending: DEFAULT_LIMITS.maxPendingLogins },
    ...opts,
  });
  const server: Server = tlsServer
    ? createHttpsServer({ key: tlsServer.key, cert: tlsServer.cert, ca: tlsServer.ca, requestCert: true, rejectUnauthorized: false })
    : createHttpServer();
  server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').startsWith('/ocpp/')) service.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tlsServer ? 'wss' : 'ws'}://127.0.0.1:${port}/ocpp`,
    store,
    router,
    metrics,
    service,
    ctx,
    logs,
    async addStation(id, s = {}) {
      await store.putStation({
        id,
        ...(s.password !== undefined ? { passwordHash: await hashPassword(s.password) } : {}),
        ...(s.certFingerprint !== undefined ? { certFingerprint: s.certFingerprint } : {}),
        created: Date.now(),
      });
    },
    async counter(name, labels) {
      const m = await (metrics[name] as { get(): Promise<{ values: { labels: Record<string, string | number>; value: number }[] }> }).get();
      return m.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
    },
    async close() {
      await service.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      if (dataDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `pred` holds, polling; fails after `ms`. */
export async function until(pred: () => boolean | Promise<boolean>, ms = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
