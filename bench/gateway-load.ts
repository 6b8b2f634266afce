// Child process of bench/gateway.ts: a load generator, on its own event loop.
// argv[2] is a JSON LoadConfig; results go to the parent over IPC.
//
// relay  P sender/recipient pairs. Each sender pipelines its pre-sealed
//        envelopes with at most `window` messages in flight end to end; a
//        message leaves the window when the recipient's acknowledgement of it
//        is confirmed. The recipient acknowledges, in one frame, everything
//        that arrived in one I/O turn. target 'evseal': GatewayClient on
//        /endpoint (send → accepted; msg → ack → acked). target 'ws': the
//        plain forwarder (send → forwarded; ack → forwarded back), same
//        envelopes, same frame shape, same windows and batching.
// ocpp   OCPP 1.6 chargers over raw `ws` (subprotocol ocpp1.6, Basic auth):
//        connect at a bounded rate, optionally BootNotification, optionally a
//        Heartbeat every hbMinS..hbMaxS seconds (uniformly jittered); counts
//        connection failures, drops and heartbeat outcomes until told to finish.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { GatewayClient, type Delivery } from '../src/client/gateway-client.js';
import { fromB64u } from '../src/core/base64url.js';
import { inspectEnvelope } from '../src/core/envelope.js';
import type { PairData } from './gateway-ids.js';

export interface RelayConfig {
  mode: 'relay';
  target: 'evseal' | 'ws';
  url: string;
  idsFiles: string[];
  pairs: number;
  perPair: number;
  /** ws only: send the pair's envelopes this many times over (the forwarder does not deduplicate), for a run long enough to time */
  passes?: number;
  window: number;
  timeoutMs: number;
}

export interface OcppConfig {
  mode: 'ocpp';
  url: string;
  ca?: string;
  prefix: string;
  from: number;
  count: number;
  password: string;
  /** connection attempts started per second, at most */
  rate: number;
  /** connection attempts in progress, at most */
  concurrency: number;
  boot: boolean;
  /** 0: no heartbeats */
  hbMinS: number;
  hbMaxS: number;
  callTimeoutMs: number;
}

export type LoadConfig = RelayConfig | OcppConfig;

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface RelayResult {
  type: 'relay-result';
  messages: number;
  completed: number;
  seconds: number;
  msgsPerSec: number;
  /** the same after the first WARM_SHARE of completions (JIT and allocator warm-up of a fresh server process), for both targets alike */
  steadyMsgsPerSec: number;
  /** send → delivery at the recipient, ms */
  deliveryMs: Percentiles;
  /** send → the recipient's acknowledgement confirmed (evseal: acked frame; ws: ack back at the sender), ms */
  roundTripMs: Percentiles;
  /** evseal: send → accepted (durable), ms */
  acceptMs?: Percentiles;
  accepted: number;
  duplicatesAccepted: number;
  deliveredTwice: number;
  receipts: number;
  errors: string[];
  connectSeconds: number;
  loadCpuSeconds: number;
}

export interface OcppProgress {
  type: 'ocpp-progress';
  attempted: number;
  connected: number;
  failed: number;
  drops: number;
  hbOk: number;
  hbErr: number;
}

