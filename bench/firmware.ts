// Firmware pipeline benchmark: pack and unpack throughput at 1 MiB, 100 MiB
// and 1 GiB against a raw node:crypto AES-256-GCM streaming encryption of the
// same file (16 KiB chunks, disk to disk), measured in the same run; peak RSS
// of each operation (each runs in its own child process); key wrapping for
// 10k and 100k devices.
//
//   node --import tsx bench/firmware.ts          (the committed figures)
//   BENCH_FIRMWARE_QUICK=1 node --import tsx bench/firmware.ts   (skips 1 GiB; not for committing)
//   BENCH_FIRMWARE_SIZES_MIB=1,100 BENCH_FIRMWARE_WRAP=1000   (development runs)
//
// Writes bench/results/firmware.json and the table between the
// bench:firmware markers in docs/performance.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, symlinkSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initCaDir, signCsrWithCaDir } from '../src/keystore/ca-dir.js';
import { initIdentity, installCert } from '../src/keystore/identity-dir.js';
import { DHKEM_P256 } from '../src/core/hpke/index.js';
import { wrapKeys, type Recipient } from '../src/firmware/pack.js';
import { encodeFullMeta } from '../src/firmware/package.js';

const MiB = 1048576;

// --- child: one operation, timed, with its peak RSS ------------------------------------------
// Each operation runs in a fresh plain `node` process on the built code
// (dist/, as the CLI runs it), so peak RSS is that operation's alone and
// carries no TypeScript loader.
interface ChildResult {
  ms: number;
  maxRssMiB: number;
}
// The children import a snapshot of dist/ taken at the start, so that a
// concurrent `npm run build` cannot hand them half-written modules.
const snapshot = mkdtempSync(join(tmpdir(), 'evseal-bench-fw-app-'));
const dist = (p: string) => pathToFileURL(join(snapshot, 'dist', p)).href;
const CHILD = `
import { createCipheriv, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { performance } from 'node:perf_hooks';
const [op, json] = process.argv.slice(1);
const a = JSON.parse(json);
let t0;
if (op === 'raw') {
  // The baseline: one AES-256-GCM stream over the file, 16 KiB reads and writes.
  t0 = performance.now();
  const c = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  await pipeline(createReadStream(a.input, { highWaterMark: 16384 }), c, createWriteStream(a.output, { highWaterMark: 16384 }));
  writeFileSync(a.output + '.tag', c.getAuthTag());
} else {
  const { Endpoint } = await import('${dist('keystore/endpoint.js')}');
  const { pemToDer } = await import('${dist('core/x509/index.js')}');
  const trust = { anchors: a.anchors.map((x) => ({ name: x.name, certDer: pemToDer(x.pem, 'CERTIFICATE'), roles: x.roles })) };
  const ep = Endpoint.load(a.dir, { trust, crls: a.crls });
  if (op === 'pack') {
    const { packFirmware } = await import('${dist('firmware/pack.js')}');
    const recipients = [{ bundleJson: readFileSync(a.bundle, 'utf8') }];
    t0 = performance.now();
    await packFirmware({ publisher: ep, input: a.input, output: a.output, version: a.version, model: 'BENCH-1', recipients });
  } else {
    const { unpackFirmware } = await import('${dist('firmware/unpack.js')}');
    const { writeInstalled } = await import('${dist('firmware/installed.js')}');
    writeInstalled(a.dir, { model: 'BENCH-1', version: '0' });
    t0 = performance.now();
    await unpackFirmware({ endpoint: ep, input: a.input, output: a.output });
  }
}
process.stdout.write(JSON.stringify({ ms: performance.now() - t0, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\\n');
`;

