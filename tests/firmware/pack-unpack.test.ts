// pack -> unpack round trips (full and device packages, sizes around the
// chunk and block boundaries), installed-state rules, and the CDN's view.
import { test, before, after } from 'node:test';
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { FirmwareWorld, MODEL, noOutput } from './fixture.js';
import { packFirmware } from '../../src/firmware/pack.js';
import { unpackFirmware } from '../../src/firmware/unpack.js';
import { devicePrefix, readPackageIndex } from '../../src/firmware/package.js';
import { readInstalled, writeInstalled } from '../../src/firmware/installed.js';
import { compareVersions, parseVersion } from '../../src/firmware/version.js';
import { EvsealError } from '../../src/core/errors.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';

let w: FirmwareWorld;
let pub: Endpoint;
let dev: Endpoint[];

before(async () => {
  w = await FirmwareWorld.create(3);
  pub = w.publisherEp();
  dev = w.devices.map((d) => w.deviceEp(d));
});
after(() => w.cleanup());

let seq = 0;
async function pack(image: Uint8Array, version: string, o: { model?: string; to?: string[] } = {}): Promise<{ pkg: string; packageId: string }> {
  const n = ++seq;
  const input = w.writeFile(`image-${n}.bin`, image);
  const pkg = w.path(`fw-${n}.evfw`);
  const r = await packFirmware({ publisher: pub, input, output: pkg, version, model: o.model ?? MODEL, recipients: w.bundles(o.to ?? w.devices) });
  return { pkg, packageId: r.packageId };
}

/** The device package for `deviceId`: its prefix plus the shared bytes. */
async function devicePackage(pkg: string, deviceId: string): Promise<string> {
  const index = await readPackageIndex(pkg);
  const prefix = await devicePrefix(pkg, index, deviceId);
  const all = readFileSync(pkg);
  const p = `${pkg}.${deviceId}.dev`;
  writeFileSync(p, Buffer.concat([prefix, all.subarray(index.shared.offset, index.shared.offset + index.shared.length)]));
  return p;
}

function outDir(): string {
  const d = w.path(`out-${++seq}`);
  mkdirSync(d);
  return d;
}

const KiB = 1024;
test('byte-identical round trip at sizes around chunk and block boundaries, full and device packages', async () => {
  const sizes = [0, 1, 16 * KiB - 1, 16 * KiB, 16 * KiB + 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 1024 * KiB, 3 * 1024 * KiB + 7];
  let version = 1;
  for (const size of sizes) {
    const image = randomBytes(size);
    version++;
    const v = `${version}.0.0`;
    const { pkg } = await pack(image, v);
    const index = await readPackageIndex(pkg);
    assert.deepEqual(index.deviceIds, ['CP-001', 'CP-002', 'CP-003']);
    assert.equal(index.version, v);
    assert.equal(index.model, MODEL);
    assert.equal(index.publisher, 'fw-pub');
    // device 0 from the full package, device 1 from its device package
    const d = outDir();
    const progress: number[] = [];
    const r = await unpackFirmware({ endpoint: dev[0]!, input: pkg, output: `${d}/a.bin`, onProgress: (done) => progress.push(done) });
    assert.deepEqual(r, { version: v, model: MODEL, size, publisher: 'fw-pub' });
    assert.ok(readFileSync(`${d}/a.bin`).equals(image), `size ${size}: full package`);
    assert.equal(progress.at(-1), size);
    const dp = await devicePackage(pkg, 'CP-002');
    await unpackFirmware({ endpoint: dev[1]!, input: dp, output: `${d}/b.bin` });
    assert.ok(readFileSync(`${d}/b.bin`).equals(image), `size ${size}: device package`);
    assert.deepEqual(readInstalled(w.devices[0]!), { model: MODEL, version: v });
    assert.deepEqual(readInstalled(w.devices[1]!), { model: MODEL, version: v });
  }
});

test('what a device downloads does not grow with the fleet', async () => {
  const image = randomBytes(1000);
  const small = await pack(image, '50.0', { to: w.devices.slice(0, 1) });
  const big = await pack(image, '50.0', { to: w.devices });
  const a = (await devicePrefix(small.pkg, await readPackageIndex(small.pkg), 'CP-001')).length;
  const b = (await devicePrefix(big.pkg, await readPackageIndex(big.pkg), 'CP-001')).length;
  // the inclusion proof grows by 32 bytes per tree level (log2 of the fleet), the rest is fixed
  assert.ok(b - a <= 64, `${a} -> ${b}`);
});