export interface OcppResult extends Omit<OcppProgress, 'type'> {
  type: 'ocpp-result';
  failReasons: Record<string, number>;
  dropCodes: Record<string, number>;
  hbMs: Percentiles;
  bootMs: Percentiles;
  /** seconds from the first attempt until the last connection was up */
  rampSeconds: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
/** share of a relay run's messages counted as warm-up for steadyMsgsPerSec */
const WARM_SHARE = 0.1;
const send = (m: unknown): void => void process.send?.(m);
const errLine = (s: string) => process.stderr.write(`gateway bench [load ${process.pid}]: ${s}\n`);

export function percentiles(xs: number[]): Percentiles {
  if (xs.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

/** Runs fn(i) for i in [0, n) with at most `limit` at a time. */
async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// relay

async function relay(config: RelayConfig): Promise<RelayResult> {
  let c = config;
  const all = c.idsFiles.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as PairData[]);
  const pairs = all.filter((p) => p.i < c.pairs).sort((a, b) => a.i - b.i);
  if (pairs.length !== c.pairs) throw new Error(`only ${pairs.length} of ${c.pairs} pairs were made`);
  for (const p of pairs) if (p.envs.length < c.perPair) throw new Error(`pair ${p.i} has ${p.envs.length} envelopes, ${c.perPair} needed`);
  const passes = c.target === 'ws' ? Math.max(1, c.passes ?? 1) : 1;
  const envs = pairs.map((p) => Array.from({ length: passes }, () => p.envs.slice(0, c.perPair)).flat());
  c = { ...c, perPair: c.perPair * passes };
  // message ids (the gateway's dedup key) read before timing
  const ids = c.target === 'evseal' ? envs.map((es) => es.map((e) => inspectEnvelope(e).id)) : [];
  const total = c.pairs * c.perPair;
  const errors: string[] = [];
  const err = (s: string) => {
    if (errors.length < 20) errors.push(s);
  };

  const sentAt = pairs.map(() => new Float64Array(c.perPair));
  const deliveredMs: number[] = [];
  const roundTripMs: number[] = [];
  const acceptMs: number[] = [];
  const seen = pairs.map(() => new Uint8Array(c.perPair));
  const inflight = new Int32Array(c.pairs);
  const next = new Int32Array(c.pairs);
  let completed = 0;
  const warmN = Math.floor(total * WARM_SHARE);
  let tWarm = 0;
  let warmDone = 0;
  let accepted = 0;
  let duplicatesAccepted = 0;
  let deliveredTwice = 0;
  let receipts = 0;
  let t0 = 0;
  let tEnd = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  const checkDone = () => {
    if (completed === total && (c.target === 'ws' || accepted === total) && tEnd === 0) {
      tEnd = performance.now();
      finish();
    }
  };

  // index of a message: evseal by envelope id, ws by (pair, ref)
  const index = ids.map((list) => new Map(list.map((id, k) => [id, k])));
  const onDelivered = (i: number, k: number, t: number) => {
    if (seen[i]![k]) deliveredTwice++;
    seen[i]![k] = 1;
    deliveredMs.push(t - sentAt[i]![k]!);
  };
  const onCompleted = (i: number, ks: number[], t: number, pump: (i: number) => void) => {
    for (const k of ks) roundTripMs.push(t - sentAt[i]![k]!);
    completed += ks.length;
    if (tWarm === 0 && completed >= warmN) {
      tWarm = t;
      warmDone = completed;
    }
    inflight[i]! -= ks.length;
    pump(i);
    checkDone();
  };

  const tc = performance.now();
  let pump: (i: number) => void;
  let close: () => Promise<void>;
  if (c.target === 'evseal') {
    const keyOf = (pem: string) => createPrivateKey(pem);
    const batches = pairs.map(() => ({ seqs: [] as number[], ks: [] as number[], scheduled: false }));
    const recipients: GatewayClient[] = await pool(c.pairs, 64, async (i) => {
      const p = pairs[i]!;
      const b = batches[i]!;
      const rc: GatewayClient = await GatewayClient.connect(c.url, {
        chain: p.recipient.chain.map((x) => fromB64u(x)),
        privateKey: keyOf(p.recipient.key),
        timeoutMs: c.timeoutMs,
        onMessage: (d: Delivery) => {
          const k = index[i]!.get(d.id);
          if (k === undefined) return err(`pair ${i}: unknown message ${d.id}`);
          onDelivered(i, k, performance.now());
          b.seqs.push(d.seq);
          b.ks.push(k);
          if (!b.scheduled) {
            b.scheduled = true;
            setImmediate(() => {
              b.scheduled = false;
              const seqs = b.seqs.splice(0);
              const ks = b.ks.splice(0);
              rc.ack(...seqs).then(
                (rs) => {
                  receipts += rs.length;
                  onCompleted(i, ks, performance.now(), pump);
                },
                (e: unknown) => err(`ack: ${(e as Error).message}`),
              );
            });
          }
        },
      });
      await rc.publishBundle(p.recipient.bundle);
      return rc;
    });
    const senders: GatewayClient[] = await pool(c.pairs, 64, (i) =>
      GatewayClient.connect(c.url, { chain: pairs[i]!.sender.chain.map((x) => fromB64u(x)), privateKey: keyOf(pairs[i]!.sender.key), timeoutMs: c.timeoutMs }),
    );
    pump = (i) => {
      while (inflight[i]! < c.window && next[i]! < c.perPair) {
        const k = next[i]!++;
        inflight[i]!++;
        const t = performance.now();
        sentAt[i]![k] = t;
        senders[i]!.sendEnvelope(envs[i]![k]!).then(
          (r) => {
            accepted++;
            if (r.duplicate) duplicatesAccepted++;
            acceptMs.push(performance.now() - t);
            checkDone();
          },
          (e: unknown) => err(`send: ${(e as Error).message}`),
        );
      }
    };
    close = async () => {
      await Promise.all([...senders, ...recipients].map((x) => x.close()));
    };
  } else {
    const open = (path: string) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`${c.url}${path}`, { perMessageDeflate: false, maxPayload: 32 * 1024 * 1024 });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    const recipients = await pool(c.pairs, 64, async (i) => {
      const ws = await open(`/r/${i}`);
      const b = { refs: [] as number[], scheduled: false };
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { ref: number };
        onDelivered(i, f.ref, performance.now());
        b.refs.push(f.ref);
        if (!b.scheduled) {
          b.scheduled = true;
          setImmediate(() => {
            b.scheduled = false;
            ws.send(JSON.stringify({ t: 'ack', seqs: b.refs.splice(0) }));
          });
        }
      });
      return ws;
    });
    const senders = await pool(c.pairs, 64, async (i) => {
      const ws = await open(`/s/${i}`);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { seqs: number[] };
        onCompleted(i, f.seqs, performance.now(), pump);
      });
      return ws;
    });
    const to = pairs.map((p) => p.recipient.id);
    pump = (i) => {
      while (inflight[i]! < c.window && next[i]! < c.perPair) {
        const k = next[i]!++;
        inflight[i]!++;
        sentAt[i]![k] = performance.now();
        senders[i]!.send(JSON.stringify({ t: 'send', ref: k, to: to[i], format: 'envelope', body: envs[i]![k] }));
      }
    };
    close = async () => {
      for (const ws of [...senders, ...recipients]) ws.terminate();
    };
  }
  const connectSeconds = (performance.now() - tc) / 1000;
  errLine(`${c.target}: ${c.pairs * 2} connections up in ${connectSeconds.toFixed(1)} s; sending ${total} messages`);
  send({ type: 'relay-start' });
  const cpu0 = process.cpuUsage();
  t0 = performance.now();
  for (let i = 0; i < c.pairs; i++) pump(i);
  const timer = setTimeout(() => finish(), c.timeoutMs);
  await done;
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpu0);
  send({ type: 'relay-end' });
  if (tEnd === 0) {
    tEnd = performance.now();
    err(`timed out: ${completed} of ${total} completed, ${accepted} accepted`);
  }
  await close();
  const seconds = (tEnd - t0) / 1000;
  return {
    type: 'relay-result',
    messages: total,
    completed,
    seconds,
    msgsPerSec: completed / seconds,
    steadyMsgsPerSec: tEnd > tWarm ? (completed - warmDone) / ((tEnd - tWarm) / 1000) : NaN,
    deliveryMs: percentiles(deliveredMs),
    roundTripMs: percentiles(roundTripMs),
    ...(c.target === 'evseal' ? { acceptMs: percentiles(acceptMs) } : {}),
    accepted,
    duplicatesAccepted,
    deliveredTwice,
    receipts,
    errors,
    connectSeconds,
    loadCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

// ---------------------------------------------------------------------------------------------
// ocpp

async function ocppLoad(c: OcppConfig): Promise<void> {
  const st: OcppProgress = { type: 'ocpp-progress', attempted: 0, connected: 0, failed: 0, drops: 0, hbOk: 0, hbErr: 0 };
  const failReasons: Record<string, number> = {};
  const dropCodes: Record<string, number> = {};
  const hbMs: number[] = [];
  const bootMs: number[] = [];
  const socks = new Set<WebSocket>();
  const timers = new Set<NodeJS.Timeout>();
  let finishing = false;
  let tFirst = 0;
  let tLast = 0;
  let uid = 0;
  const bump = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);

  function station(n: number): Promise<void> {
    const id = `${c.prefix}${String(n).padStart(5, '0')}`;
    const calls = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
    const call = (ws: WebSocket, action: string, params: object) =>
      new Promise<unknown>((resolve, reject) => {
        const m = `${(uid++).toString(36)}`;
        const timer = setTimeout(() => {
          calls.delete(m);
          reject(new Error('timeout'));
        }, c.callTimeoutMs);
        calls.set(m, { resolve, reject, timer });
        ws.send(JSON.stringify([2, m, action, params]));
      });
    return new Promise<void>((settle) => {
      st.attempted++;
      let up = false;
      let settled = false;
      const done = () => {
        if (!settled) {
          settled = true;
          settle();
        }
      };
      const fail = (why: string) => {
        if (up || settled) return;
        st.failed++;
        bump(failReasons, why);
        done();
      };
      const ws = new WebSocket(`${c.url}/ocpp/${encodeURIComponent(id)}`, ['ocpp1.6'], {
        perMessageDeflate: false,
        handshakeTimeout: 60_000,
        headers: { authorization: `Basic ${Buffer.from(`${id}:${c.password}`).toString('base64')}` },
        ...(c.ca ? { ca: c.ca } : {}),
      });
      ws.on('unexpected-response', (_req, res) => {
        fail(`http ${res.statusCode}`);
        ws.terminate();
      });
      ws.on('error', (e) => fail(e.message.slice(0, 60)));
      ws.on('message', (data) => {
        let m: unknown[];
        try {
          m = JSON.parse(String(data)) as unknown[];
        } catch {
          return;
        }
        if (m[0] === 3 || m[0] === 4) {
          const p = calls.get(String(m[1]));
          if (!p) return;
          calls.delete(String(m[1]));
          clearTimeout(p.timer);
          if (m[0] === 3) p.resolve(m[2]);
          else p.reject(new Error(`CALLERROR ${String(m[2])}`));
        } else if (m[0] === 2) {
          ws.send(JSON.stringify([4, m[1], 'NotImplemented', 'bench charger', {}]));
        }
      });
      ws.on('close', (code) => {
        for (const p of calls.values()) {
          clearTimeout(p.timer);
          p.reject(new Error('closed'));
        }
        calls.clear();
        if (up && !finishing) {
          st.drops++;
          bump(dropCodes, String(code));
          socks.delete(ws);
        } else fail(`closed ${code}`);
      });
      ws.on('open', () => {
        void (async () => {
          if (c.boot) {
            const t = performance.now();
            try {
              const r = (await call(ws, 'BootNotification', { chargePointVendor: 'EvsealBench', chargePointModel: 'Idle' })) as { status?: string };
              if (r.status !== 'Accepted') throw new Error(`boot ${r.status}`);
              bootMs.push(performance.now() - t);
            } catch (e) {
              fail(`boot: ${(e as Error).message}`);
              ws.terminate();
              return;
            }
          }
          up = true;
          st.connected++;
          socks.add(ws);
          tLast = performance.now();
          done();
          if (c.hbMinS > 0) {
            const beat = async () => {
              if (finishing || ws.readyState !== ws.OPEN) return;
              const t = performance.now();
              try {
                await call(ws, 'Heartbeat', {});
                st.hbOk++;
                hbMs.push(performance.now() - t);
              } catch {
                if (!finishing) st.hbErr++;
              }
              schedule(c.hbMinS + Math.random() * (c.hbMaxS - c.hbMinS));
            };
            const schedule = (s: number) => {
              if (finishing) return;
              const h = setTimeout(() => {
                timers.delete(h);
                void beat();
              }, s * 1000);
              timers.add(h);
            };
            schedule(Math.random() * c.hbMaxS); // spread the first beats over one interval
          }
        })();
      });
    });
  }

  const progress = setInterval(() => send(st), 1000);
  // Bounded ramp: at most `rate` attempts per second and `concurrency` in progress.
  tFirst = performance.now();
  let started = 0;
  let active = 0;
  await new Promise<void>((allStarted) => {
    const tick = setInterval(() => {
      const allowed = Math.floor(((performance.now() - tFirst) / 1000) * c.rate) + 1;
      while (started < c.count && started < allowed && active < c.concurrency) {
        active++;
        void station(c.from + started++).then(() => active--);
      }
      if (started >= c.count) {
        clearInterval(tick);
        allStarted();
      }
    }, 5);
  });
  const finished = new Promise<void>((r) => process.on('message', (m: { cmd: string }) => m.cmd === 'finish' && r()));
  await finished;
  finishing = true;
  clearInterval(progress);
  for (const t of timers) clearTimeout(t);
  const result: OcppResult = {
    ...st,
    type: 'ocpp-result',
    failReasons,
    dropCodes,
    hbMs: percentiles(hbMs),
    bootMs: percentiles(bootMs),
    rampSeconds: tLast > 0 ? (tLast - tFirst) / 1000 : NaN,
  };
  send(result);
  // The measurement is over: drop the sockets at once rather than wait for thousands of close handshakes.
  for (const ws of socks) ws.terminate();
}

process.on('disconnect', () => process.exit(0));
if (cfg.mode === 'relay') {
  const r = await relay(cfg);
  send(r);
} else {
  await ocppLoad(cfg);
}
setTimeout(() => process.exit(0), 100);
