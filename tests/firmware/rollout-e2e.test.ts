// Firmware rollout end to end through the real gateway: a publisher packs an
// image for simulated chargers (runSimCharger: ocpp-rpc, strict mode) on
// OCPP 1.6, 2.0.1 and 2.1; the operator's provisioning identity uploads the
// package over its endpoint connection and starts a rollout; the gateway
// sends SignedUpdateFirmware (1.6) / UpdateFirmware (2.0.1, 2.1); each charger
// downloads its device package over HTTP, verifies, decrypts and installs
// it, and reports (Signed)FirmwareStatusNotification in order; the rollout
// client sees every station Installed. Then the failures: a tampered package
// (InvalidSignature, and a SecurityEventNotification InvalidFirmwareSignature
// that reaches the CSMS), a package for another model, stations that cannot
// be reached, and a station that was offline when the rollout started.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FirmwareWorld, PASSWORD, waitFor } from './delivery-fixture.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { uploadFirmware } from '../../src/client/firmware-upload.js';
import { readInstalled } from '../../src/firmware/installed.js';
import { readPackageIndex } from '../../src/firmware/package.js';
import type { Delivery, GatewayClient, RolloutEvent } from '../../src/client/gateway-client.js';
import type { OcppProtocol } from '../../src/gateway/ocpp/validators.js';

const fw = new FirmwareWorld();
const CHARGERS: Record<string, OcppProtocol> = { 'CP-16': 'ocpp1.6', 'CP-201': 'ocpp2.0.1', 'CP-21': 'ocpp2.1' };
const SUCCESS = ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'];

interface Sim {
  events: SimEvent[];
  stop: AbortController;
  done: Promise<unknown>;
}
const sims = new Map<string, Sim>();
let image: Buffer;
let imagePath: string;
let prov: GatewayClient;
const inbox: Delivery[] = [];
const rolloutEvents: RolloutEvent[] = [];

function startSim(id: string, protocol: OcppProtocol): Sim {
  const sim: Sim = { events: [], stop: new AbortController(), done: Promise.resolve() };
  sim.done = runSimCharger(
    { endpoint: fw.endpoint(id), gateway: `${fw.gw.url}/ocpp`, password: PASSWORD, protocol, firmware: { dir: fw.w.path(`fw-${id}`) }, onEvent: (e) => sim.events.push(e) },
    sim.stop.signal,
  ).catch((e: unknown) => sim.events.push({ type: 'refused', code: `sim ended: ${(e as Error).message}` }));
  sims.set(id, sim);
  return sim;
}
async function stopSim(id: string): Promise<void> {
  const s = sims.get(id)!;
  s.stop.abort();
  await s.done;
  sims.delete(id);
}
const booted = (s: Sim) => s.events.some((e) => e.type === 'booted');
const firmwareStatuses = (s: Sim, requestId: number) => s.events.flatMap((e) => (e.type === 'firmware' && e.requestId === requestId ? [e.status] : []));
const eventsOf = (rollout: string, station: string) => rolloutEvents.filter((e) => e.id === rollout && e.station === station);
const statusesOf = (rollout: string, station: string) => eventsOf(rollout, station).flatMap((e) => (e.status ? [e.status] : []));

before(async () => {
  await fw.start([...Object.keys(CHARGERS), 'CP-LATE', 'CP-NEVER']);
  ({ data: image, path: imagePath } = fw.image('image.bin', 200 * 1024 + 3));
  for (const [id, protocol] of Object.entries(CHARGERS)) startSim(id, protocol);
  await waitFor(() => [...sims.values()].every(booted), 'chargers booted');
  prov = await fw.client('prov-1', { onMessage: (d) => inbox.push(d), onRolloutEvent: (e) => rolloutEvents.push(e) });
});
after(async () => {
  await prov?.close();
  for (const id of [...sims.keys()]) await stopSim(id);
  await fw.close();
});

