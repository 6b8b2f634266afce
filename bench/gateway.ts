// npm run bench (gateway part) — the evseal gateway against plain `ws`
// baselines measured in the same run, each server in its own child process
// and each load generator in another (bench/gateway-server.ts,
// bench/gateway-load.ts; identities and envelopes from bench/gateway-ids.ts):
//   1. relay throughput and latency of sealed 1 KiB messages, 1 pair
//      pipelined and 1000 pairs, against a plain ws forwarder;
//   2. RSS per idle charger connection, plain ws and TLS, against a plain ws
//      server holding the same connections;
//   3. 15,000 OCPP connections held for 60 s with heartbeats, the load split
//      over several processes (the per-process file limit is 20,000).
// Writes bench/results/gateway.json and the gateway table in docs/performance.md.
//
// Environment (defaults are the issue's figures):
//   EVSEAL_BENCH_CONNS (15000)  EVSEAL_BENCH_HOLD_S (60)  EVSEAL_BENCH_PAIRS (1000)
//   EVSEAL_BENCH_MSGS (15000, the 1-pair run)  EVSEAL_BENCH_PER_PAIR (10)
//   EVSEAL_BENCH_REPEATS (2)  EVSEAL_BENCH_IDLE (2000)  EVSEAL_BENCH_SCRYPT_N (1024)
//   EVSEAL_BENCH_HB_S (30-60, heartbeat period of the held chargers)
//   EVSEAL_BENCH_DRY=1: print the results only (no bench/results/gateway.json, no docs table), for partial runs
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { b64u } from '../src/core/base64url.js';
import { loadX509, x509Crypto } from '../src/core/x509/provider.js';
import { hashPassword } from '../src/gateway/ocpp/auth.js';
import { DEFAULT_LIMITS } from '../src/gateway/server.js';
import { SqliteStore } from '../src/gateway/store/sqlite.js';
import { initCaDir } from '../src/keystore/ca-dir.js';
import type { IdsConfig } from './gateway-ids.js';
import type { LoadConfig, OcppProgress, OcppResult, Percentiles, RelayResult } from './gateway-load.js';
import type { ServerConfig, ServerReply } from './gateway-server.js';

const envNum = (k: string, d: number): number => {
  const v = Number(process.env[k] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${k} must be a non-negative number`);
  return v;
};
const CONNS = envNum('EVSEAL_BENCH_CONNS', 15000);
const HOLD_S = envNum('EVSEAL_BENCH_HOLD_S', 60);
const PAIRS = envNum('EVSEAL_BENCH_PAIRS', 1000);
const ONE_PAIR_MSGS = envNum('EVSEAL_BENCH_MSGS', 15000);
const PER_PAIR = envNum('EVSEAL_BENCH_PER_PAIR', 10);
const REPEATS = Math.max(1, envNum('EVSEAL_BENCH_REPEATS', 2));
const IDLE = envNum('EVSEAL_BENCH_IDLE', 2000);
const SCRYPT_N = envNum('EVSEAL_BENCH_SCRYPT_N', 1024);
const WARM = 100; // connections made before the "before" RSS sample (allocator and code warm-up)
const AUTH_SAMPLE = 100; // connections for the password-cost sample
const WINDOW_ONE = 256; // messages in flight end to end, 1 pair
const WINDOW_MANY = 4; // messages in flight end to end, per pair, 1000 pairs
// Heartbeat period of the held chargers, uniformly jittered: every charger beats at least once while
// held. (The built-in CSMS itself asks for one every 300 s in its BootNotification answer.)
const [HB_MIN_S, HB_MAX_S] = (process.env.EVSEAL_BENCH_HB_S ?? '30-60').split('-').map(Number) as [number, number];
if (!(HB_MIN_S > 0 && HB_MAX_S >= HB_MIN_S)) throw new Error('EVSEAL_BENCH_HB_S must be MIN-MAX seconds, e.g. 30-60');
const RAMP_RATE = 500; // connection attempts per second, in total, at most
const PER_LOAD_PROCESS = 7500; // stations per load-generator process
const PLAINTEXT = 1024;
const WS_PASSES = 3; // the plain ws forwarder is ~10× faster: its runs send the same envelopes 3 times over so they last long enough to time

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const started = Date.now();
const log = (s: string) => process.stderr.write(`gateway bench [${((Date.now() - started) / 1000).toFixed(0)} s]: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadStart = loadavg();

// --- file limits: the gateway holds CONNS sockets, each load process its share ---------------
const limits = spawnSync('bash', ['-c', 'echo $(ulimit -Sn) $(ulimit -Hn)'], { encoding: 'utf8' }).stdout.trim().split(' ');
const nofileSoft = Number(limits[0]);
const nofileHard = limits[1] === 'unlimited' ? Infinity : Number(limits[1]);
const NOFILE = Math.min(nofileHard, 65536);
if (NOFILE < CONNS + 256) throw new Error(`the gateway needs ${CONNS + 256} file descriptors but the hard limit is ${nofileHard}`);
log(`file limit: soft ${nofileSoft}, hard ${nofileHard}; children run with ulimit -n ${NOFILE}`);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// --- child processes ---------------------------------------------------------------------------
type Msg = { type: string } & Record<string, unknown>;
class Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly #inbox: Msg[] = [];
  #wake: (() => void) | undefined;
  exited = false;
  constructor(script: string, cfg: unknown, o: { gc?: boolean } = {}) {
    // EVSEAL_BENCH_PROFILE=DIR: V8 CPU profiles of the server processes, for finding bottlenecks
    const prof = process.env.EVSEAL_BENCH_PROFILE && script !== 'gateway-ids.ts' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.EVSEAL_BENCH_PROFILE}`] : [];
    const node = [process.execPath, ...(o.gc ? ['--expose-gc'] : []), ...prof, '--import', 'tsx', join(repo, 'bench', script), JSON.stringify(cfg)];
    this.proc = spawn('bash', ['-c', `ulimit -n ${NOFILE} && exec "$@"`, 'bench-child', ...node], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.pid = this.proc.pid!;
    this.proc.on('message', (m: Msg) => {
      this.#inbox.push(m);
      this.#wake?.();
    });
    this.proc.on('exit', () => {
      this.exited = true;
      this.#wake?.();
    });
  }
  /** The next message of `type` (messages of other types stay queued). */
  async next<T>(type: string, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.#inbox.splice(i, 1)[0] as T;
      if (this.exited) throw new Error(`child ${this.pid} exited before sending ${type}`);
      if (Date.now() > deadline) throw new Error(`child ${this.pid}: no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 200);
      });
    }
  }
  /** The latest message of `type`, dropping older ones. */
  latest<T>(type: string): T | undefined {
    let last: Msg | undefined;
    for (let i = this.#inbox.length - 1; i >= 0; i--) {
      if (this.#inbox[i]!.type === type) {
        last ??= this.#inbox[i];
        this.#inbox.splice(i, 1);
      }
    }
    return last as T | undefined;
  }
  send(m: unknown): void {
    if (!this.exited && this.proc.connected) this.proc.send(m as object);
  }
  async waitExit(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.exited && Date.now() < deadline) await sleep(50);
    if (!this.exited) this.proc.kill('SIGKILL'); // by its pid: only processes this script started
  }
}
const children = new Set<Child>();
const start = (script: string, cfg: unknown, o: { gc?: boolean } = {}): Child => {
  const c = new Child(script, cfg, o);
  children.add(c);
  return c;
};
const killAll = () => {
  for (const c of children) if (!c.exited) c.proc.kill('SIGKILL');
};
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** The filesystem type of the mount holding `path` (from /proc/mounts). */
function fsOf(path: string): string {
  try {
    let best = { mnt: '', type: '?' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mnt, type] = line.split(' ');
      if (mnt && type && (path === mnt || path.startsWith(mnt.endsWith('/') ? mnt : `${mnt}/`)) && mnt.length > best.mnt.length) best = { mnt, type };
    }
    return `${best.type} (${best.mnt})`;
  } catch {
    return '?';
  }
}

