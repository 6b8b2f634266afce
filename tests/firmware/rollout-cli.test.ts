// `evseal firmware rollout` (the built CLI, dist/cli/main.js) against the
// real gateway with simulated chargers on OCPP 1.6 and 2.0.1 in this
// process: a rollout followed to Installed (exit 0), the same command again
// (the package is already held, the rollout is the same one), a tampered
// package (exit 1, InvalidSignature and the security event in --json), and
// refusals: bad usage (exit 2) and a role that may not roll out (exit 1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FirmwareWorld, PASSWORD, waitFor } from './delivery-fixture.js';
import { PASSPHRASE } from '../helpers/world.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { readPackageIndex } from '../../src/firmware/package.js';
import type { OcppProtocol } from '../../src/gateway/ocpp/validators.js';

const bin = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const fw = new FirmwareWorld();
const CHARGERS: Record<string, OcppProtocol> = { 'CP-A': 'ocpp1.6', 'CP-B': 'ocpp2.0.1' };
const stop = new AbortController();
const running: Promise<unknown>[] = [];
const events: SimEvent[] = [];
let imagePath = '';

function evseal(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: fw.w.dir, env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const common = (as: string) => ['firmware', 'rollout', '--as', fw.dirs.get(as)!, '--gateway', fw.gw.url, '--trust', join(fw.ca, 'ca.pem'), '--crl', fw.crls[0]!, '--timeout', '60'];

before(async () => {
  await fw.start(Object.keys(CHARGERS));
  imagePath = fw.image('image.bin', 150 * 1024).path;
  for (const [id, protocol] of Object.entries(CHARGERS)) {
    running.push(runSimCharger({ endpoint: fw.endpoint(id), gateway: `${fw.gw.url}/ocpp`, password: PASSWORD, protocol, firmware: { dir: fw.w.path(`fw-${id}`) }, onEvent: (e) => events.push(e) }, stop.signal));
  }
  await waitFor(() => events.filter((e) => e.type === 'booted').length === 2, 'chargers booted');
  writeFileSync(fw.w.path('stations.txt'), '# the two test chargers\nCP-A\nCP-B\n');
});
after(async () => {
  stop.abort();
  await Promise.allSettled(running);
  await fw.close();
});

test('rollout to a 1.6 and a 2.0.1 charger: per-station progress, every station Installed, exit 0; run again it follows the same rollout', async () => {
  const pkg = await fw.pack(imagePath, 'v2.evfw', { version: '2.0', devices: ['CP-A', 'CP-B'] });
  const r = await evseal([...common('prov-1'), '--package', pkg.path, '--stations', fw.w.path('stations.txt')]);
  assert.equal(r.code, 0, r.stderr);
  for (const id of Object.keys(CHARGERS)) {
    const lines = r.stdout.split('\n').filter((l) => l.startsWith(`${id}: `)).map((l) => l.slice(id.length + 2));
    // Queued is printed unless the station's first report overtook the rollout's answer
    assert.deepEqual(lines.filter((l) => l !== 'Queued' && l !== 'Accepted'), ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'], r.stdout);
  }
  assert.match(r.stdout, /^uploaded [0-9a-f]{32} \(\d+ bytes\)$/m);
  assert.match(r.stdout, /^2 installed, 0 failed, 0 pending$/m);

  const again = await evseal([...common('prov-1'), '--package', pkg.path, '--stations', fw.w.path('stations.txt'), '--json']);
  assert.equal(again.code, 0, again.stderr);
  const j = JSON.parse(again.stdout) as { packageId: string; installed: number; failed: number; stations: Record<string, { status: string; ok: boolean }> };
  assert.equal(j.packageId, (await readPackageIndex(pkg.path)).packageId);
  assert.deepEqual([j.installed, j.failed], [2, 0]);
  assert.deepEqual(j.stations['CP-A'], { status: 'Installed', done: true, ok: true });
});

test('a tampered package: exit 1 with one line on stderr; --json shows InvalidSignature and the InvalidFirmwareSignature events', async () => {
  const pkg = await fw.pack(imagePath, 'v3.evfw', { version: '3.0', devices: ['CP-A', 'CP-B'] });
  const bytes = readFileSync(pkg.path);
  const index = await readPackageIndex(pkg.path);
  bytes[index.shared.offset + 100]! ^= 0x80;
  writeFileSync(pkg.path, bytes);
  const r = await evseal([...common('prov-1'), '--package', pkg.path, '--all', '--json']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'evseal: 2 of 2 station(s) failed [ERR_STATE]\n');
  const j = JSON.parse(r.stdout) as { failed: number; stations: Record<string, unknown> };
  assert.equal(j.failed, 2);
  for (const id of Object.keys(CHARGERS)) assert.deepEqual(j.stations[id], { status: 'InvalidSignature', done: true, ok: false, securityEvents: ['InvalidFirmwareSignature'] });
});

test('refusals: neither --stations nor --all is bad usage (exit 2); a service tool may not roll out (exit 1)', async () => {
  const pkg = await fw.pack(imagePath, 'v4.evfw', { version: '4.0', devices: ['CP-A'] });
  const usage = await evseal([...common('prov-1'), '--package', pkg.path]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /give exactly one of --stations FILE or --all \[ERR_USAGE\]/);
  const tool = await evseal([...common('tool-1'), '--package', pkg.path, '--all']);
  assert.equal(tool.code, 1);
  assert.match(tool.stderr, /^evseal: route policy forbids firmware rollouts from role service-tool \[ERR_POLICY_DENIED\]\n$/);
});

test('firmware delete: a package whose rollout is done is deleted (exit 0), then was not held; bad usage exits 2', async () => {
  const pkg = await fw.pack(imagePath, 'v5.evfw', { version: '5.0', devices: ['CP-A'] });
  const rolled = await evseal([...common('prov-1'), '--package', pkg.path, '--stations', fw.w.path('stations.txt'), '--json']);
  assert.equal(rolled.code, 1, 'CP-B has no key slot: NotInPackage');
  assert.equal((JSON.parse(rolled.stdout) as { installed: number }).installed, 1);
  const del = ['firmware', 'delete', '--as', fw.dirs.get('prov-1')!, '--gateway', fw.gw.url, '--trust', join(fw.ca, 'ca.pem'), '--crl', fw.crls[0]!];
  const packageId = (await readPackageIndex(pkg.path)).packageId;
  const r = await evseal([...del, '--package', pkg.path]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `deleted package ${packageId}\n`);
  const again = await evseal([...del, '--package-id', packageId, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout), { packageId, deleted: false });
  const neither = await evseal(del);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /give exactly one of --package FILE or --package-id HEX \[ERR_USAGE\]\n$/);
  const bad = await evseal([...del, '--package-id', 'XYZ']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--package-id must be 32 lowercase hex digits \[ERR_USAGE\]\n$/);
});