test('a rollout installs the package on 1.6, 2.0.1 and 2.1 chargers; each reports the status sequence; the client sees every station Installed', async () => {
  const pkg = await fw.pack(imagePath, 'v2.evfw', { version: '2.0', devices: [...Object.keys(CHARGERS), 'CP-LATE', 'CP-NEVER'] });
  await uploadFirmware(prov, pkg.path);
  const r = await prov.startRollout({ id: 'r-ok', packageId: pkg.packageId, stations: Object.keys(CHARGERS), lifetimeSec: 600 });
  for (const id of Object.keys(CHARGERS)) {
    // queued, or already on its way: a station may report before the answer has left the gateway
    assert.ok(['Queued', ...SUCCESS.slice(0, -1)].includes(r.stations[id]!.status), `${id}: ${r.stations[id]!.status}`);
    assert.match(r.stations[id]!.msgId ?? '', /^[A-Za-z0-9_-]{22}$/);
  }
  // the same request again is the same rollout
  assert.equal((await prov.startRollout({ id: 'r-ok', packageId: pkg.packageId, stations: Object.keys(CHARGERS), lifetimeSec: 600 })).requestId, r.requestId);

  await waitFor(() => Object.keys(CHARGERS).every((s) => statusesOf('r-ok', s).includes('Installed')), 'both stations Installed', 20_000);
  for (const [id, protocol] of Object.entries(CHARGERS)) {
    assert.deepEqual(statusesOf('r-ok', id), SUCCESS, `${id}: what the rollout client saw`);
    assert.deepEqual(firmwareStatuses(sims.get(id)!, r.requestId), SUCCESS, `${id}: what the charger reported`);
    // the station's answer to the call reached the rollout client as an ocpp-result
    const answer = inbox.find((d) => d.format === 'ocpp-result' && d.from === id);
    assert.ok(answer, `${id}: ocpp-result delivered`);
    assert.deepEqual(JSON.parse(answer.body), { action: protocol === 'ocpp1.6' ? 'SignedUpdateFirmware' : 'UpdateFirmware', inReplyTo: r.stations[id]!.msgId, result: { status: 'Accepted' } });
    // byte-identical image, installed version recorded, the CSMS's view of the station
    assert.ok(readFileSync(join(fw.w.path(`fw-${id}`), `image-${r.requestId}.bin`)).equals(image), `${id}: image byte-identical`);
    assert.equal(readInstalled(fw.dirs.get(id)!)?.version, '2.0');
    const state = (await fw.gw.store.getStationState(id)) as { firmware?: Record<string, unknown> };
    assert.deepEqual(state.firmware && { ...state.firmware, at: 'x' }, { status: 'Installed', at: 'x', requestId: r.requestId, ...(protocol === 'ocpp1.6' ? { signed: true } : {}) });
  }
  const st = await prov.rolloutStatus('r-ok');
  assert.deepEqual(Object.fromEntries(Object.entries(st.stations).map(([k, v]) => [k, v.status])), { 'CP-16': 'Installed', 'CP-201': 'Installed', 'CP-21': 'Installed' });
});

test('a tampered package: every charger reports InvalidSignature, raises InvalidFirmwareSignature (seen by the CSMS and the client), installs nothing', async () => {
  const pkg = await fw.pack(imagePath, 'v3.evfw', { version: '3.0', devices: Object.keys(CHARGERS) });
  // one byte of the shared ciphertext flipped: every device gets it
  const bytes = readFileSync(pkg.path);
  const index = await readPackageIndex(pkg.path);
  bytes[index.shared.offset + Math.floor(index.shared.length / 2)]! ^= 0x01;
  writeFileSync(pkg.path, bytes);
  await uploadFirmware(prov, pkg.path);
  const r = await prov.startRollout({ id: 'r-tampered', packageId: pkg.packageId, stations: Object.keys(CHARGERS), lifetimeSec: 600 });

  await waitFor(() => Object.keys(CHARGERS).every((s) => statusesOf('r-tampered', s).includes('InvalidSignature')), 'both stations InvalidSignature', 20_000);
  for (const id of Object.keys(CHARGERS)) {
    assert.deepEqual(statusesOf('r-tampered', id), ['Downloading', 'Downloaded', 'InvalidSignature']);
    assert.ok(eventsOf('r-tampered', id).some((e) => e.security === 'InvalidFirmwareSignature'), `${id}: security event reached the client`);
    const state = (await fw.gw.store.getStationState(id)) as { firmware: { status: string }; securityEvents: { type: string }[] };
    assert.equal(state.firmware.status, 'InvalidSignature');
    assert.ok(state.securityEvents.some((e) => e.type === 'InvalidFirmwareSignature'), `${id}: the CSMS holds the security event`);
    assert.equal(existsSync(join(fw.w.path(`fw-${id}`), `image-${r.requestId}.bin`)), false, 'no image left behind');
    assert.equal(readInstalled(fw.dirs.get(id)!)?.version, '2.0', 'still the version installed before');
  }
  assert.deepEqual(
    Object.values((await prov.rolloutStatus('r-tampered')).stations).map((s) => [s.status, s.securityEvents]),
    Object.keys(CHARGERS).map(() => ['InvalidSignature', ['InvalidFirmwareSignature']]),
  );
});

