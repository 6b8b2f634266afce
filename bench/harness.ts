// A small benchmark harness: one warm-up run, then RUNS timed runs of at
// least RUN_MS each; the median is reported with the min–max spread. Only
// ratios measured in one run of one process are compared.
import { performance } from 'node:perf_hooks';

export const RUN_MS = Number(process.env.BENCH_RUN_MS ?? 300);
export const RUNS = Number(process.env.BENCH_RUNS ?? 5);

export interface Row {
  group: string;
  name: string;
  size?: number;
  opsPerSec: number;
  usPerOp: number;
  min: number;
  max: number;
  note?: string;
}

function once(fn: () => void, ms: number): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    fn();
    n++;
    if ((n & 7) === 0 || n < 8) t = performance.now();
  } while (t - t0 < ms);
  t = performance.now();
  return (n * 1000) / (t - t0);
}

async function onceAsync(fn: () => Promise<void>, ms: number): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    await fn();
    n++;
    t = performance.now();
  } while (t - t0 < ms);
  return (n * 1000) / (t - t0);
}

function summarize(group: string, name: string, size: number | undefined, samples: number[], note?: string): Row {
  const s = [...samples].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)] as number;
  return { group, name, ...(size !== undefined ? { size } : {}), opsPerSec: med, usPerOp: 1e6 / med, min: s[0] as number, max: s[s.length - 1] as number, ...(note ? { note } : {}) };
}

export function bench(group: string, name: string, size: number | undefined, fn: () => void, note?: string): Row {
  once(fn, Math.min(RUN_MS, 200));
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(once(fn, RUN_MS));
  const r = summarize(group, name, size, samples, note);
  process.stderr.write(`${group} | ${name}${size !== undefined ? ` | ${size} B` : ''}: ${r.usPerOp.toFixed(1)} µs/op\n`);
  return r;
}

export async function benchAsync(group: string, name: string, size: number | undefined, fn: () => Promise<void>, note?: string): Promise<Row> {
  await onceAsync(fn, Math.min(RUN_MS, 200));
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await onceAsync(fn, RUN_MS));
  const r = summarize(group, name, size, samples, note);
  process.stderr.write(`${group} | ${name}${size !== undefined ? ` | ${size} B` : ''}: ${r.usPerOp.toFixed(1)} µs/op\n`);
  return r;
}

export function fmtSize(n: number | undefined): string {
  if (n === undefined) return '';
  if (n >= 1048576) return `${n / 1048576} MiB`;
  if (n >= 1024) return `${n / 1024} KiB`;
  return `${n} B`;
}

/**
 * A ratio measured robustly on a shared machine: the two sides run in
 * alternation (A, B, A, B, …) so that load changes hit both alike; each pair
 * of runs gives one ratio (B time / A time) and the median is reported.
 */
export async function interleavedRatio(a: () => void | Promise<void>, b: () => void | Promise<void>, pairs = RUNS * 2): Promise<{ ratio: number; aUs: number; bUs: number; ratios: number[] }> {
  const time = async (fn: () => void | Promise<void>) => {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      const r = fn();
      if (r) await r; // synchronous sides are not charged a microtask per call
      n++;
      t = performance.now();
    } while (t - t0 < RUN_MS);
    return ((t - t0) * 1000) / n;
  };
  await time(a);
  await time(b);
  const ratios: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const ta = await time(a);
    const tb = await time(b);
    as.push(ta);
    bs.push(tb);
    ratios.push(tb / ta);
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)] as number;
  return { ratio: med(ratios), aUs: med(as), bUs: med(bs), ratios };
}
