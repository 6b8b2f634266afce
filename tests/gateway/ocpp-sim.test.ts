// The simulated charger (library and `evseal sim charger`) against the OCPP
// service: it boots, heartbeats, opens a sealed delivery, acknowledges it only
// after the open committed (a redelivery is acknowledged again without
// opening), and answers with a sealed reply through the envelope carrier.
// Also `evseal station add/list`. Output is metadata only, never plaintext.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { inspectEnvelope } from '../../src/core/envelope.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import type { StationState } from '../../src/gateway/ocpp/csms.js';
import { addStation } from '../../src/gateway/stations.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import { PASSPHRASE, World } from '../helpers/world.js';
import { startGateway, until, type TestGateway } from './helpers/ocpp-gateway.js';
import { PASSWORD } from './helpers/ocpp-clients.js';

const w = new World();
w.now = Date.now();
let ca = '';
let cpDir = '';
let charger: Endpoint;
let prov: Endpoint;
let provBundle = '';
const SECRET = 'apn-password: correct-horse-battery';
const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;

before(async () => {
  ca = await w.ca('op-ca');
  cpDir = await w.identity(ca, 'charger', 'CP-SIM');
  const provDir = await w.identity(ca, 'provisioning', 'prov-1');
  charger = w.endpoint(cpDir, w.trust(ca), [], { revocationCheck: false });
  prov = w.endpoint(provDir, w.trust(ca), [], { revocationCheck: false });
  provBundle = w.bundle(provDir);
});
after(() => w.cleanup());

async function submitFromProv(gw: TestGateway, text = SECRET): Promise<{ seq: number; env: string }> {
  const env = prov.seal(w.bundle(cpDir), Buffer.from(text), { kind: 'credentials' });
  const h = inspectEnvelope(env);
  const r = await gw.router.submit({ id: 'prov-1', role: 'provisioning', via: 'endpoint' }, { format: 'envelope', to: 'CP-SIM', kind: h.kind, msgId: h.id, expires: h.expires * 1000, body: env });
  return { seq: r.seq, env };
}

test('sim charger: boots, heartbeats, opens a delivery, replies sealed; a redelivery is acknowledged without opening', async () => {
  const gw = await startGateway();
  const out = w.path('sim-out');
  mkdirSync(out);
  try {
    await gw.addStation('CP-SIM', { password: PASSWORD });
    await gw.store.putBundle('prov-1', 'provisioning', provBundle, Date.now());
    const { seq, env } = await submitFromProv(gw);
    const events: SimEvent[] = [];
    const r = await runSimCharger({ endpoint: charger, gateway: gw.url, password: PASSWORD, protocol: 'ocpp2.0.1', heartbeats: 2, heartbeatIntervalMs: 20, count: 1, outDir: out, onEvent: (e) => events.push(e) });
    assert.equal(r.opened, 1);
    const id = inspectEnvelope(env).id;
    assert.deepEqual(events.map((e) => e.type).filter((t) => t !== 'heartbeat'), ['booted', 'opened', 'replied']);
    assert.equal(events.filter((e) => e.type === 'heartbeat').length, 2);
    assert.deepEqual(events.find((e) => e.type === 'opened'), { type: 'opened', msgId: id, from: 'prov-1', role: 'provisioning', kind: 'credentials', size: SECRET.length, file: join(out, `${id}.bin`) });
    assert.equal(readFileSync(join(out, `${id}.bin`), 'utf8'), SECRET);
    assert.ok(!JSON.stringify(events).includes(SECRET), 'events carry metadata only');
    assert.deepEqual(gw.router.acks, [{ recipient: 'CP-SIM', seq }]);

    const [reply] = await gw.store.pending('prov-1', 0, 10, Date.now());
    assert.equal(reply!.sender, 'CP-SIM');
    assert.equal(reply!.kind, 'provisioning-report');
    assert.deepEqual(JSON.parse(Buffer.from(prov.open(reply!.body).plaintext).toString()), { inReplyTo: id, received: SECRET.length });

    const state = (await gw.store.getStationState('CP-SIM')) as unknown as StationState;
    assert.equal(state.boot?.model, 'sim-charger');
    assert.ok(state.lastHeartbeat);
    assert.equal(state.connectors['1/1']?.status, 'Available');

    // the acknowledgement was lost: the same message comes again and is acknowledged without a second open
    const again: SimEvent[] = [];
    const stop = new AbortController();
    const run = runSimCharger(
      {
        endpoint: charger, gateway: gw.url, password: PASSWORD, protocol: 'ocpp1.6', heartbeatIntervalMs: 60_000, outDir: out,
        onEvent: (e) => {
          again.push(e);
          if (e.type === 'booted') void until(() => gw.router.attached('CP-SIM') !== undefined).then(() => gw.router.attached('CP-SIM')!.push({ seq, msgId: id, sender: 'prov-1', recipient: 'CP-SIM', kind: 'credentials', format: 'envelope', body: env, expires: Date.now() + 60_000, created: Date.now(), attempts: 0 }));
          if (e.type === 'replay') stop.abort();
        },
      },
      stop.signal,
    );
    assert.deepEqual(await run, { opened: 0 });
    assert.deepEqual(again.filter((e) => e.type === 'replay'), [{ type: 'replay', msgId: id, from: 'prov-1' }]);
    assert.deepEqual(gw.router.acks, [{ recipient: 'CP-SIM', seq }, { recipient: 'CP-SIM', seq }]);
  } finally {
    await gw.close();
  }
});

