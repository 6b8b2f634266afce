import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { isRole, type Role } from '../core/roles.js';
import type { RolePolicy } from '../core/role-policy.js';
import type { TrustPolicy } from '../core/x509/index.js';
import { AuditLog } from './audit/log.js';
import type { GatewayContext } from './context.js';
import { createEndpointService } from './endpoint/service.js';
import { loadOrCreateGatewayKey } from './identity.js';
import { createMetrics } from './metrics.js';
import { createOcppService } from './ocpp/service.js';
import { defaultRoutePolicy } from './route-policy.js';
import { DEFAULT_ROUTER_LIMITS, MailRouter, type RouterBus, type RouterLimits } from './router.js';
import { SqliteStore } from './store/sqlite.js';
import type { GatewayStore } from './store/store.js';
import { GatewayTrust } from './trust.js';
import { Directory } from './directory.js';
import { StoreTokenBuckets, TokenBuckets, type Budgets } from './token-buckets.js';
import { PackageStore } from './firmware/packages.js';
import { RolloutManager } from './firmware/rollouts.js';
import { PackageHolders } from './firmware/holders.js';
import { endpointFirmware, type PackagePeers } from './firmware/endpoint.js';
import { PackageReplication } from './firmware/replication.js';
import { NodePresence } from './cluster/presence.js';
import { createFirmwareHttp } from './firmware/http.js';

export interface GatewayLimits extends RouterLimits {
  /** largest WebSocket frame accepted on either service */
  maxFrameBytes: number;
  /** malformed frames tolerated per connection before it is closed */
  maxBadMessages: number;
  /** frames per second per endpoint connection (token bucket) */
  framesPerSecond: number;
  /** OCPP CALLs per second per station connection (token bucket, one second's burst) */
  stationCallsPerSecond: number;
  /** deliveries in flight per connection */
  window: number;
  /** failed logins one station id may make from one source address in a burst (then 429 until refilled) */
  loginFailureBurst: number;
  /** failed logins per minute that budget is refilled with */
  loginFailuresPerMinute: number;
  /** station logins (password checks) in progress at once; more get 503 */
  maxPendingLogins: number;
  /** endpoint connections from one source address awaiting authentication; more get 429 */
  maxUnauthenticatedPerSource: number;
  /** one-time prekeys one identity may claim of another in a burst (then none until refilled) */
  prekeyClaimBurst: number;
  /** one-time prekey claims per minute each (claimer, owner) pair is refilled with */
  prekeyClaimsPerMinute: number;
  /** firmware download requests from one source address answered 404, in a burst (then 429 until refilled) */
  firmwareNotFoundBurst: number;
  /** 404 answers per minute that budget is refilled with */
  firmwareNotFoundPerMinute: number;
  /** firmware download requests served at once; more get 503 */
  maxFirmwareDownloads: number;
}

export const DEFAULT_LIMITS: Omit<GatewayLimits, keyof RouterLimits> = {
  maxFrameBytes: 1024 * 1024 + 4096,
  maxBadMessages: 10,
  framesPerSecond: 2000,
  stationCallsPerSecond: 50,
  window: 256,
  loginFailureBurst: 10,
  loginFailuresPerMinute: 6,
  maxPendingLogins: 64,
  maxUnauthenticatedPerSource: 64,
  prekeyClaimBurst: 10,
  prekeyClaimsPerMinute: 1,
  firmwareNotFoundBurst: 20,
  firmwareNotFoundPerMinute: 10,
  maxFirmwareDownloads: 256,
};

/** Every limit `limits` may set. */
export const LIMIT_NAMES: readonly string[] = [...Object.keys(DEFAULT_ROUTER_LIMITS), ...Object.keys(DEFAULT_LIMITS)];

/** A cluster node silent this long (or ten node timeouts, if longer) is forgotten: its presence and package records go. */
const FORGET_NODE_MS = 3600_000;