test('rollback (older, equal), another model, and --allow-downgrade', async () => {
  const d = outDir();
  writeInstalled(w.devices[2]!, { model: MODEL, version: '100.0' });
  const ep = dev[2]!;
  const older = await pack(randomBytes(100), '99.9.9');
  const equal = await pack(randomBytes(100), '100.0.0');
  const other = await pack(randomBytes(100), '101', { model: 'EVB-99' });
  const refused = async (pkg: string, code: string): Promise<void> => {
    await assert.rejects(unpackFirmware({ endpoint: ep, input: pkg, output: `${d}/x.bin` }), (e: unknown) => e instanceof EvsealError && e.code === code);
    assert.ok(noOutput(`${d}/x.bin`));
    assert.deepEqual(readInstalled(w.devices[2]!), { model: MODEL, version: '100.0' });
  };
  await refused(older.pkg, 'ERR_FIRMWARE_ROLLBACK');
  await refused(equal.pkg, 'ERR_FIRMWARE_ROLLBACK');
  await refused(other.pkg, 'ERR_FIRMWARE_MODEL');
  const log = readFileSync(`${w.devices[2]}/security.log`, 'utf8');
  assert.match(log, /not newer than 100\.0/);
  await unpackFirmware({ endpoint: ep, input: older.pkg, output: `${d}/x.bin`, allowDowngrade: true });
  assert.deepEqual(readInstalled(w.devices[2]!), { model: MODEL, version: '99.9.9' });
});

test('a device without a firmware record refuses to guess its model', async () => {
  const { pkg } = await pack(randomBytes(10), '200');
  const fresh = await w.identity(w.cas.op, 'charger', 'CP-NEW', { alg: 'ecdsa-p256' });
  await assert.rejects(unpackFirmware({ endpoint: w.deviceEp(fresh), input: pkg, output: w.path('n.bin') }), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_STATE');
});

test('Ed25519 identities are refused clearly on both sides', async () => {
  const ed = await w.identity(w.cas.op, 'charger', 'CP-ED', { alg: 'ed25519' });
  const input = w.writeFile('ed.bin', randomBytes(10));
  await assert.rejects(
    packFirmware({ publisher: pub, input, output: w.path('ed.evfw'), version: '1', model: MODEL, recipients: w.bundles([ed]) }),
    (e: unknown) => e instanceof EvsealError && e.code === 'ERR_USAGE' && /P-256/.test(e.message),
  );
});

test('the CDN view: no image bytes and no plaintext digest in the clear, only public fields', async () => {
  const image = Buffer.concat([Buffer.from('SECRET-FIRMWARE-MARKER '.repeat(100)), randomBytes(70 * KiB)]);
  const { pkg } = await pack(image, '300');
  const digest = createHash('sha256').update(image).digest();
  const needles = [
    digest,
    Buffer.from(digest.toString('hex')),
    Buffer.from(digest.toString('base64')),
    Buffer.from(digest.toString('base64url')),
    Buffer.from(digest.toString('hex').toUpperCase()),
    Buffer.from('SECRET-FIRMWARE-MARKER'),
    image.subarray(5000, 5032),
    image.subarray(image.length - 32),
    Buffer.from(image.subarray(30 * KiB, 30 * KiB + 24).toString('base64')),
    Buffer.from(image.subarray(30 * KiB, 30 * KiB + 24).toString('hex')),
  ];
  for (const file of [pkg, await devicePackage(pkg, 'CP-001')]) {
    const bytes = readFileSync(file);
    for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${file} contains ${n.subarray(0, 16).toString('hex')}`);
    // the one plaintext-derived public field is the size
    const manifest = JSON.parse(bytes.subarray(bytes.indexOf('{"v":1'), bytes.indexOf('}', bytes.indexOf('{"v":1')) + 1).toString('utf8'));
    assert.deepEqual(Object.keys(manifest), ['v', 'suite', 'packageId', 'model', 'version', 'created', 'size', 'ciphertext', 'publisher', 'slots', 'slotsRoot']);
    assert.equal(manifest.size, image.length);
  }
  // a planted copy proves the search works
  assert.notEqual(Buffer.concat([readFileSync(pkg), digest]).indexOf(digest), -1);
});

test('version rule: dotted numbers, numeric order, unparsable refused', () => {
  assert.ok(compareVersions('1.10', '1.9') > 0);
  assert.equal(compareVersions('2.1', '2.1.0.0'), 0);
  assert.ok(compareVersions('0.9.9', '1') < 0);
  for (const bad of ['', '1.', '.1', '01.2', '1.2.3.4.5', '1.2-rc1', 'v1', '1..2', ' 1']) assert.throws(() => parseVersion(bad), EvsealError, bad);
});