test('sim charger: an envelope that does not open is Rejected and stays in the mailbox', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-SIM', { password: PASSWORD });
    // sealed for CP-SIM but changed on the way, so it never opens
    const env = prov.seal(w.bundle(cpDir), Buffer.from('tamper me'), { kind: 'credentials' });
    const j = JSON.parse(env) as Record<string, string>;
    const tampered = JSON.stringify({ ...j, ct: (j.ct![0] === 'A' ? 'B' : 'A') + j.ct!.slice(1) });
    const h = inspectEnvelope(tampered);
    const { seq } = await gw.router.submit({ id: 'prov-1', role: 'provisioning', via: 'endpoint' }, { format: 'envelope', to: 'CP-SIM', kind: h.kind, msgId: h.id, expires: h.expires * 1000, body: tampered });
    const events: SimEvent[] = [];
    const stop = new AbortController();
    const run = runSimCharger(
      {
        endpoint: charger, gateway: gw.url, password: PASSWORD, protocol: 'ocpp2.1', heartbeatIntervalMs: 60_000,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'refused') stop.abort();
        },
      },
      stop.signal,
    );
    await run;
    assert.deepEqual(events.filter((e) => e.type === 'refused'), [{ type: 'refused', msgId: h.id, code: 'ERR_OPEN_FAILED' }]);
    await until(() => gw.router.failures.length === 1, 3000, 'the failed attempt');
    assert.deepEqual(gw.router.failures, [{ recipient: 'CP-SIM', seq, reason: 'rejected (Rejected)' }]);
    assert.equal(await gw.store.depth('CP-SIM'), 1);
  } finally {
    await gw.close();
  }
});

/** `evseal ARGS` from the sources (tsx), asynchronously so that independent commands can overlap. */
function evseal(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

test('CLI: station add and list; the hash is never shown', async () => {
  const data = w.path('gw-data');
  const added = await evseal(['station', 'add', '--data', data, '--id', 'CP-SIM', '--password', PASSWORD]);
  assert.equal(added.code, 0, added.stderr);
  assert.equal(added.stdout, 'added station CP-SIM (password)\n');
  const store = new SqliteStore(data);
  try {
    // the same code as the command, in-process (each CLI run costs seconds here)
    const gen = await addStation(store, { id: 'CP-3' }, Date.now());
    assert.match(gen.generatedPassword!, /^[A-Za-z0-9_-]{32}$/);
    await assert.rejects(addStation(store, { id: 'CP-4', password: 'short' }, Date.now()), /at least 16 characters/);
    await assert.rejects(addStation(store, { id: 'bad id', password: PASSWORD }, Date.now()), /station id/);
  } finally {
    await store.close();
  }
  const list = await evseal(['station', 'list', '--data', data, '--json']);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual((JSON.parse(list.stdout) as { id: string; password: boolean }[]).map((s) => [s.id, s.password]), [['CP-3', true], ['CP-SIM', true]]);
  assert.ok(!list.stdout.includes('scrypt'));
});

test('CLI: sim charger opens one message, answers it and prints metadata only', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-SIM', { password: PASSWORD });
    await gw.store.putBundle('prov-1', 'provisioning', provBundle, Date.now());
    const { env } = await submitFromProv(gw, SECRET + ' (cli)');
    const out = w.path('cli-out');
    const r = await evseal([
      'sim', 'charger', '--as', cpDir, '--gateway', gw.url, '--password', PASSWORD, '--ocpp', '2.1',
      '--trust', join(ca, 'ca.pem'), '--no-revocation-check', '--count', '1', '--out-dir', out, '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as SimEvent);
    const id = inspectEnvelope(env).id;
    assert.deepEqual(events.map((e) => e.type).filter((t) => t !== 'heartbeat'), ['booted', 'opened', 'replied'], 'delivered after the boot');
    assert.ok(!r.stdout.includes(SECRET), 'no plaintext on stdout');
    assert.deepEqual(readdirSync(out), [`${id}.bin`]);
    assert.equal(readFileSync(join(out, `${id}.bin`), 'utf8'), SECRET + ' (cli)');
    assert.equal(await gw.store.depth('CP-SIM'), 0);
    assert.equal(await gw.store.depth('prov-1'), 1, 'the sealed reply is queued for the sender');
  } finally {
    await gw.close();
  }
});
