// `evseal tool` against the real gateway and the sim charger: every command
// runs over an end-to-end session (the gateway routes sealed frames only),
// further commands go through the ratchet, the charger answers command
// errors inside the session, a one-time prekey from the directory is used
// when there is one, and a charger that is offline gets the command when it
// comes back (within the tool's timeout) and never after.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ServiceTool, ToolError } from '../../src/client/service-tool.js';
import { readOneTimePrekeys } from '../../src/keystore/identity-dir.js';
import { PASSPHRASE } from '../helpers/world.js';
import { toolWorld, until, type SimHandle, type ToolWorld } from './helpers/tool-fixture.js';

let tw: ToolWorld;
let cpDir = '';
let sim: SimHandle;
let toolDir = '';
let tool: ServiceTool;
let cliDirs: string[] = [];
let offDir = '';
const CP = 'CP-T1';
// the built CLI (npm test builds first; run `npm run build` before this file alone)
const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;

before(async () => {
  tw = await toolWorld();
  cpDir = await tw.identity('charger', CP, 'op');
  // The charger publishes its bundle and one-time prekeys itself, over OCPP, when it boots.
  await tw.station(cpDir, CP);
  sim = tw.charger(cpDir);
  await sim.ready;
  toolDir = await tw.identity('service-tool', 'tool-1', 'maker');
  tool = await ServiceTool.connect(tw.endpoint(toolDir), tw.gw.url);
  // identities for the CLI runs, made here so that the tests time the CLI only
  cliDirs = await Promise.all(['cli-1', 'cli-2', 'cli-3', 'cli-4', 'cli-5'].map((id) => tw.identity('service-tool', id, 'maker')));
  offDir = await tw.identity('charger', 'CP-OFF2', 'op');
});
after(async () => {
  await tool?.close();
  await tw?.close();
});

const result = (r: { ok: boolean }) => {
  assert.equal(r.ok, true, JSON.stringify(r));
  return (r as unknown as { result: Record<string, unknown> }).result;
};

test('each command runs over its own session and its result comes back sealed', { timeout: 15_000 }, async () => {
  const otkBefore = readOneTimePrekeys(sim.endpoint.id.store).size;

  const diag = result((await tool.open(CP, { cmd: 'get-diagnostics' }, { timeoutMs: 10_000 })).result);
  assert.equal(diag.stationId, CP);
  assert.equal(diag.firmware, '0.1.0-sim');
  // the session used one of the charger's one-time prekeys, claimed from the directory; its private half is gone
  assert.equal(readOneTimePrekeys(sim.endpoint.id.store).size, otkBefore - 1);

  const all = result((await tool.open(CP, { cmd: 'get-config' }, { timeoutMs: 10_000 })).result);
  const row = (cfg: Record<string, unknown>, k: string) => (cfg.configuration as { key: string; value: string; readonly: boolean }[]).find((x) => x.key === k);
  assert.equal(row(all, 'HeartbeatInterval')?.value, '300');
  assert.equal(row(all, 'ChargePointModel')?.readonly, true);

  const set = result((await tool.open(CP, { cmd: 'set-config', key: 'HeartbeatInterval', value: '60' }, { timeoutMs: 10_000 })).result);
  assert.deepEqual(set, { key: 'HeartbeatInterval', value: '60', previous: '300', status: 'Accepted' });
  const one = result((await tool.open(CP, { cmd: 'get-config', keys: ['HeartbeatInterval', 'NoSuchKey', 'toString', 'constructor'] }, { timeoutMs: 10_000 })).result);
  assert.deepEqual(one, { configuration: [{ key: 'HeartbeatInterval', value: '60', readonly: false }], unknownKeys: ['NoSuchKey', 'toString', 'constructor'] });

  const reset = result((await tool.open(CP, { cmd: 'reset' }, { timeoutMs: 10_000 })).result);
  assert.deepEqual(reset, { status: 'Accepted', type: 'Soft', resets: 1 });

  const unlock = result((await tool.open(CP, { cmd: 'unlock-connector', connector: 1 }, { timeoutMs: 10_000 })).result);
  assert.deepEqual(unlock, { connector: 1, status: 'Unlocked' });
  const after = result((await tool.open(CP, { cmd: 'get-diagnostics' }, { timeoutMs: 10_000 })).result);
  assert.deepEqual(after.connectors, [
    { connector: 1, lock: 'Unlocked' },
    { connector: 2, lock: 'Locked' },
  ]);
  assert.equal(after.resets, 1);

  // The gateway saw sealed frames only: no command or value in any body it stored or routed.
  for (const m of tool.sent) {
    assert.doesNotMatch(m.body, /HeartbeatInterval|unlock|reset|diagnostics/);
    assert.equal(m.kind, 'command');
  }
  assert.equal(sim.events.filter((e) => e.type === 'command').length, 7);
  assert.equal(sim.events.filter((e) => e.type === 'replied').length, 7);
});