// --- parent -----------------------------------------------------------------------------------
const repo = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
if (!existsSync(repo('dist/firmware/pack.js'))) throw new Error('build first: npm run build (the operations run on dist/)');
cpSync(repo('dist'), join(snapshot, 'dist'), { recursive: true });
copyFileSync(repo('package.json'), join(snapshot, 'package.json'));
symlinkSync(repo('node_modules'), join(snapshot, 'node_modules'));
const started = Date.now();
const quick = process.env.BENCH_FIRMWARE_QUICK === '1';
const SIZES = process.env.BENCH_FIRMWARE_SIZES_MIB ? process.env.BENCH_FIRMWARE_SIZES_MIB.split(',').map((x) => Number(x) * MiB) : quick ? [1 * MiB, 100 * MiB] : [1 * MiB, 100 * MiB, 1024 * MiB];
const WRAP = (process.env.BENCH_FIRMWARE_WRAP ?? '10000,100000').split(',').map(Number);
const REPS: Record<number, number> = { [MiB]: 7, [100 * MiB]: 3, [1024 * MiB]: 3 };
const load0 = loadavg();
const work = mkdtempSync(join(tmpdir(), 'evseal-bench-fw-'));
process.on('exit', () => {
  rmSync(work, { recursive: true, force: true }); // images up to 1 GiB: never left behind, even on failure
  rmSync(snapshot, { recursive: true, force: true });
});

const now = new Date();
async function ca(name: string): Promise<string> {
  await initCaDir(join(work, name), { name, now: new Date(now.getTime() - 3600_000) });
  return join(work, name);
}
async function identity(caDir: string, role: 'charger' | 'firmware-publisher', id: string): Promise<string> {
  const dir = join(work, id);
  const { csrPem } = await initIdentity(dir, { role, id, operator: 'Bench', alg: 'ecdsa-p256', plaintext: true });
  const { certPem } = await signCsrWithCaDir(caDir, csrPem, { now: new Date(now.getTime() - 60_000) });
  installCert(dir, certPem, Math.floor(now.getTime() / 1000));
  return dir;
}
const opCa = await ca('op');
const makerCa = await ca('maker');
const pubDir = await identity(makerCa, 'firmware-publisher', 'pub');
const cpDir = await identity(opCa, 'charger', 'CP-1');
const pem = (d: string) => readFileSync(join(d, 'ca.pem'), 'utf8');
const pubArgs = { dir: pubDir, anchors: [{ name: 'op', pem: pem(opCa), roles: ['charger'] }], crls: [join(opCa, 'crl.pem')] };
const cpArgs = {
  dir: cpDir,
  anchors: [{ name: 'op', pem: pem(opCa), roles: ['charger'] }, { name: 'maker', pem: pem(makerCa), roles: ['firmware-publisher'] }],
  crls: [join(opCa, 'crl.pem'), join(makerCa, 'crl.pem')],
};