export interface GatewayOptions {
  host?: string;
  port?: number;
  dataDir: string;
  trust: TrustPolicy;
  crlFiles?: string[];
  revocationCheck?: boolean;
  /** PEM server certificate and key; with `clientCa`, chargers may use mutual TLS (security profile 3) */
  tls?: { cert: string; key: string; clientCa?: string[] };
  /** proxy mode: an existing CSMS that gets every OCPP frame unchanged */
  upstream?: string;
  /** endpoint id of the CA service that SignCertificate requests go to */
  caService?: string;
  id?: string;
  rolePolicy?: RolePolicy;
  limits?: Partial<GatewayLimits>;
  log?: Logger;
  /** another store implementation (the cluster's); default SQLite in dataDir */
  store?: GatewayStore;
  now?: () => number;
  /** how often expired messages are swept (ms) */
  expirySweepMs?: number;
  /** cluster mode: the bus to the other nodes (cluster/bus.ts) over a shared store; closed with the gateway */
  bus?: RouterBus & { close(): Promise<void>; shareCrls(trust: GatewayTrust): void; shareFirmware(rollouts: RolloutManager): void; sharePackages(replication: PackageReplication): void };
  /** where stations download firmware packages, e.g. https://fw.example.net (default: this server's own http(s)://host:port) */
  firmwareBaseUrl?: string;
  /** cluster mode: this node's own http(s)://host:port as the other nodes reach it (default: the listen address, or this host's name when listening on a wildcard address) */
  nodeUrl?: string;
  /** cluster mode: copy every firmware package to this node (default true; false keeps each package on the node it was uploaded to, downloads are forwarded there) */
  firmwareReplication?: boolean;
  /** cluster mode: a node not heard from for this long is gone, and its open firmware rollouts are taken over (ms, default 45 000) */
  nodeTimeoutMs?: number;
}

export interface RunningGateway {
  url: string;
  port: number;
  store: GatewayStore;
  router: MailRouter;
  trust: GatewayTrust;
  audit: AuditLog;
  /** endpoints and stations currently connected */
  connections(): { endpoints: number; stations: number };
  close(): Promise<void>;
}

/**
 * Runs the gateway: one HTTP(S) server carrying /ocpp/<stationId> (OCPP-J),
 * /endpoint (the endpoint protocol), /healthz and /metrics, over one store.
 */