// --- working directories: identities on tmpfs (their fsyncs are not what is measured), ------
// --- the gateway's SQLite store on the disk tmpdir() is on ------------------------------------
const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const idsWork = mkdtempSync(join(shm, 'evseal-bench-gw-ids-'));
const dataWork = mkdtempSync(join(tmpdir(), 'evseal-bench-gw-data-'));
const cleanup = () => {
  rmSync(idsWork, { recursive: true, force: true });
  rmSync(dataWork, { recursive: true, force: true });
};
process.on('exit', cleanup);
log(`identities in ${idsWork} (${fsOf(idsWork)}); gateway data in ${dataWork} (${fsOf(dataWork)})`);

const now = new Date();
const caDir = join(idsWork, 'ca');
await initCaDir(caDir, { name: 'Bench Root', now: new Date(now.getTime() - 3600_000) });
const caPem = join(caDir, 'ca.pem');
const crlPem = join(caDir, 'crl.pem');

// TLS server certificate: self-signed ECDSA P-256 for 127.0.0.1.
const tlsFiles = await (async () => {
  const x = await loadX509();
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await x509Crypto().subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=127.0.0.1',
      notBefore: new Date(now.getTime() - 3600_000),
      notAfter: new Date(now.getTime() + 86400_000),
      signingAlgorithm: alg,
      keys,
      extensions: [new x.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]), new x.BasicConstraintsExtension(false)],
    },
    x509Crypto(),
  );
  const pkcs8 = Buffer.from(await x509Crypto().subtle.exportKey('pkcs8', keys.privateKey));
  const certPath = join(idsWork, 'tls-cert.pem');
  const keyPath = join(idsWork, 'tls-key.pem');
  writeFileSync(certPath, cert.toString('pem'));
  writeFileSync(keyPath, `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`);
  return { cert: certPath, key: keyPath };
})();
const tlsCa = readFileSync(tlsFiles.cert, 'utf8');

