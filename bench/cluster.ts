// Cluster benchmark (docs/cluster.md, docs/scaling.md): throughput and p99
// of sealed 1 KiB messages through a cluster of 1, 2 and 3 gateway nodes
// (real processes of the built CLI) on the local PostgreSQL and NATS
// JetStream, measured interleaved in one run. With 2 and 3 nodes every
// sender and its recipient sit on different nodes, so every message crosses
// the bus. Also PostgreSQL write transactions and WAL bytes per message,
// from pg_current_xact_id / pg_current_wal_lsn around each run.
//   node --import tsx bench/cluster.ts        (needs `npm run build` first)
import { readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { execSync } from 'node:child_process';
import pg from 'pg';
import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { GatewayClient } from '../src/client/gateway-client.js';
import { deleteStream } from '../src/gateway/cluster/bus.js';
import { loadOrCreateGatewayKey } from '../src/gateway/identity.js';
import { PostgresStore } from '../src/gateway/store/postgres.js';
import type { Endpoint } from '../src/keystore/endpoint.js';
import { PASSPHRASE, World } from '../tests/helpers/world.js';
import { startNode, type Node } from '../tests/cluster/nodes.js';
import { freshBusNames, freshSchema, NATS_URL, PG_URL, servicesMissing } from '../tests/cluster/services.js';

const PAIRS = Number(process.env.BENCH_CLUSTER_PAIRS ?? 4);
const MSGS = Number(process.env.BENCH_CLUSTER_MSGS ?? 300); // per pair and run
const WINDOW = Number(process.env.BENCH_CLUSTER_WINDOW ?? 64); // per sender, in flight end to end
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 5);
const SIZES = [1, 2, 3];
const RUN_TIMEOUT_MS = 60_000;

const missing = await servicesMissing({ pg: true, nats: true });
if (missing) process.exit(process.env.CI === 'true' ? 1 : 0);

const w = new World();
w.now = Date.now();
const ca = await w.ca('ca');
const crl = join(ca, 'crl.pem');
const keyDir = w.path('key');
loadOrCreateGatewayKey(keyDir);
const pairs: { cp: Endpoint; psp: Endpoint; pspDir: string; envs: { id: string; body: string }[] }[] = [];
const plain = new Uint8Array(1024).fill(0x61);
for (let i = 0; i < PAIRS; i++) {
  const cpDir = await w.identity(ca, 'charger', `CP-b${i}`);
  const pspDir = await w.identity(ca, 'psp', `psp-b${i}`);
  const cp = w.endpoint(cpDir, w.trust(ca), [crl]);
  const psp = w.endpoint(pspDir, w.trust(ca), [crl]);
  const bundle = w.bundle(pspDir);
  const envs = Array.from({ length: MSGS }, () => {
    const body = cp.seal(bundle, plain, { kind: 'payment', lifetimeSec: 3600 });
    return { id: (JSON.parse(Buffer.from((JSON.parse(body) as { hdr: string }).hdr, 'base64url').toString()) as { id: string }).id, body };
  });
  pairs.push({ cp, psp, pspDir, envs });
}
const env = { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE };

/** Write transactions so far (every one takes a transaction id; this read takes one too) and WAL bytes so far. */
async function pgCounters(): Promise<{ commits: number; walBytes: number }> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const r = await c.query<{ xid: string; wal: string }>("SELECT pg_current_xact_id()::text AS xid, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS wal");
    return { commits: Number(r.rows[0]!.xid), walBytes: Number(r.rows[0]!.wal) };
  } finally {
    await c.end();
  }
}

interface RunResult {
  nodes: number;
  messages: number;
  seconds: number;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  pgCommitsPerMsg: number;
  pgWalBytesPerMsg: number;
  /** CPU ms per message, by component, over the timed part */
  cpuMsPerMsg: { nodes: number; postgres: number; nats: number; load: number };
  streamRecords: number;
  streamBytesPerRecord: number;
  crossNode: boolean;
}