export async function startGateway(o: GatewayOptions): Promise<RunningGateway> {
  const log = o.log ?? pino({ base: { component: 'evseal-gateway' }, timestamp: pino.stdTimeFunctions.isoTime });
  const now = o.now ?? Date.now;
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const store: GatewayStore = o.store ?? new SqliteStore(o.dataDir);
  const id = o.id ?? 'gateway';
  const key = loadOrCreateGatewayKey(o.dataDir, id);
  const audit = await AuditLog.open(store, key);
  const metrics = createMetrics();
  const trust = new GatewayTrust({ policy: o.trust, revocationCheck: o.revocationCheck ?? true, store, log, now });
  await trust.load(o.crlFiles ?? []);
  trust.watch(o.crlFiles ?? []);
  o.bus?.shareCrls(trust);

  // Recipient roles, cached briefly: a role never changes for an id, but a
  // station may be added (by another process) or a bundle published.
  const roles = new Map<string, { role: Role; until: number }>();
  const roleOf = async (rid: string): Promise<Role | undefined> => {
    const hit = roles.get(rid);
    if (hit && hit.until > now()) return hit.role;
    const r = (await store.getStation(rid)) ? 'charger' : await store.bundleRole(rid);
    if (!isRole(r)) return undefined;
    if (roles.size > 100_000) roles.clear();
    roles.set(rid, { role: r, until: now() + 30_000 });
    return r;
  };
  const router = new MailRouter({ store, audit, metrics, log, policy: defaultRoutePolicy(o.rolePolicy), limits: o.limits, now, roleOf, bus: o.bus });
  // a store shared with other nodes (not this process's alone): this node is one of a cluster
  const cluster = store.exclusive !== true;
  // in a cluster the budgets of one-time prekey claims and failed logins are kept in the store, for all nodes at once
  const sharedStore = cluster && StoreTokenBuckets.supported(store) ? store : undefined;
  const budgets = (prefix: string, b: { burst: number; perMinute: number }): Budgets =>
    sharedStore ? new StoreTokenBuckets(sharedStore, { prefix, ...b, log }) : new TokenBuckets({ ...b, now });
  const directory = new Directory(store, trust, now, budgets('otk ', { burst: limits.prekeyClaimBurst, perMinute: limits.prekeyClaimsPerMinute }));
  const ctx: GatewayContext = { store, log, metrics, router, directory, now };
  // Firmware packages under DATA/firmware, served over HTTP(S) to stations; rollouts go out as OCPP calls.
  const packages = new PackageStore({ dataDir: o.dataDir });
  let baseUrl = '';
  let nodeUrl = '';
  const holders = new PackageHolders(store, () => nodeUrl);
  if (cluster) {
    // one URL key for the cluster, so that any node can check any download URL: the first node's is kept
    if (packages.adoptUrlKey(await store.putSettingIfAbsent('firmware.url-key', packages.urlKeyText))) {
      log.warn('firmware URL key replaced by the cluster\'s (in the shared store): download URLs this node handed out before no longer work');
    }
  }
  const replication = cluster && o.firmwareReplication !== false ? new PackageReplication({ packages, holders, log: log.child({ component: 'firmware' }), now }) : undefined;
  if (replication) o.bus?.sharePackages(replication);
  const peers: PackagePeers = replication ?? {
    commit: async (pid, sha256, commit) => {
      const index = await commit();
      await holders.record(pid, sha256, { undelete: true });
      return index;
    },
    deleted: async (pid) => {
      await holders.forget(pid);
      return false;
    },
  };
  const rollouts = new RolloutManager(ctx, {
    packages,
    policy: defaultRoutePolicy(o.rolePolicy),
    baseUrl: () => o.firmwareBaseUrl ?? baseUrl,
    fields: (pid) => packages.ocppFields(pid),
    dataDir: o.dataDir,
    node: () => nodeUrl,
    shared: cluster,
    ...(replication ? { ensurePackage: (pid: string) => replication.ensure(pid) } : {}),
  });
  ctx.firmware = rollouts;
  o.bus?.shareFirmware(rollouts);
  const firmwareHttp = createFirmwareHttp(packages, holders, log.child({ component: 'firmware' }), {
    limits: { notFoundBurst: limits.firmwareNotFoundBurst, notFoundPerMinute: limits.firmwareNotFoundPerMinute, maxConcurrent: limits.maxFirmwareDownloads },
    metrics,
    replication,
  });

  const endpoints = createEndpointService(ctx, trust, directory, audit, {
    gatewayId: id,
    gatewayKey: key.publicKeyB64u,
    maxFrameBytes: limits.maxFrameBytes,
    maxBadMessages: limits.maxBadMessages,
    framesPerSecond: limits.framesPerSecond,
    authTimeoutMs: 10_000,
    maxUnauthenticatedPerSource: limits.maxUnauthenticatedPerSource,
    window: limits.window,
    firmware: endpointFirmware(packages, rollouts, peers),
  });
  const ocpp = createOcppService(ctx, {
    upstream: o.upstream,
    caService: o.caService,
    maxFrameBytes: limits.maxFrameBytes,
    maxBadMessages: limits.maxBadMessages,
    callsPerSecond: limits.stationCallsPerSecond,
    tls: o.tls !== undefined,
    logins: {
      failureBurst: limits.loginFailureBurst,
      failuresPerMinute: limits.loginFailuresPerMinute,
      maxPending: limits.maxPendingLogins,
      ...(sharedStore ? { shared: budgets('login ', { burst: limits.loginFailureBurst, perMinute: limits.loginFailuresPerMinute }) } : {}),
    },
  });

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', id, store: store.kind, endpoints: endpoints.connections(), stations: ocpp.connections() }));
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    if (firmwareHttp.matches(req)) return firmwareHttp.handle(req, res);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  };

  const server: Server = o.tls
    ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key, ca: o.tls.clientCa, requestCert: o.tls.clientCa !== undefined, rejectUnauthorized: false }, onRequest)
    : createHttpServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/endpoint') return endpoints.handleUpgrade(req, socket, head);
    if (path.startsWith('/ocpp/')) return ocpp.handleUpgrade(req, socket, head);
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });
  server.on('clientError', (_e, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 9220, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const listen = o.host ?? '127.0.0.1';
  const host = listen.includes(':') ? `[${listen}]` : listen; // an IPv6 literal goes in brackets in a URL
  const http = o.tls ? 'https' : 'http';
  const url = `${o.tls ? 'wss' : 'ws'}://${host}:${port}`;
  baseUrl = `${http}://${host}:${port}`;
  nodeUrl = o.nodeUrl ?? (listen === '0.0.0.0' || listen === '::' ? `${http}://${hostname()}:${port}` : baseUrl);
  // now that this node serves its copies: catch up with what the cluster holds
  void replication?.sweep();
  // In a cluster, at start and every third of the node timeout, this node records that it is alive, then: takes over the
  // rollouts of nodes that are gone (and drops its own that another took over while it was away), applies the station
  // reports parked for its rollouts, forgets nodes long gone, and (without replication) records the packages it holds.
  // The shared store's clock where it has one (PostgreSQL): the nodes' own clocks may disagree.
  const clock = store.clockMicros ? async () => Number((await store.clockMicros!()) / 1000n) : async () => now();
  const presence = cluster ? new NodePresence({ store, self: () => nodeUrl, timeoutMs: o.nodeTimeoutMs ?? 45_000, clock, log }) : undefined;
  let ticking: Promise<void> | undefined;
  const clusterTick = (): Promise<void> =>
    (ticking ??= (async () => {
      try {
        await presence!.beat();
        await rollouts.syncHolders(await presence!.gone());
        // by three node timeouts a report's rollout has been taken over, if its node was gone: older ones concern no rollout held
        await rollouts.takeAllParked(3 * presence!.timeoutMs);
        // long gone (or moved to another address): no more forwarding to it or copying from it; it records itself again when back
        for (const node of await presence!.forget(Math.max(FORGET_NODE_MS, 10 * presence!.timeoutMs))) {
          log.warn({ node, packages: await holders.forgetNode(node) }, 'node silent for long forgotten: its package records removed');
        }
        // without replication (whose sweep does it), this node records what it holds under its address, for the others to
        // forward to: after a start at another address, or after it was itself forgotten while cut off from the store
        if (!replication) await holders.recordHeld(await packages.list(), (pid) => packages.digest(pid));
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'cluster housekeeping failed; retried');
      } finally {
        ticking = undefined;
      }
    })());
  if (presence) await clusterTick();
  const ticker = presence ? setInterval(() => void clusterTick(), presence.intervalMs) : undefined;
  ticker?.unref();

  const expiry = setInterval(() => {
    router.expire().catch((e: unknown) => log.error({ err: (e as Error).message }, 'expiry sweep failed'));
  }, o.expirySweepMs ?? 5000);
  expiry.unref();
  // the cluster's budgets that are full again are as good as never spent
  const quotaSweep = sharedStore?.quotaSweep
    ? setInterval(() => void sharedStore.quotaSweep!().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'quota sweep failed')), 60_000)
    : undefined;
  quotaSweep?.unref();
  // Certificates expire while connected: re-validate every minute.
  const recheck = setInterval(() => endpoints.recheck(), 60_000);
  recheck.unref();
  // Other nodes queue and deliver too: per-recipient depths are re-read from the store every second.
  const depths = o.bus ? setInterval(() => router.forgetDepths(), 1000) : undefined;
  depths?.unref();
  log.info({ url, store: store.kind, id, mode: o.upstream ? 'proxy' : 'built-in CSMS' }, 'gateway listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    store,
    router,
    trust,
    audit,
    connections: () => ({ endpoints: endpoints.connections(), stations: ocpp.connections() }),
    close(): Promise<void> {
      closing ??= (async () => {
        clearInterval(expiry);
        clearInterval(recheck);
        clearInterval(depths);
        clearInterval(ticker);
        clearInterval(quotaSweep);
        await ticking;
        trust.unwatch();
        const closed = new Promise<void>((r) => server.close(() => r()));
        await router.drain();
        await Promise.all([endpoints.close(), ocpp.close()]);
        await rollouts.flush();
        await replication?.close();
        server.closeAllConnections();
        await closed;
        await o.bus?.close();
        await store.close();
        log.info('gateway stopped');
      })();
      return closing;
    },
  };
}