test('a genuine package for another model is refused after verification (InstallVerificationFailed), without a security event', async () => {
  const pkg = await fw.pack(imagePath, 'other.evfw', { version: '4.0', model: 'OTHER-9', devices: ['CP-201'] });
  await uploadFirmware(prov, pkg.path);
  await prov.startRollout({ id: 'r-model', packageId: pkg.packageId, stations: ['CP-201'], lifetimeSec: 600 });
  await waitFor(() => statusesOf('r-model', 'CP-201').includes('InstallVerificationFailed'), 'InstallVerificationFailed', 20_000);
  assert.deepEqual(statusesOf('r-model', 'CP-201'), ['Downloading', 'Downloaded', 'InstallVerificationFailed']);
  assert.equal(eventsOf('r-model', 'CP-201').filter((e) => e.security).length, 0);
  assert.equal(readInstalled(fw.dirs.get('CP-201')!)?.version, '2.0');
});

test('stations that cannot be reached get a final status at once; one offline at the start gets the call when it connects', async () => {
  const pkg = await fw.pack(imagePath, 'v5.evfw', { version: '5.0', devices: ['CP-LATE', 'CP-NEVER', 'CP-16'] });
  await uploadFirmware(prov, pkg.path);
  // CP-LATE booted once (so its OCPP version is known), then went offline
  startSim('CP-LATE', 'ocpp2.0.1');
  await waitFor(() => booted(sims.get('CP-LATE')!), 'CP-LATE booted');
  await stopSim('CP-LATE');

  const r = await prov.startRollout({ id: 'r-offline', packageId: pkg.packageId, stations: ['CP-LATE', 'CP-NEVER', 'CP-201', 'CP-GHOST'], lifetimeSec: 600 });
  assert.deepEqual(
    Object.fromEntries(Object.entries(r.stations).map(([k, v]) => [k, v.status])),
    // CP-NEVER: registered, in the package, never booted; CP-201: no key slot; CP-GHOST: neither
    { 'CP-LATE': 'Queued', 'CP-NEVER': 'NeverBooted', 'CP-201': 'NotInPackage', 'CP-GHOST': 'NotInPackage' },
  );
  const late = startSim('CP-LATE', 'ocpp2.0.1');
  await waitFor(() => statusesOf('r-offline', 'CP-LATE').includes('Installed'), 'CP-LATE Installed after reconnecting', 20_000);
  assert.deepEqual(firmwareStatuses(late, r.requestId), SUCCESS);
  assert.ok(readFileSync(join(fw.w.path('fw-CP-LATE'), `image-${r.requestId}.bin`)).equals(image));
});

test('only the route policy\'s firmware role may roll out; a rollout of a package the gateway does not hold is refused', async () => {
  const tool = await fw.client('tool-1');
  await assert.rejects(tool.startRollout({ id: 'r-tool', packageId: '0123456789abcdef0123456789abcdef', stations: ['CP-16'], lifetimeSec: 60 }), (e: Error & { code?: string }) => e.code === 'ERR_POLICY_DENIED');
  await tool.close();
  await assert.rejects(prov.startRollout({ id: 'r-none', packageId: '0123456789abcdef0123456789abcdef', stations: ['CP-16'], lifetimeSec: 60 }), (e: Error & { code?: string }) => e.code === 'ERR_NOT_FOUND');
  await assert.rejects(prov.rolloutStatus('r-nope'), (e: Error & { code?: string }) => e.code === 'ERR_NOT_FOUND');
});