/** CPU seconds (user + system) of processes, from /proc: gateway nodes by pid, PostgreSQL and NATS by name. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}
function pidsNamed(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === name) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
function cpuSample(nodePids: number[]): { nodes: number; postgres: number; nats: number; load: number } {
  const sum = (ps: number[]) => ps.reduce((a, p) => a + cpuSeconds(p), 0);
  const u = process.cpuUsage();
  return { nodes: sum(nodePids), postgres: sum(pidsNamed('postgres')), nats: sum(pidsNamed('nats-server')), load: (u.user + u.system) / 1e6 };
}

/** Records and bytes the run left in its JetStream stream. */
async function streamState(stream: string): Promise<{ messages: number; bytes: number }> {
  const nc = await natsConnect({ servers: NATS_URL });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    return { messages: info.state.messages, bytes: info.state.bytes };
  } finally {
    await nc.close();
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function run(n: number): Promise<RunResult> {
  const schema = freshSchema('bench');
  const bus = freshBusNames('bench');
  const cfg = { storeUrl: schema.url, natsUrl: NATS_URL, stream: bus.stream, prefix: bus.prefix, keyDir, trust: join(ca, 'ca.pem'), crl, env };
  const nodes: Node[] = [];
  const clients: GatewayClient[] = [];
  try {
    for (let i = 0; i < n; i++) nodes.push(await startNode(cfg, `n${i}`));
    const sentAt = new Map<string, number>();
    const lat: number[] = [];
    let delivered = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const total = PAIRS * MSGS;
    const senders: GatewayClient[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const p = pairs[i]!;
      // recipient on the next node: with n > 1 every message crosses nodes
      let rc: GatewayClient;
      rc = await GatewayClient.connect(nodes[(i + 1) % n]!.url, {
        chain: p.psp.id.chain,
        privateKey: p.psp.id.privateKey,
        onMessage: (d) => {
          const t = sentAt.get(d.id);
          if (t !== undefined) {
            lat.push(performance.now() - t);
            sentAt.delete(d.id);
            if (++delivered === total) done();
          }
          void rc.ack(d.seq).catch(() => undefined);
        },
      });
      await rc.publishBundle(w.bundle(p.pspDir));
      clients.push(rc);
      const sc = await GatewayClient.connect(nodes[i % n]!.url, { chain: p.cp.id.chain, privateKey: p.cp.id.privateKey });
      clients.push(sc);
      senders.push(sc);
    }
    const before = await pgCounters();
    const nodePids = nodes.map((nd) => nd.proc.pid!);
    const cpu0 = cpuSample(nodePids);
    const t0 = performance.now();
    await Promise.all(
      pairs.map(async (p, i) => {
        const sc = senders[i]!;
        let next = 0;
        const lane = async () => {
          while (next < p.envs.length) {
            const e = p.envs[next++]!;
            sentAt.set(e.id, performance.now());
            await sc.sendEnvelope(e.body);
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, lane));
      }),
    );
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`run with ${n} nodes: ${delivered} of ${total} delivered after ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS).unref());
    await Promise.race([all, timeout]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuSample(nodePids);
    const after = await pgCounters();
    const st = await streamState(bus.stream);
    const r: RunResult = {
      nodes: n,
      messages: total,
      seconds,
      msgsPerSec: total / seconds,
      p50Ms: pct(lat, 50),
      p99Ms: pct(lat, 99),
      pgCommitsPerMsg: (after.commits - before.commits - 1) / total,
      pgWalBytesPerMsg: (after.walBytes - before.walBytes) / total,
      cpuMsPerMsg: {
        nodes: ((cpu1.nodes - cpu0.nodes) * 1000) / total,
        postgres: ((cpu1.postgres - cpu0.postgres) * 1000) / total,
        nats: ((cpu1.nats - cpu0.nats) * 1000) / total,
        load: ((cpu1.load - cpu0.load) * 1000) / total,
      },
      streamRecords: st.messages,
      streamBytesPerRecord: st.messages > 0 ? st.bytes / st.messages : 0,
      crossNode: n > 1,
    };
    const c = r.cpuMsPerMsg;
    process.stderr.write(
      `cluster | ${n} node(s): ${r.msgsPerSec.toFixed(0)} msg/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ${r.pgCommitsPerMsg.toFixed(2)} write tx/msg, ${r.pgWalBytesPerMsg.toFixed(0)} WAL B/msg, CPU ms/msg nodes ${c.nodes.toFixed(2)} pg ${c.postgres.toFixed(2)} nats ${c.nats.toFixed(2)} load ${c.load.toFixed(2)}\n`,
    );
    return r;
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const nd of nodes) await nd.kill('SIGTERM');
    await schema.drop();
    await deleteStream(NATS_URL, bus.stream);
  }
}

/**
 * The built-in CSMS writes a station's state (store.putStationState) on
 * every Heartbeat, StatusNotification and transaction event: on a cluster,
 * PostgreSQL upserts. Measured through the store, STATE_WRITERS at once,
 * with a state shaped like a booted station's.
 */
const STATE_OPS = 4000;
const STATE_WRITERS = 64;
async function stationStateWrites(): Promise<{ ops: number; opsPerSec: number; writeTxPerOp: number; walBytesPerOp: number }> {
  const sc = freshSchema('bench_state');
  const store = await PostgresStore.open({ url: sc.url, poolSize: 6 });
  const state = (i: number) => ({
    protocol: 'ocpp2.0.1',
    boot: { at: new Date().toISOString(), reason: 'PowerUp', vendor: 'ChargeCo', model: 'AC-22', serialNumber: `SN-${i}`, firmwareVersion: '1.4.2' },
    lastHeartbeat: new Date().toISOString(),
    connectors: { '1/1': { status: 'Available', at: new Date().toISOString() } },
    transactions: {},
    nextTransactionId: 1,
    securityEvents: [],
  });
  try {
    let next = 0;
    const before = await pgCounters();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: STATE_WRITERS }, async () => {
        while (next < STATE_OPS) {
          const i = next++;
          await store.putStationState(`CP-s${i % 1000}`, state(i));
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const after = await pgCounters();
    const r = { ops: STATE_OPS, opsPerSec: STATE_OPS / seconds, writeTxPerOp: (after.commits - before.commits - 1) / STATE_OPS, walBytesPerOp: (after.walBytes - before.walBytes) / STATE_OPS };
    process.stderr.write(`cluster | station state upserts: ${r.opsPerSec.toFixed(0)}/s, ${r.walBytesPerOp.toFixed(0)} WAL B/op\n`);
    return r;
  } finally {
    await store.close();
    await sc.drop();
  }
}

const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ');
const runs: RunResult[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // alternate the order, so drift on the shared machine falls on every size alike
  for (const n of round % 2 === 0 ? SIZES : [...SIZES].reverse()) runs.push(await run(n));
}
const stateWrites = await stationStateWrites();
const median = (xs: number[]) => pct(xs, 50);
const summary = SIZES.map((n) => {
  const rs = runs.filter((r) => r.nodes === n);
  return {
    nodes: n,
    msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    pgCommitsPerMsg: median(rs.map((r) => r.pgCommitsPerMsg)),
    pgWalBytesPerMsg: median(rs.map((r) => r.pgWalBytesPerMsg)),
    streamBytesPerRecord: median(rs.map((r) => r.streamBytesPerRecord)),
    cpuMsPerMsg: {
      nodes: median(rs.map((r) => r.cpuMsPerMsg.nodes)),
      postgres: median(rs.map((r) => r.cpuMsPerMsg.postgres)),
      nats: median(rs.map((r) => r.cpuMsPerMsg.nats)),
      load: median(rs.map((r) => r.cpuMsPerMsg.load)),
    },
  };
});
// Ratios as the harness takes them: per round, against the one-node run of the same round; then the median.
const perRound = (n: number) =>
  Array.from({ length: ROUNDS }, (_, i) => {
    const round = runs.slice(i * SIZES.length, (i + 1) * SIZES.length);
    return round.find((r) => r.nodes === n)!.msgsPerSec / round.find((r) => r.nodes === 1)!.msgsPerSec;
  });
const roundRatios = { two: perRound(2), three: perRound(3) };
const ratios = { 'two nodes / one node': median(roundRatios.two), 'three nodes / one node': median(roundRatios.three) };
const commit = (() => {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
const out = {
  command: 'npm run build && node --import tsx bench/cluster.ts',
  date: new Date().toISOString(),
  commit,
  machine: { node: process.version, cpus: `${cpus().length} x ${cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}`, memGiB: Math.round(totalmem() / 2 ** 30), loadavgStart: loadStart, loadavgEnd: loadavg().map((x) => x.toFixed(2)).join(' ') },
  method: {
    nodes: 'each node a real `evseal gateway --store postgres://… --bus nats://…` process; the load generator (senders and recipients) in this process; fresh schema and stream per run',
    load: `${PAIRS} charger→PSP pairs, ${MSGS} pre-sealed 1 KiB payment envelopes per pair and run, ${WINDOW} submissions in flight per sender; sender i on node i mod N, its recipient on node (i+1) mod N (every message crosses nodes when N > 1); the recipient acknowledges each delivery`,
    latency: 'submit to delivery at the recipient (end to end, through PostgreSQL commit and the JetStream record)',
    pg: 'write transactions (pg_current_xact_id difference, whole server) and WAL bytes (pg_current_wal_lsn difference) over the timed part, per message; a message costs its share of an accept, an acknowledgement, tree heads and outbox removals. Other helpers on this machine may write to PostgreSQL too: an upper bound',
    rounds: `${ROUNDS} rounds, order alternating (1,2,3 then 3,2,1); table: median per size; ratios: median over rounds of (N-node run / one-node run of the same round)`,
    stationState: `${STATE_OPS} putStationState upserts on the PostgreSQL store (${STATE_WRITERS} at once, 1000 stations, a booted station's state), the write the built-in CSMS makes per Heartbeat`,
  },
  runs,
  summary,
  stationStateWrites: stateWrites,
  ratios,
  roundRatios,
  criteria: [{ criterion: 'two nodes reach ≥ 0.8× one node\'s throughput (2 shared cores)', value: ratios['two nodes / one node'], met: ratios['two nodes / one node'] >= 0.8 }],
};
writeFileSync('bench/results/cluster.json', JSON.stringify(out, null, 2) + '\n');

const fmt = (x: number, d = 0) => x.toFixed(d);
const table = [
  '<!-- bench:cluster:start -->',
  `Measured ${out.date.slice(0, 10)} with \`${out.command}\` on ${out.machine.cpus}, Node ${process.version}; load average ${loadStart} at the start, ${out.machine.loadavgEnd} at the end. ${out.method.load}. ${out.method.rounds}.`,
  '',
  '| nodes | msg/s | p50 ms | p99 ms | PG write tx / msg | PG WAL bytes / msg | stream bytes / record | CPU ms / msg: nodes, PostgreSQL, NATS |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...summary.map(
    (s) =>
      `| ${s.nodes} | ${fmt(s.msgsPerSec)} | ${fmt(s.p50Ms, 1)} | ${fmt(s.p99Ms, 1)} | ${fmt(s.pgCommitsPerMsg, 2)} | ${fmt(s.pgWalBytesPerMsg)} | ${fmt(s.streamBytesPerRecord)} | ${fmt(s.cpuMsPerMsg.nodes, 2)}, ${fmt(s.cpuMsPerMsg.postgres, 2)}, ${fmt(s.cpuMsPerMsg.nats, 2)} |`,
  ),
  '',
  `Station state (the built-in CSMS's write per Heartbeat or StatusNotification) on the PostgreSQL store: ${fmt(stateWrites.opsPerSec)} upserts/s, ${fmt(stateWrites.walBytesPerOp)} WAL bytes each (${STATE_WRITERS} writers at once).`,
  '',
  `Two nodes / one node: **${fmt(ratios['two nodes / one node'], 2)}×** (criterion ≥ 0.8×: ${out.criteria[0]!.met ? 'met' : 'not met'}); three nodes / one node: ${fmt(ratios['three nodes / one node'], 2)}×. All processes share the machine's 2 cores, so more nodes cannot add throughput here; the ratio shows what the cross-node path costs. Raw runs: \`bench/results/cluster.json\`.`,
  '<!-- bench:cluster:end -->',
].join('\n');
const perf = readFileSync('docs/performance.md', 'utf8');
const re = /<!-- bench:cluster:start -->[\s\S]*<!-- bench:cluster:end -->/;
writeFileSync('docs/performance.md', re.test(perf) ? perf.replace(re, table) : `${perf.trimEnd()}\n\n## Cluster\n\n${table}\n`);
w.cleanup();
process.stderr.write(`two nodes / one node: ${fmt(ratios['two nodes / one node'], 2)}x\n`);