function runChild(op: string, a: Record<string, unknown>): ChildResult {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, op, JSON.stringify(a)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`child ${op} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

/** A file of `size` bytes of random data (1 MiB of randomness repeated: incompressible for AES/SHA, cheap to make). */
function makeImage(path: string, size: number): void {
  const block = randomBytes(MiB);
  const fd = openSync(path, 'w');
  for (let done = 0; done < size; done += MiB) writeSync(fd, block, 0, Math.min(MiB, size - done));
  closeSync(fd);
}

const med = (x: number[]) => {
  const s = [...x].sort((p, q) => p - q);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
interface SizeResult {
  size: number;
  reps: number;
  rawMiBps: number;
  packMiBps: number;
  unpackMiBps: number;
  packVsRaw: number;
  unpackVsRaw: number;
  peakRssMiB: { raw: number; pack: number; unpack: number };
}
const perSize: SizeResult[] = [];
let version = 0;
for (const size of SIZES) {
  const input = join(work, `image-${size}.bin`);
  makeImage(input, size);
  const rawOut = join(work, 'raw.out');
  const pkg = join(work, 'fw.evfw');
  const img = join(work, 'image.out');
  const raw: ChildResult[] = [];
  const pack: ChildResult[] = [];
  const unpack: ChildResult[] = [];
  // Interleaved: raw, pack, unpack in turn, so load changes hit all three alike; ratios per round.
  const packRatios: number[] = [];
  const unpackRatios: number[] = [];
  const reps = REPS[size] ?? 3;
  for (let i = 0; i < reps; i++) {
    // The order rotates each round, and dirty pages are flushed (untimed) before each
    // operation, so that writeback of one operation's output does not land on the next.
    const ops = { raw: () => runChild('raw', { input, output: rawOut }), pack: () => runChild('pack', { ...pubArgs, input, output: pkg, version: `${++version}`, bundle: join(cpDir, 'bundle.json') }), unpack: () => runChild('unpack', { ...cpArgs, input: pkg, output: img }) };
    const order = (['raw', 'pack', 'unpack'] as const).map((_, j, all) => all[(i + j) % 3]!);
    const got: Partial<Record<keyof typeof ops, ChildResult>> = {};
    for (const op of order) {
      spawnSync('sync');
      got[op] = ops[op]();
    }
    const r = got.raw!;
    const p = got.pack!;
    const u = got.unpack!;
    raw.push(r);
    pack.push(p);
    unpack.push(u);
    packRatios.push(r.ms / p.ms);
    unpackRatios.push(r.ms / u.ms);
    rmSync(rawOut, { force: true });
    rmSync(img, { force: true });
    process.stderr.write(`firmware ${size / MiB} MiB rep ${i + 1}: raw ${r.ms.toFixed(0)} ms, pack ${p.ms.toFixed(0)} ms, unpack ${u.ms.toFixed(0)} ms; RSS ${r.maxRssMiB.toFixed(0)}/${p.maxRssMiB.toFixed(0)}/${u.maxRssMiB.toFixed(0)} MiB\n`);
  }
  rmSync(pkg, { force: true });
  rmSync(input, { force: true });
  const mibps = (xs: ChildResult[]) => size / MiB / (med(xs.map((x) => x.ms)) / 1000);
  perSize.push({
    size,
    reps,
    rawMiBps: mibps(raw),
    packMiBps: mibps(pack),
    unpackMiBps: mibps(unpack),
    packVsRaw: med(packRatios),
    unpackVsRaw: med(unpackRatios),
    peakRssMiB: { raw: Math.max(...raw.map((x) => x.maxRssMiB)), pack: Math.max(...pack.map((x) => x.maxRssMiB)), unpack: Math.max(...unpack.map((x) => x.maxRssMiB)) },
  });
}

// --- key wrapping: HPKE to each device's certified P-256 key + the slot Merkle tree --------------
interface WrapResult {
  devices: number;
  seconds: number;
  usPerDevice: number;
  metaMiB: number;
}
const wrap: WrapResult[] = [];
for (const n of WRAP) {
  const recipients: Recipient[] = [];
  for (let i = 0; i < n; i++) recipients.push({ deviceId: `CP-${i}`, certHash: randomBytes(32), publicKey: DHKEM_P256.generateKeyPair().publicKey });
  const t0 = performance.now();
  const { slots } = wrapKeys(randomBytes(32), randomBytes(32), recipients);
  const seconds = (performance.now() - t0) / 1000;
  const meta = encodeFullMeta({ manifestBytes: new Uint8Array(400), signature: new Uint8Array(64), chain: [new Uint8Array(600)], slots });
  wrap.push({ devices: n, seconds, usPerDevice: (seconds * 1e6) / n, metaMiB: meta.length / MiB });
  process.stderr.write(`key wrapping ${n}: ${seconds.toFixed(2)} s\n`);
}


const opensslVersion = process.versions.openssl;
let cpuModel = cpus()[0]?.model ?? 'unknown';
try {
  cpuModel = execFileSync('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: 'utf8' }).trim() || cpuModel;
} catch {
  /* keep os.cpus() */
}
const machine = { cpus: `${cpus().length} × ${cpuModel}`, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, openssl: opensslVersion };
const load = { atStart: load0.map((x) => +x.toFixed(2)), atEnd: loadavg().map((x) => +x.toFixed(2)) };
const criteria = {
  minRatio: 0.7,
  maxRssMiB: 150,
  ratiosMet: perSize.every((s) => s.packVsRaw >= 0.7 && s.unpackVsRaw >= 0.7),
  rssMet: perSize.every((s) => s.peakRssMiB.pack <= 150 && s.peakRssMiB.unpack <= 150),
};
const result = {
  command: 'node --import tsx bench/firmware.ts',
  date: new Date().toISOString(),
  machine,
  load,
  quick: quick || process.env.BENCH_FIRMWARE_SIZES_MIB !== undefined || process.env.BENCH_FIRMWARE_WRAP !== undefined,
  method:
    'each operation in its own plain node process on a snapshot of dist/ (time excludes process start and key loading; peak RSS = process.resourceUsage().maxRSS of that child); raw, pack, unpack interleaved, order rotating per round, dirty pages flushed (untimed) before each; ratio = median over rounds of raw time / operation time; unpack fsyncs its output (pack and raw do not)',
  perSize,
  keyWrapping: { note: 'HPKE seal to a P-256 certificate key per device plus the slot Merkle root; excludes recipient chain validation', results: wrap },
  criteria,
  wallSeconds: (Date.now() - started) / 1000,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/firmware.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

const f1 = (x: number) => x.toFixed(0);
const sz = (n: number) => (n >= 1024 * MiB ? `${n / (1024 * MiB)} GiB` : `${n / MiB} MiB`);
const lines = [
  `Measured ${result.date.slice(0, 10)} with \`node --import tsx bench/firmware.ts\` on ${machine.cpus}, ${machine.memGiB} GiB, Node ${machine.node}, OpenSSL ${machine.openssl}; load average ${load.atStart[0]} at start, ${load.atEnd[0]} at end (the machine was shared).${quick ? ' QUICK RUN (no 1 GiB).' : ''}`,
  'Raw = one AES-256-GCM stream over the file through `node:crypto`, 16 KiB reads and writes; pack = recipient validation + Cobblestone-256 + SHA-256 of plaintext and ciphertext + key slot + signature; unpack = verification + key slot + decryption + both digests + fsync of the image (raw and pack do not fsync). Each operation runs in its own `node` process on the built code; rounds interleave the three with the order rotating, dirty pages flushed (untimed) before each. Ratios are raw time / operation time, median over rounds (criterion ≥ 0.70); peak RSS criterion ≤ 150 MiB.',
  '',
  '| size | rounds | raw MiB/s | pack MiB/s | unpack MiB/s | pack / raw | unpack / raw | peak RSS raw / pack / unpack (MiB) |',
  '| --: | --: | --: | --: | --: | --: | --: | --: |',
  ...perSize.map((s) => `| ${sz(s.size)} | ${s.reps} | ${f1(s.rawMiBps)} | ${f1(s.packMiBps)} | ${f1(s.unpackMiBps)} | ${s.packVsRaw.toFixed(2)} | ${s.unpackVsRaw.toFixed(2)} | ${f1(s.peakRssMiB.raw)} / ${f1(s.peakRssMiB.pack)} / ${f1(s.peakRssMiB.unpack)} |`),
  '',
  'Key wrapping: HPKE-seal the content key to each device\'s P-256 certificate key and build the slot Merkle tree (recipient chain validation, done once per recipient by pack, is not included).',
  '',
  '| key wrapping | seconds | µs per device | full-package slot table |',
  '| --: | --: | --: | --: |',
  ...wrap.map((x) => `| ${x.devices.toLocaleString('en')} devices | ${x.seconds.toFixed(1)} | ${x.usPerDevice.toFixed(0)} | ${x.metaMiB.toFixed(1)} MiB |`),
];
const perfPath = new URL('../docs/performance.md', import.meta.url);
let doc = readFileSync(perfPath, 'utf8');
const start = '<!-- bench:firmware:start -->';
const end = '<!-- bench:firmware:end -->';
if (doc.includes(start) && doc.includes(end)) {
  doc = doc.slice(0, doc.indexOf(start) + start.length) + '\n' + lines.join('\n') + '\n' + doc.slice(doc.indexOf(end));
  writeFileSync(perfPath, doc);
} else {
  process.stderr.write('docs/performance.md has no bench:firmware markers; table not written\n');
}
console.log(JSON.stringify({ perSize, keyWrapping: wrap, criteria, wallSeconds: result.wallSeconds }, null, 2));
