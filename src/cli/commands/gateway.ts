import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { EvsealError } from '../../core/errors.js';
import { parseRolePolicy } from '../../core/role-policy.js';
import type { GatewayLimits } from '../../gateway/server.js';
import { loadTrust } from '../../keystore/trust-files.js';
import { collect, intArg } from '../options.js';

function listenArg(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError('must be HOST:PORT, e.g. 127.0.0.1:9220');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * --config FILE: JSON with optional "limits" (see GatewayLimits), "rolePolicy"
 * (a role-policy file path), "caService", "upstream" and "id". Flags win.
 */
interface ConfigFile {
  limits?: Partial<GatewayLimits>;
  rolePolicy?: string;
  caService?: string;
  upstream?: string;
  id?: string;
}

function readConfig(path: string | undefined): ConfigFile {
  if (!path) return {};
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EvsealError('ERR_INVALID_INPUT', `config ${path}: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EvsealError('ERR_INVALID_INPUT', `config ${path}: not a JSON object`);
  const known = new Set(['limits', 'rolePolicy', 'caService', 'upstream', 'id']);
  for (const k of Object.keys(v)) if (!known.has(k)) throw new EvsealError('ERR_INVALID_INPUT', `config ${path}: unknown key ${k}`);
  const c = v as ConfigFile;
  if (c.limits !== undefined) {
    if (typeof c.limits !== 'object' || c.limits === null || Array.isArray(c.limits)) throw new EvsealError('ERR_INVALID_INPUT', `config ${path}: limits must be a JSON object`);
    for (const [k, n] of Object.entries(c.limits)) {
      if (!Number.isSafeInteger(n) || (n as number) <= 0) throw new EvsealError('ERR_INVALID_INPUT', `config ${path}: limits.${k} must be a positive integer`);
    }
  }
  return c;
}

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('run the backend-blind gateway: OCPP-J for chargers, /endpoint for endpoints, on an embedded SQLite store')
    .option('--listen <HOST:PORT>', 'address to listen on', listenArg, { host: '127.0.0.1', port: 9220 })
    .option('--data <DIR>', 'data directory (DIR/evseal.db, DIR/gateway-key.pem)', 'evseal-data')
    .requiredOption('--trust <T>', 'a CA certificate (trusted for every role) or a trust-policy JSON file')
    .option('--crl <CRL.pem>', 'a CRL to load and watch (repeatable)', collect, [])
    .option('--no-revocation-check', 'waive CRL checking of endpoints (explicit opt-out)')
    .option('--config <FILE>', 'JSON settings: limits, rolePolicy, caService, upstream, id')
    .option('--upstream <URL>', 'proxy mode: forward every OCPP frame unchanged to this CSMS (ws://host:port/path)')
    .option('--ca-service <ID>', 'endpoint id of the CA service that receives SignCertificate CSRs')
    .option('--tls-cert <PEM>', 'serve TLS with this certificate (security profiles 2 and 3)')
    .option('--tls-key <PEM>', 'private key of --tls-cert')
    .option('--tls-client-ca <PEM>', 'CA certificates that may issue charger client certificates (profile 3; repeatable)', collect, [])
    .option('--id <ID>', 'gateway id, signed into challenges and receipts')
    .option('--store <URL>', 'cluster mode: a shared PostgreSQL store (postgres://user@host:port/db[?schema=NAME]) instead of DIR/evseal.db; --data then holds the gateway key (the same on every node) and the firmware packages and rollouts this node takes in')
    .option('--bus <URL>', 'cluster mode: NATS JetStream (nats://host:port) that routes between the nodes sharing --store')
    .option('--bus-stream <NAME>', 'JetStream stream of the cluster', 'EVSEAL_MAIL')
    .option('--bus-prefix <PREFIX>', 'subject prefix of the cluster (subjects PREFIX.mail.<recipient>)', 'evseal')
    .option('--firmware-base-url <URL>', 'where stations download firmware packages (default: http(s)://LISTEN_HOST:PORT; set it when listening on a wildcard address or behind a CDN)')
    .option('--no-firmware-replication', 'cluster mode: keep each firmware package only on the node it was uploaded to (downloads are forwarded there) instead of a copy on every node')
    .option('--node-timeout <SECONDS>', 'cluster mode: a node not heard from for this long is gone, and another node takes over the firmware rollouts it held', intArg, 45)
    .option('--node-url <URL>', "cluster mode: this node's own http(s)://host:port as the other nodes reach it, to copy the firmware packages it holds or forward downloads to it (default: http(s)://LISTEN_HOST:PORT, or this host's name on a wildcard address)")
    .action(async (o) => {
      const cfg = readConfig(o.config);
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new EvsealError('ERR_USAGE', '--tls-cert and --tls-key go together');
      const fwBase = o.firmwareBaseUrl === undefined ? undefined : httpBaseUrl('--firmware-base-url', o.firmwareBaseUrl);
      const nodeUrl = o.nodeUrl === undefined ? undefined : httpBaseUrl('--node-url', o.nodeUrl);
      const rolePolicyPath: string | undefined = cfg.rolePolicy;
      // Loaded here so other commands do not pay for the OCPP stack's schemas at start.
      const { startGateway, LIMIT_NAMES } = await import('../../gateway/server.js');
      // A misspelt limit would silently keep its default.
      for (const k of Object.keys(cfg.limits ?? {})) {
        if (!LIMIT_NAMES.includes(k)) throw new EvsealError('ERR_INVALID_INPUT', `config ${o.config}: unknown limit ${k} (known: ${LIMIT_NAMES.join(', ')})`);
      }
      if (o.bus !== undefined && o.store === undefined) throw new EvsealError('ERR_USAGE', '--bus needs --store: the nodes on one bus share one PostgreSQL store');
      const cluster = o.store === undefined ? undefined : await import('../../gateway/cluster/node.js');
      const shared = cluster ? await cluster.openClusterParts({ store: o.store, bus: o.bus, stream: o.busStream, prefix: o.busPrefix, dataDir: o.data, id: o.id ?? cfg.id }) : undefined;
      const gw = await startGateway({
        store: shared?.store,
        bus: shared?.bus,
        host: o.listen.host,
        port: o.listen.port,
        dataDir: o.data,
        trust: loadTrust(o.trust),
        crlFiles: o.crl,
        revocationCheck: o.revocationCheck,
        upstream: o.upstream ?? cfg.upstream,
        caService: o.caService ?? cfg.caService,
        id: o.id ?? cfg.id,
        rolePolicy: rolePolicyPath ? parseRolePolicy(readFileSync(rolePolicyPath, 'utf8')) : undefined,
        limits: cfg.limits,
        firmwareBaseUrl: fwBase,
        firmwareReplication: o.firmwareReplication,
        nodeTimeoutMs: o.nodeTimeout * 1000,
        nodeUrl,
        tls: o.tlsCert
          ? {
              cert: readFileSync(o.tlsCert, 'utf8'),
              key: readFileSync(o.tlsKey, 'utf8'),
              clientCa: o.tlsClientCa.length > 0 ? (o.tlsClientCa as string[]).map((f) => readFileSync(f, 'utf8')) : undefined,
            }
          : undefined,
      });
      // Graceful shutdown: stop accepting, commit what is in flight, close.
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        gw.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      await new Promise(() => {});
    });
}

/** An absolute http(s) URL without a trailing slash: the download paths are appended to it. */
function httpBaseUrl(flag: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new EvsealError('ERR_USAGE', `${flag}: not a URL: ${v}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new EvsealError('ERR_USAGE', `${flag} must be http:// or https://`);
  return v.replace(/\/+$/, '');
}