test('further commands in a session go through the ratchet; command errors are answered inside the session', { timeout: 15_000 }, async () => {
  const { session, result: first } = await tool.open(CP, { cmd: 'get-config', keys: ['ConnectionTimeOut'] }, { timeoutMs: 10_000 });
  assert.equal(first.ok, true);
  assert.deepEqual(result(await session.send({ cmd: 'set-config', key: 'ConnectionTimeOut', value: '90' }, { timeoutMs: 10_000 })).previous, '120');
  assert.deepEqual(await session.send({ cmd: 'set-config', key: 'ChargePointModel', value: 'x' }, { timeoutMs: 10_000 }), {
    ok: false,
    error: 'ERR_POLICY_DENIED',
    message: 'ChargePointModel is read-only',
  });
  const unknown = await session.send({ cmd: 'set-config', key: 'Nope', value: '1' }, { timeoutMs: 10_000 });
  assert.equal(unknown.ok === false && unknown.error, 'ERR_NOT_FOUND');
  const bad = await session.send({ cmd: 'set-config', key: 'HeartbeatInterval', value: 'soon' }, { timeoutMs: 10_000 });
  assert.equal(bad.ok === false && bad.error, 'ERR_INVALID_INPUT');
  const noConnector = await session.send({ cmd: 'unlock-connector', connector: 7 }, { timeoutMs: 10_000 });
  assert.equal(noConnector.ok === false && noConnector.error, 'ERR_NOT_FOUND');
  const cfg = result(await session.send({ cmd: 'get-config', keys: ['ConnectionTimeOut'] }, { timeoutMs: 10_000 }));
  assert.equal((cfg.configuration as { value: string }[])[0]!.value, '90');
});

test('an offline charger gets the command when it comes back, within the timeout', { timeout: 15_000 }, async () => {
  const dir = await tw.identity('charger', 'CP-LATE', 'op');
  await tw.station(dir, 'CP-LATE', { publish: true });
  const pending = tool.open('CP-LATE', { cmd: 'reset', type: 'Hard' }, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await tw.gw.store.depth('CP-LATE'), 1, 'the gateway holds the sealed command');
  const late = tw.charger(dir);
  assert.deepEqual(result((await pending).result), { status: 'Accepted', type: 'Hard', resets: 1 });
  await late.stop();
});

test('a command is dropped when the tool gives up, and never runs after', { timeout: 15_000 }, async () => {
  const dir = await tw.identity('charger', 'CP-OFF', 'op');
  await tw.station(dir, 'CP-OFF', { publish: true });
  const t0 = Date.now();
  await assert.rejects(tool.open('CP-OFF', { cmd: 'unlock-connector', connector: 1 }, { timeoutMs: 1500 }), (e: unknown) => {
    assert.ok(e instanceof ToolError);
    assert.ok(e.outcome === 'timeout' || e.outcome === 'expired', e.outcome);
    return true;
  });
  assert.ok(Date.now() - t0 < 5000);
  await until(async () => (await tw.gw.store.depth('CP-OFF')) === 0, 3000, 'the gateway to drop the expired command');
  const off = tw.charger(dir);
  await off.ready;
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(off.events.filter((e) => e.type === 'command').length, 0);
  await off.stop();
});

/** `evseal ARGS` from dist/. */
function evseal(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('evseal tool: results on stdout, exit codes for a failed command, a refusal and bad usage', { timeout: 15_000 }, async () => {
  // one identity per process: a second connection of an identity replaces the first
  const dirs = cliDirs;
  const base = (dir: string) => ['tool', '--as', dir, '--gateway', tw.gw.url, '--trust', join(tw.cas.op, 'ca.pem'), '--crl', join(tw.cas.op, 'crl.pem')];
  const [ok, human, failed, missing, usage] = await Promise.all([
    evseal([...base(dirs[0]!), '--charger', CP, '--json', 'set-config', 'MeterValueSampleInterval=30']),
    evseal([...base(dirs[1]!), '--charger', CP, 'get-config', 'MeterValueSampleInterval', 'ResetRetries']),
    evseal([...base(dirs[2]!), '--charger', CP, 'unlock-connector', '9']),
    evseal([...base(dirs[3]!), '--charger', 'CP-NOWHERE', 'get-diagnostics']),
    evseal([...base(dirs[0]!), '--charger', CP, 'set-config', 'NoEquals']),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const j = JSON.parse(ok.stdout) as { ok: boolean; result: { key: string; value: string } };
  assert.equal(j.ok, true);
  assert.deepEqual([j.result.key, j.result.value], ['MeterValueSampleInterval', '30']);

  // the two commands may run in either order: the value is the default or the new one
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^MeterValueSampleInterval = (60|30)\nResetRetries = 1\n$/);

  assert.equal(failed.code, 3);
  assert.match(failed.stderr, /^evseal: CP-T1 could not run unlock-connector: no connector 9 \[ERR_NOT_FOUND\]\n$/);

  // no such charger in the directory: refused before anything is sent
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^evseal: no bundle for CP-NOWHERE in the gateway directory \[ERR_NOT_FOUND\]\n$/);

  // bad usage is found before connecting
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /set-config takes KEY=VALUE \[ERR_USAGE\]/);
});

test('evseal tool times out (exit 4) on a charger that stays offline', { timeout: 15_000 }, async () => {
  await tw.station(offDir, 'CP-OFF2', { publish: true });
  const toolCli = cliDirs[4]!;
  const r = await evseal(['tool', '--as', toolCli, '--gateway', tw.gw.url, '--trust', join(tw.cas.op, 'ca.pem'), '--crl', join(tw.cas.op, 'crl.pem'), '--charger', 'CP-OFF2', '--timeout', '1', '--json', 'reset']);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^evseal: (no answer from CP-OFF2 within 1 s|the command expired).*\[ERR_STATE\]\n$/);
  const out = JSON.parse(r.stdout) as { ok: boolean; outcome: string };
  assert.equal(out.ok, false);
  assert.match(out.outcome, /^(timeout|expired)$/);
});