// --- stations: one template store, copied into each gateway's data directory --------------------
// Every station gets the same password. The bench stations' hashes use scrypt N = SCRYPT_N (the
// gateway reads N, r, p from the stored hash); AUTH_SAMPLE more get the gateway's default cost
// (hashPassword), for the password-cost sample.
const PASSWORD = 'bench-station-password';
const DEFAULT_PASSWORD = 'bench-station-password-default-cost';
const template = join(idsWork, 'stations');
const stationCount = Math.max(CONNS, WARM + IDLE + AUTH_SAMPLE);
{
  const t = Date.now();
  const salt = randomBytes(16);
  const cheap = `scrypt$${SCRYPT_N}$8$1$${b64u(salt)}$${b64u(scryptSync(PASSWORD, salt, 32, { N: SCRYPT_N, r: 8, p: 1, maxmem: 256 * SCRYPT_N * 8 }))}`;
  const dflt = await hashPassword(DEFAULT_PASSWORD);
  const store = new SqliteStore(template);
  for (let n = 0; n < stationCount; n++) await store.putStation({ id: `cs-${String(n).padStart(5, '0')}`, passwordHash: cheap, created: Date.now() });
  for (let n = 0; n < AUTH_SAMPLE; n++) await store.putStation({ id: `cd-${String(n).padStart(5, '0')}`, passwordHash: dflt, created: Date.now() });
  await store.close();
  log(`registered ${stationCount} stations (scrypt N=${SCRYPT_N}) and ${AUTH_SAMPLE} (default cost: ${dflt.split('$').slice(1, 4).join('/')}) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}
const DEFAULT_SCRYPT = (await hashPassword('x')).split('$').slice(1, 4).map(Number) as [number, number, number];
let dirN = 0;
function gatewayDir(withStations: boolean): string {
  const d = join(dataWork, `gw-${dirN++}`);
  mkdirSync(d, { recursive: true });
  if (withStations) copyFileSync(join(template, 'evseal.db'), join(d, 'evseal.db'));
  return d;
}
const gatewayCfg = (o: { stations: boolean; tls?: boolean; limits?: ServerConfig['limits'] }): ServerConfig => {
  const dataDir = gatewayDir(o.stations);
  return {
    mode: 'evseal',
    dataDir,
    trust: caPem,
    crl: crlPem,
    logFile: join(dataDir, 'gateway.log'),
    ...(o.tls ? { tls: tlsFiles } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
  };
};

async function stopServer(s: Child): Promise<void> {
  s.send({ cmd: 'close' });
  try {
    await s.next('closed', 15_000);
  } catch {
    /* killed below */
  }
  await s.waitExit(5_000);
}

// =============================================================================================
// 1. relay throughput
// =============================================================================================
const idsFiles: string[] = [];
const pair0File = join(idsWork, 'pair-0.json');
const PAIRS_MADE = Math.max(PAIRS, ONE_PAIR_MSGS > 0 ? 1 : 0);
if (PAIRS_MADE > 0) {
  const t = Date.now();
  const workers = Math.max(1, Math.min(cpus().length, 4));
  const counts = Array.from({ length: PAIRS_MADE }, (_, i) => (i === 0 ? Math.max(ONE_PAIR_MSGS, PER_PAIR) : PER_PAIR));
  // A worker that reports no progress for IDS_STALL_MS is killed (by its pid) and started again in a
  // fresh directory. Seen here: a worker's main thread blocked in a futex for good after 0.35 s of CPU,
  // while still loading modules: the Node 20 module-hooks thread that tsx uses (a known class of
  // deadlock, nodejs/node#50948); every child of this bench runs under tsx the same way.
  const IDS_STALL_MS = 60_000;
  const runIds = async (w: number): Promise<void> => {
    const out = join(idsWork, `pairs-${w}.json`);
    idsFiles.push(out);
    for (let attempt = 0; ; attempt++) {
      const work = join(idsWork, `w${w}-${attempt}`);
      mkdirSync(work, { recursive: true });
      const cfg: IdsConfig = { work, caDir, pairs: counts.map((_, i) => i).filter((i) => i % workers === w), counts, out, smallCount: PER_PAIR, out0: pair0File, plaintextBytes: PLAINTEXT };
      const k = start('gateway-ids.ts', cfg);
      let last = Date.now();
      while (!k.exited && Date.now() - last < IDS_STALL_MS) {
        await sleep(500);
        if (k.latest('progress')) last = Date.now();
      }
      if (k.exited && k.proc.exitCode === 0) return;
      if (!k.exited) k.proc.kill('SIGKILL');
      await k.waitExit(5_000);
      if (attempt >= 2) throw new Error(`identity worker ${k.pid} failed (exit ${k.proc.exitCode}), ${attempt + 1} attempts`);
      log(`identity worker ${k.pid} ${k.proc.exitCode === null ? `made no progress for ${IDS_STALL_MS / 1000} s` : `failed (exit ${k.proc.exitCode})`}: starting it again`);
    }
  };
  log(`making ${PAIRS_MADE * 2} identities and sealing ${counts.reduce((a, b) => a + b, 0)} envelopes in ${workers} processes`);
  await Promise.all(Array.from({ length: workers }, (_, w) => runIds(w)));
  log(`identities and envelopes ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}
const envelopeChars = existsSync(pair0File) ? (JSON.parse(readFileSync(pair0File, 'utf8')) as { envs: string[] }[])[0]?.envs[0]?.length ?? 0 : 0;

interface RelayRun extends RelayResult {
  target: 'evseal' | 'ws';
  pairs: number;
  window: number;
  serverCpuSeconds: number;
  serverCpuUsPerMsg: number;
}

async function relayRun(target: 'evseal' | 'ws', pairs: number, perPair: number, window: number): Promise<RelayRun> {
  // The per-connection frame budget (default 2000 frames/s) would cap one pipelined sender at 2000 msg/s: raised here.
  const server = start('gateway-server.ts', target === 'evseal' ? gatewayCfg({ stations: false, limits: { framesPerSecond: 1_000_000 } }) : ({ mode: 'ws-forward' } satisfies ServerConfig));
  try {
    const { url } = await server.next<Extract<ServerReply, { type: 'ready' }>>('ready', 60_000);
    const cfg: LoadConfig = { mode: 'relay', target, url, idsFiles: pairs === 1 ? [pair0File] : idsFiles, pairs, perPair, passes: WS_PASSES, window, timeoutMs: 60_000 };
    const load = start('gateway-load.ts', cfg);
    await load.next('relay-start', 180_000);
    const c0 = cpuSeconds(server.pid);
    await load.next('relay-end', 90_000);
    const c1 = cpuSeconds(server.pid);
    const r = await load.next<RelayResult>('relay-result', 60_000);
    await load.waitExit(15_000);
    const run: RelayRun = { ...r, target, pairs, window, serverCpuSeconds: c1 - c0, serverCpuUsPerMsg: ((c1 - c0) / Math.max(1, r.completed)) * 1e6 };
    log(
      `relay ${target} ${pairs} pair(s), ${r.messages} msgs: ${r.msgsPerSec.toFixed(0)} msg/s, delivery p50 ${r.deliveryMs.p50.toFixed(1)} ms p99 ${r.deliveryMs.p99.toFixed(1)} ms, ` +
        `server CPU ${run.serverCpuUsPerMsg.toFixed(0)} µs/msg${r.errors.length ? `, errors: ${r.errors.slice(0, 3).join('; ')}` : ''}`,
    );
    return run;
  } finally {
    await stopServer(server);
  }
}

const scenarios = [
  { name: '1 pair, pipelined', pairs: 1, perPair: ONE_PAIR_MSGS, window: WINDOW_ONE },
  { name: `${PAIRS} pairs`, pairs: PAIRS, perPair: PER_PAIR, window: WINDOW_MANY },
].filter((s) => s.pairs > 0 && s.perPair > 0);
const relayRuns: RelayRun[] = [];
for (let rep = 0; rep < REPEATS; rep++) {
  for (const s of scenarios) {
    // alternate which side goes first, so slow drifts in machine load hit both alike
    const order: ('ws' | 'evseal')[] = rep % 2 === 0 ? ['ws', 'evseal'] : ['evseal', 'ws'];
    for (const target of order) relayRuns.push(await relayRun(target, s.pairs, s.perPair, s.window));
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const relaySummary = scenarios.map((s) => {
  const runs = (t: 'evseal' | 'ws') => relayRuns.filter((r) => r.target === t && r.pairs === s.pairs);
  const sum = (t: 'evseal' | 'ws') => {
    const rs = runs(t);
    return {
      msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
      msgsPerSecRuns: rs.map((r) => r.msgsPerSec),
      steadyMsgsPerSec: median(rs.map((r) => r.steadyMsgsPerSec)),
      deliveryP50Ms: median(rs.map((r) => r.deliveryMs.p50)),
      deliveryP99Ms: median(rs.map((r) => r.deliveryMs.p99)),
      roundTripP50Ms: median(rs.map((r) => r.roundTripMs.p50)),
      roundTripP99Ms: median(rs.map((r) => r.roundTripMs.p99)),
      ...(t === 'evseal' ? { acceptP50Ms: median(rs.map((r) => r.acceptMs!.p50)), acceptP99Ms: median(rs.map((r) => r.acceptMs!.p99)) } : {}),
      serverCpuUsPerMsg: median(rs.map((r) => r.serverCpuUsPerMsg)),
      serverCpuShare: median(rs.map((r) => r.serverCpuSeconds / r.seconds)),
      loadCpuShare: median(rs.map((r) => r.loadCpuSeconds / r.seconds)),
      complete: rs.every((r) => r.completed === r.messages && r.errors.length === 0 && r.deliveredTwice === 0 && (t === 'ws' || (r.accepted === r.messages && r.receipts === r.messages && r.duplicatesAccepted === 0))),
    };
  };
  // per repeat ratio (runs of a repeat are adjacent in time), then the median
  const e = runs('evseal');
  const w = runs('ws');
  const ratios = e.map((r, i) => r.msgsPerSec / w[i]!.msgsPerSec);
  // The same without each run's first 10 % (a fresh server process warming up), for both alike: reported beside the criterion, not instead of it.
  const steadyRatios = e.map((r, i) => r.steadyMsgsPerSec / w[i]!.steadyMsgsPerSec);
  return { scenario: s.name, pairs: s.pairs, messagesPerRun: s.pairs * s.perPair, window: s.window, evseal: sum('evseal'), ws: sum('ws'), ratio: median(ratios), ratios, steadyRatio: median(steadyRatios), steadyRatios };
});

// =============================================================================================
// 2. RSS per idle charger connection
// =============================================================================================
interface IdleRun {
  server: 'evseal' | 'ws';
  tls: boolean;
  connections: number;
  failed: number;
  rssBefore: number;
  rssAfter: number;
  bytesPerConn: number;
  heapBytesPerConn: number;
  serverSeesConnections: number;
  authSample?: { cheapPerSec: number; defaultPerSec: number; cheapN: number; defaultScrypt: [number, number, number] };
}

const LOGINS_AT_ONCE = DEFAULT_LIMITS.maxPendingLogins;

async function ocppLoad(url: string, o: Partial<Extract<LoadConfig, { mode: 'ocpp' }>> & { from: number; count: number }): Promise<Child> {
  const cfg: LoadConfig = {
    mode: 'ocpp',
    url,
    prefix: 'cs-',
    password: PASSWORD,
    rate: 2000,
    // Connection attempts in progress stay within the logins the gateway checks at once (more get 503).
    concurrency: LOGINS_AT_ONCE,
    boot: true,
    hbMinS: 0,
    hbMaxS: 0,
    callTimeoutMs: 30_000,
    ...(url.startsWith('wss') ? { ca: tlsCa } : {}),
    ...o,
  };
  return start('gateway-load.ts', cfg);
}

/** Waits until every attempt of the given load processes has ended (connected or failed). */
async function ramped(loads: Child[], counts: number[], timeoutMs: number, label: string): Promise<OcppProgress> {
  const deadline = Date.now() + timeoutMs;
  const last: OcppProgress[] = loads.map(() => ({ type: 'ocpp-progress', attempted: 0, connected: 0, failed: 0, drops: 0, hbOk: 0, hbErr: 0 }));
  let said = Date.now();
  for (;;) {
    loads.forEach((l, i) => {
      const p = l.latest<OcppProgress>('ocpp-progress');
      if (p) last[i] = p;
    });
    const sum = last.reduce((a, p) => ({ ...a, attempted: a.attempted + p.attempted, connected: a.connected + p.connected, failed: a.failed + p.failed, drops: a.drops + p.drops, hbOk: a.hbOk + p.hbOk, hbErr: a.hbErr + p.hbErr }));
    if (last.every((p, i) => p.connected + p.failed >= counts[i]!)) return sum;
    if (Date.now() - said > 5000) {
      log(`${label}: ${sum.connected} connected, ${sum.failed} failed of ${counts.reduce((a, b) => a + b, 0)}`);
      said = Date.now();
    }
    if (Date.now() > deadline || loads.some((l) => l.exited)) throw new Error(`${label}: ramp did not finish (${sum.connected} connected, ${sum.failed} failed)`);
    await sleep(250);
  }
}

async function finishLoads(loads: Child[]): Promise<OcppResult[]> {
  for (const l of loads) l.send({ cmd: 'finish' });
  const rs = await Promise.all(loads.map((l) => l.next<OcppResult>('ocpp-result', 30_000)));
  await Promise.all(loads.map((l) => l.waitExit(20_000)));
  return rs;
}

/** RSS and V8 heap of a server process after forced GCs: the median of three samples. */
async function memSample(server: Child): Promise<{ rss: number; heapUsed: number }> {
  const xs: Extract<ServerReply, { type: 'mem' }>[] = [];
  for (let i = 0; i < 3; i++) {
    server.send({ cmd: 'mem' });
    xs.push(await server.next<Extract<ServerReply, { type: 'mem' }>>('mem', 30_000));
  }
  return { rss: median(xs.map((x) => x.rss)), heapUsed: median(xs.map((x) => x.heapUsed)) };
}

async function idleRun(kind: 'evseal' | 'ws', tls: boolean): Promise<IdleRun> {
  const server = start('gateway-server.ts', kind === 'evseal' ? gatewayCfg({ stations: true, tls }) : ({ mode: 'ws-idle', ...(tls ? { tls: tlsFiles } : {}) } satisfies ServerConfig), { gc: true });
  const loads: Child[] = [];
  try {
    const { url } = await server.next<Extract<ServerReply, { type: 'ready' }>>('ready', 60_000);
    // A ws baseline charger only connects (there is no CSMS to answer); an evseal charger also boots.
    const boot = kind === 'evseal';
    loads.push(await ocppLoad(url, { from: 0, count: WARM, boot }));
    await ramped([loads[0]!], [WARM], 60_000, 'warm-up');
    await sleep(500);
    const before = await memSample(server);
    loads.push(await ocppLoad(url, { from: WARM, count: IDLE, boot }));
    const p = await ramped([loads[1]!], [IDLE], 180_000, `idle ${kind}${tls ? ' TLS' : ''}`);
    await sleep(1000);
    const after = await memSample(server);
    const conns = await (server.send({ cmd: 'conns' }), server.next<Extract<ServerReply, { type: 'conns' }>>('conns', 30_000));
    const run: IdleRun = {
      server: kind,
      tls,
      connections: p.connected,
      failed: p.failed,
      rssBefore: before.rss,
      rssAfter: after.rss,
      bytesPerConn: (after.rss - before.rss) / Math.max(1, p.connected),
      heapBytesPerConn: (after.heapUsed - before.heapUsed) / Math.max(1, p.connected),
      serverSeesConnections: kind === 'evseal' ? conns.stations : conns.sockets,
    };
    if (kind === 'evseal' && !tls && AUTH_SAMPLE > 0) {
      // Password cost: connection rate with the bench's cheap hashes against the gateway's default.
      const rate = async (prefix: string, from: number, password: string) => {
        const l = await ocppLoad(url, { prefix, from, count: AUTH_SAMPLE, password, boot: false, concurrency: Math.min(AUTH_SAMPLE, LOGINS_AT_ONCE), rate: 100_000 });
        loads.push(l);
        await ramped([l], [AUTH_SAMPLE], 120_000, `auth sample ${prefix}`);
        const [r] = await finishLoads([l]);
        return r!.connected / r!.rampSeconds;
      };
      run.authSample = { cheapN: SCRYPT_N, cheapPerSec: await rate('cs-', WARM + IDLE, PASSWORD), defaultPerSec: await rate('cd-', 0, DEFAULT_PASSWORD), defaultScrypt: DEFAULT_SCRYPT };
    }
    await finishLoads(loads.filter((l) => !l.exited));
    log(`idle ${kind}${tls ? ' TLS' : ''}: ${run.connections} connections (${run.failed} failed), ${(run.bytesPerConn / 1024).toFixed(1)} KiB RSS per connection (RSS ${(run.rssBefore / 2 ** 20).toFixed(1)} → ${(run.rssAfter / 2 ** 20).toFixed(1)} MiB, heap ${(before.heapUsed / 2 ** 20).toFixed(1)} → ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB)`);
    return run;
  } finally {
    for (const l of loads) if (!l.exited) l.proc.kill('SIGKILL');
    await stopServer(server);
  }
}

const idleRuns: IdleRun[] = [];
if (IDLE > 0) {
  for (const tls of [false, true]) for (const kind of ['ws', 'evseal'] as const) idleRuns.push(await idleRun(kind, tls));
}

// =============================================================================================
// 3. CONNS OCPP connections held HOLD_S seconds with heartbeats
// =============================================================================================
interface HoldResult {
  connections: number;
  processes: number;
  connected: number;
  failed: number;
  drops: number;
  heldAtEnd: number;
  rampSeconds: number;
  holdSeconds: number;
  heartbeats: number;
  heartbeatErrors: number;
  heartbeatMs: Percentiles;
  bootMs: Percentiles;
  failReasons: Record<string, number>;
  dropCodes: Record<string, number>;
  gatewayRssStart: number;
  gatewayRssAfter: number;
  /** not idle: heartbeats are running */
  rssPerConnection: number;
  gatewayCpuSecondsDuringHold: number;
}
let hold: HoldResult | undefined;
if (CONNS > 0) {
  const server = start('gateway-server.ts', gatewayCfg({ stations: true }), { gc: true });
  const loads: Child[] = [];
  try {
    const { url } = await server.next<Extract<ServerReply, { type: 'ready' }>>('ready', 60_000);
    const rssStart = (await memSample(server)).rss;
    const procs = Math.max(2, Math.ceil(CONNS / PER_LOAD_PROCESS));
    const shares = Array.from({ length: procs }, (_, i) => Math.floor(CONNS / procs) + (i < CONNS % procs ? 1 : 0));
    let from = 0;
    const t0 = Date.now();
    for (const count of shares) {
      loads.push(await ocppLoad(url, { from, count, rate: RAMP_RATE / procs, concurrency: Math.floor(LOGINS_AT_ONCE / procs), hbMinS: HB_MIN_S, hbMaxS: HB_MAX_S }));
      from += count;
    }
    log(`hold: ${CONNS} chargers from ${procs} processes, at most ${RAMP_RATE} attempts/s, heartbeats every ${HB_MIN_S}–${HB_MAX_S} s`);
    await ramped(loads, shares, Math.max(150_000, (CONNS / RAMP_RATE) * 5000), 'hold ramp');
    const rampSeconds = (Date.now() - t0) / 1000;
    log(`hold: ramp done in ${rampSeconds.toFixed(1)} s; holding ${HOLD_S} s`);
    const c0 = cpuSeconds(server.pid);
    const holdStart = Date.now();
    while (Date.now() - holdStart < HOLD_S * 1000) {
      await sleep(Math.min(10_000, HOLD_S * 1000 - (Date.now() - holdStart)));
      const p = loads.map((l) => l.latest<OcppProgress>('ocpp-progress'));
      if (p.every(Boolean)) {
        const s = p as OcppProgress[];
        log(`hold +${((Date.now() - holdStart) / 1000).toFixed(0)} s: ${s.reduce((a, x) => a + x.connected - x.drops, 0)} up, ${s.reduce((a, x) => a + x.drops, 0)} drops, ${s.reduce((a, x) => a + x.hbOk, 0)} heartbeats (${s.reduce((a, x) => a + x.hbErr, 0)} failed)`);
      }
    }
    const holdSeconds = (Date.now() - holdStart) / 1000;
    const c1 = cpuSeconds(server.pid);
    const conns = await (server.send({ cmd: 'conns' }), server.next<Extract<ServerReply, { type: 'conns' }>>('conns', 30_000));
    const mem = await memSample(server);
    const rs = await finishLoads(loads);
    const hbAll = rs.map((r) => r.hbMs);
    const addTo = (a: Record<string, number>, b: Record<string, number>) => {
      for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
      return a;
    };
    hold = {
      connections: CONNS,
      processes: procs,
      connected: rs.reduce((a, r) => a + r.connected, 0),
      failed: rs.reduce((a, r) => a + r.failed, 0),
      drops: rs.reduce((a, r) => a + r.drops, 0),
      heldAtEnd: conns.stations,
      rampSeconds,
      holdSeconds,
      heartbeats: rs.reduce((a, r) => a + r.hbOk, 0),
      heartbeatErrors: rs.reduce((a, r) => a + r.hbErr, 0),
      // per-process percentiles combined conservatively: the worst p50/p99/max of the processes
      heartbeatMs: { n: hbAll.reduce((a, h) => a + h.n, 0), p50: Math.max(...hbAll.map((h) => h.p50)), p99: Math.max(...hbAll.map((h) => h.p99)), max: Math.max(...hbAll.map((h) => h.max)) },
      bootMs: { n: rs.reduce((a, r) => a + r.bootMs.n, 0), p50: Math.max(...rs.map((r) => r.bootMs.p50)), p99: Math.max(...rs.map((r) => r.bootMs.p99)), max: Math.max(...rs.map((r) => r.bootMs.max)) },
      failReasons: rs.reduce((a, r) => addTo(a, r.failReasons), {} as Record<string, number>),
      dropCodes: rs.reduce((a, r) => addTo(a, r.dropCodes), {} as Record<string, number>),
      gatewayRssStart: rssStart,
      gatewayRssAfter: mem.rss,
      rssPerConnection: (mem.rss - rssStart) / Math.max(1, conns.stations),
      gatewayCpuSecondsDuringHold: c1 - c0,
    };
    log(`hold: ${hold.connected} connected, ${hold.failed} failed, ${hold.drops} drops, ${hold.heldAtEnd} held at the end; ${hold.heartbeats} heartbeats, ${hold.heartbeatErrors} failed, p99 ${hold.heartbeatMs.p99.toFixed(1)} ms`);
  } finally {
    for (const l of loads) if (!l.exited) l.proc.kill('SIGKILL');
    await stopServer(server);
  }
}

// =============================================================================================
// results
// =============================================================================================
const idle = (kind: 'evseal' | 'ws', tls: boolean) => idleRuns.find((r) => r.server === kind && r.tls === tls);
const KiB = (b: number | undefined) => (b === undefined ? NaN : b / 1024);
const criteria = [
  ...relaySummary.map((s) => ({
    criterion: `relay throughput, ${s.scenario}: evseal / plain ws forwarder ≥ 0.5`,
    value: s.ratio,
    met: s.ratio >= 0.5 && s.evseal.complete,
  })),
  { criterion: 'RSS per idle charger connection, plain ws ≤ 32 KiB', value: KiB(idle('evseal', false)?.bytesPerConn), met: KiB(idle('evseal', false)?.bytesPerConn) <= 32 },
  { criterion: 'RSS per idle charger connection, TLS ≤ 64 KiB', value: KiB(idle('evseal', true)?.bytesPerConn), met: KiB(idle('evseal', true)?.bytesPerConn) <= 64 },
  ...(hold
    ? [{ criterion: `${CONNS} OCPP connections held ${HOLD_S} s with zero drops`, value: hold.drops + hold.failed, met: hold.drops === 0 && hold.failed === 0 && hold.heldAtEnd === CONNS }]
    : []),
];
const ratios: Record<string, number> = {};
for (const s of relaySummary) ratios[`relay msg/s, ${s.scenario}: evseal / plain ws forwarder (criterion ≥ 0.5)`] = s.ratio;
for (const tls of [false, true]) {
  const e = idle('evseal', tls);
  const w = idle('ws', tls);
  if (e && w) ratios[`RSS per idle connection${tls ? ', TLS' : ''}: evseal / plain ws server`] = e.bytesPerConn / w.bytesPerConn;
}
const machine = {
  node: process.version,
  openssl: process.versions.openssl,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
  memGiB: Math.round(totalmem() / 2 ** 30),
  loadavgStart: loadStart.map((x) => x.toFixed(2)).join(' '),
  loadavgEnd: loadavg().map((x) => x.toFixed(2)).join(' '),
  nofile: { soft: nofileSoft, hard: nofileHard, children: NOFILE },
  gatewayDataFs: fsOf(dataWork),
};
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).stdout.trim();
// whether src/ had uncommitted changes when measured
const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repo, encoding: 'utf8' }).stdout.trim().length > 0;
const result = {
  command: 'npm run bench (node --import tsx bench/gateway.ts)',
  date: new Date().toISOString(),
  commit,
  srcDirty: dirty,
  machine,
  method: {
    processes: 'gateway (or baseline server) in one child process, load generators in others; ids and envelopes made in worker processes before timing',
    envelopes: `1 KiB plaintext, X25519-SHA256-AES256GCM, ECDSA P-256 identities, pre-sealed (sealing is endpoint cost, see bench/core.ts); ${envelopeChars} characters each`,
    relay: `sender pipelines with at most W messages in flight end to end (W=${WINDOW_ONE} for 1 pair, ${WINDOW_MANY} per pair for ${PAIRS} pairs); the recipient acknowledges, in one frame, what arrived in one I/O turn; a message completes when its acknowledgement is confirmed to the load generator (evseal: acked frame with delivery receipts; ws: the ack forwarded back to the sender). evseal throughput also waits for every accepted frame (durable: synchronous=FULL commit). Gateway limit framesPerSecond raised to 1e6 (default 2000 per connection would cap one sender at 2000 msg/s). Each evseal run starts a fresh gateway with an empty store. ${REPEATS} repeats, alternating order; median.`,
    plainWsForwarder: 'a `ws` server forwarding each frame of /s/<i> to /r/<i> and each frame of /r/<i> back to /s/<i>, unparsed, no storage',
    idle: `${WARM} warm-up connections, then RSS (after forced GC) before and after ${IDLE} more idle OCPP 1.6 connections (Basic auth; evseal chargers also send BootNotification, baseline chargers only connect); (after − before) / connections`,
    hold: `${CONNS} OCPP 1.6 chargers (Basic auth, BootNotification, then Heartbeat every ${HB_MIN_S}–${HB_MAX_S} s, uniformly jittered) from ≥ 2 load processes, at most ${RAMP_RATE} connection attempts/s; held ${HOLD_S} s after the last connected; a drop is a connection closed by anything but the load generator's own finish`,
    stationPasswords: `bench stations are stored with scrypt N=${SCRYPT_N}, r=8, p=1 (the gateway reads the cost from the stored hash); the gateway's default is N=${DEFAULT_SCRYPT[0]}, r=${DEFAULT_SCRYPT[1]}, p=${DEFAULT_SCRYPT[2]}, whose connection rate is sampled separately`,
  },
  config: { CONNS, HOLD_S, PAIRS, ONE_PAIR_MSGS, PER_PAIR, REPEATS, IDLE, WARM, SCRYPT_N, WINDOW_ONE, WINDOW_MANY, WS_PASSES, HB_MIN_S, HB_MAX_S, RAMP_RATE },
  criteria,
  ratios,
  relay: relaySummary,
  relayRuns,
  idle: idleRuns,
  hold,
  wallSeconds: (Date.now() - started) / 1000,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const DRY = process.env.EVSEAL_BENCH_DRY === '1';
if (!DRY) writeFileSync(new URL('./results/gateway.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

// --- docs/performance.md: the section between the gateway markers is regenerated ------------------
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const f1 = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '—');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const lines = [
  `Measured ${result.date.slice(0, 10)} with \`npm run bench\` (\`node --import tsx bench/gateway.ts\`) on ${machine.cpus}, ${machine.memGiB} GiB, Node ${machine.node}; gateway store on ${machine.gatewayDataFs}; load average ${machine.loadavgStart} at the start, ${machine.loadavgEnd} at the end. Gateway and load generators in separate processes; ${REPEATS} repeats, median.`,
  '',
  'What is measured (each server in its own child process, each load generator in another; the machine has 2 cores):',
  '',
  `- **Relay**: senders (provisioning identities) submit pre-sealed envelopes (1 KiB plaintext, classical suite, ECDSA P-256; sealing is endpoint cost, measured above) with \`GatewayClient.sendEnvelope\`; recipients (chargers on \`/endpoint\`) acknowledge, in one frame, what arrived in one I/O turn. A message counts once its \`accepted\` (committed with synchronous=FULL) and the \`acked\` of its delivery have arrived. At most ${WINDOW_ONE} messages in flight end to end for 1 pair, ${WINDOW_MANY} per pair for ${PAIRS} pairs. Each evseal run starts a fresh gateway with an empty store; \`framesPerSecond\` is raised to 10^6 for it (the default, 2000 per connection, would cap one sender at 2000 msg/s).`,
  `- **Plain ws forwarder**: a \`ws\` server that forwards every frame of a sender's socket to its recipient's and back, unparsed and unstored; same envelopes (sent ${WS_PASSES} times over, so that its much shorter runs can be timed), frame shape, windows and acknowledgement batching. "Server CPU" is the server process's user + system time per message; "load CPU" the load generator's, which bounds the forwarder's figure.`,
  `- **Idle connections**: RSS (after forced GC, median of 3 samples) before and after ${IDLE} OCPP 1.6 connections with Basic auth, after ${WARM} warm-up connections; evseal chargers also send BootNotification, baseline chargers only connect.`,
  `- **Hold**: ${CONNS} chargers from ≥ 2 load processes (file limit ${nofileHard} per process), at most ${RAMP_RATE} connection attempts/s, BootNotification, then Heartbeat every ${HB_MIN_S}–${HB_MAX_S} s (jittered), held ${HOLD_S} s after the last one connected. A drop is a connection closed other than by the load generator at the end.`,
  `- **Station passwords**: the bench stations' hashes use scrypt N=${SCRYPT_N} (the gateway reads the cost from the stored hash) so that ${CONNS} connections can be made within the run; the default cost (N=${DEFAULT_SCRYPT[0]}) is sampled separately below.`,
  '',
  '| criterion (same run) | value | met |',
  '| --- | --: | :-: |',
  ...criteria.map((c) => `| ${c.criterion} | ${c.criterion.includes('KiB') ? `${f1(c.value)} KiB` : c.criterion.includes('drops') ? `${c.value} dropped or failed` : f2(c.value)} | ${c.met ? 'yes' : '**no**'} |`),
  '',
  `Relay of sealed 1 KiB messages (${envelopeChars}-character envelopes), end to end: sent → durable (evseal) → delivered → acknowledged.`,
  '',
  '| scenario | server | msg/s | delivery p50 / p99 (ms) | ack round trip p50 / p99 (ms) | accepted p50 / p99 (ms) | server CPU µs/msg | server / load CPU (% of a core) | evseal / ws |',
  '| --- | --- | --: | --: | --: | --: | --: | --: | --: |',
  ...relaySummary.flatMap((s) => [
    `| ${s.scenario}, window ${s.window}${s.pairs > 1 ? ' per pair' : ''}, ${s.messagesPerRun} msgs | plain ws forwarder | ${f0(s.ws.msgsPerSec)} | ${f1(s.ws.deliveryP50Ms)} / ${f1(s.ws.deliveryP99Ms)} | ${f1(s.ws.roundTripP50Ms)} / ${f1(s.ws.roundTripP99Ms)} | — | ${f0(s.ws.serverCpuUsPerMsg)} | ${f0(s.ws.serverCpuShare * 100)} / ${f0(s.ws.loadCpuShare * 100)} | |`,
    `| | evseal gateway | ${f0(s.evseal.msgsPerSec)} | ${f1(s.evseal.deliveryP50Ms)} / ${f1(s.evseal.deliveryP99Ms)} | ${f1(s.evseal.roundTripP50Ms)} / ${f1(s.evseal.roundTripP99Ms)} | ${f1(s.evseal.acceptP50Ms ?? NaN)} / ${f1(s.evseal.acceptP99Ms ?? NaN)} | ${f0(s.evseal.serverCpuUsPerMsg)} | ${f0(s.evseal.serverCpuShare * 100)} / ${f0(s.evseal.loadCpuShare * 100)} | ${f2(s.ratio)} |`,
  ]),
  '',
  `Per-repeat ratios (run order alternates): ${relaySummary.map((s) => `${s.scenario} ${s.ratios.map(f2).join(', ')}`).join('; ')}. Steady state, each run's first 10 % of completions left out for both servers alike (a fresh process warming up; the forwarder's runs are ${WS_PASSES}× longer, so warm-up weighs less in its whole-run figure): ${relaySummary.map((s) => `${s.scenario} ${f2(s.steadyRatio)}`).join(', ')} evseal / ws. The criterion above uses the whole runs.`,
  '',
  `Idle charger connections (${IDLE} after ${WARM} warm-up, RSS after forced GC):`,
  '',
  '| transport | server | connected | RSS per connection (KiB) | V8 heap per connection (KiB) | evseal / ws |',
  '| --- | --- | --: | --: | --: | --: |',
  ...[false, true].flatMap((tls) =>
    (['ws', 'evseal'] as const).map((k) => {
      const r = idle(k, tls);
      const w = idle('ws', tls);
      return r ? `| ${tls ? 'TLS (wss)' : 'plain ws'} | ${k === 'ws' ? 'plain ws server' : 'evseal gateway'} | ${r.connections}${r.failed ? ` (${r.failed} failed)` : ''} | ${f1(KiB(r.bytesPerConn))} | ${f1(KiB(r.heapBytesPerConn))} | ${k === 'evseal' && w ? f2(r.bytesPerConn / w.bytesPerConn) : ''} |` : '';
    }),
  ).filter(Boolean),
  '',
  ...(idle('evseal', false)?.authSample
    ? (() => {
        const a = idle('evseal', false)!.authSample!;
        return [
          `Station password cost: ${f0(a.cheapPerSec)} connections/s with the bench's scrypt N=${a.cheapN} hashes, ${f0(a.defaultPerSec)} connections/s with the gateway's default (N=${a.defaultScrypt[0]}, r=${a.defaultScrypt[1]}): ${CONNS} stations reconnecting at once would take about ${f0(CONNS / a.defaultPerSec)} s at the default cost.`,
          '',
        ];
      })()
    : []),
  ...(hold
    ? [
        `${hold.connections} OCPP 1.6 chargers from ${hold.processes} load processes (Basic auth, BootNotification, Heartbeat every ${HB_MIN_S}–${HB_MAX_S} s):`,
        '',
        '| connected | failed | drops | held at the end | ramp (s) | held (s) | heartbeats | failed heartbeats | heartbeat p50 / p99 (ms) | boot p50 / p99 (ms) | gateway RSS (MiB) | RSS per connection (KiB) | gateway CPU during hold |',
        '| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
        `| ${hold.connected} | ${hold.failed} | ${hold.drops} | ${hold.heldAtEnd} | ${f1(hold.rampSeconds)} | ${f1(hold.holdSeconds)} | ${hold.heartbeats} | ${hold.heartbeatErrors} | ${f1(hold.heartbeatMs.p50)} / ${f1(hold.heartbeatMs.p99)} | ${f1(hold.bootMs.p50)} / ${f1(hold.bootMs.p99)} | ${f0(hold.gatewayRssStart / 2 ** 20)} → ${f0(hold.gatewayRssAfter / 2 ** 20)} | ${f1(KiB(hold.rssPerConnection))} | ${f0((hold.gatewayCpuSecondsDuringHold / hold.holdSeconds) * 100)} % of a core |`,
      ]
    : []),
];
const perfPath = new URL('../docs/performance.md', import.meta.url);
let doc = readFileSync(perfPath, 'utf8');
const startMark = '<!-- bench:gateway:start -->';
const endMark = '<!-- bench:gateway:end -->';
if (!doc.includes(startMark) || !doc.includes(endMark)) doc = `${doc.replace(/\n*$/, '\n')}\n${startMark}\n${endMark}\n`;
doc = doc.slice(0, doc.indexOf(startMark) + startMark.length) + '\n' + lines.join('\n') + '\n' + doc.slice(doc.indexOf(endMark));
if (!DRY) writeFileSync(perfPath, doc);
console.log(JSON.stringify({ criteria, ratios, wallSeconds: result.wallSeconds }, null, 2));
killAll();
