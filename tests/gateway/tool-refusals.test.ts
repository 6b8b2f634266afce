// What a charger refuses from `evseal tool`, through the real gateway: a tool
// of another operator, a tool certified by a CA the charger's policy does
// not allow for tools, a revoked tool (the gateway does not know yet), a
// wrong role, the wrong session kind, and replays of a first message and of
// a ratchet message. Each refusal is a DataTransfer Rejected with a stable
// code, a line in the charger's security log, no result to the tool, and
// no change to the charger's state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceTool, ToolError } from '../../src/client/service-tool.js';
import { GatewayClient } from '../../src/client/gateway-client.js';
import { encodeCommand, encodeInitFrame } from '../../src/client/session-frames.js';
import { b64u } from '../../src/core/base64url.js';
import { revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import { ChargerCommands } from '../../src/sim/commands.js';
import type { SimEvent } from '../../src/sim/charger.js';
import { securityEvents, toolWorld, until, type SimHandle, type ToolWorld } from './helpers/tool-fixture.js';

let tw: ToolWorld;
let cpDir = '';
let sim: SimHandle;
const CP = 'CP-R1';
const tools: ServiceTool[] = [];

before(async () => {
  tw = await toolWorld();
  cpDir = await tw.identity('charger', CP, 'op');
  await tw.station(cpDir, CP);
  sim = tw.charger(cpDir);
  await sim.ready;
});
after(async () => {
  for (const t of tools) await t.close();
  await tw?.close();
});

async function connectTool(role: 'service-tool' | 'psp' | 'provisioning', id: string, ca: 'op' | 'maker' | 'psp', operator?: string): Promise<ServiceTool> {
  const t = await ServiceTool.connect(tw.endpoint(await tw.identity(role, id, ca, operator)), tw.gw.url);
  tools.push(t);
  return t;
}

/** The charger's state, read from its keystore. */
const state = () => new ChargerCommands(sim.endpoint).state();

/** Events about one gateway message id. */
const about = (msgId: string): SimEvent[] => sim.events.filter((e) => 'msgId' in e && e.msgId === msgId);

/** The security-log lines written since `from`. */
function securitySince(from: number): { event: string; reason: string; [k: string]: unknown }[] {
  return securityEvents(cpDir).slice(from);
}

/** Runs a command the charger must refuse; checks the refusal everywhere it shows. */
async function refused(tool: ServiceTool, cmd: Parameters<ServiceTool['open']>[1], code: string): Promise<{ msgId: string; log: { event: string; reason: string; [k: string]: unknown }[] }> {
  const before = state();
  const logFrom = securityEvents(cpDir).length;
  await assert.rejects(tool.open(CP, cmd, { timeoutMs: 10_000 }), (e: unknown) => {
    assert.ok(e instanceof ToolError, String(e));
    assert.equal(e.outcome, 'refused');
    assert.match(e.message, /CP-R1 refused the command/);
    return true;
  });
  const msgId = tool.sent.at(-1)!.id;
  const evs = about(msgId);
  assert.ok(evs.length > 0 && evs.every((e) => e.type === 'refused' && e.code === code), JSON.stringify(evs));
  assert.deepEqual(state(), before, 'nothing was executed');
  return { msgId, log: securitySince(logFrom) };
}

test('a tool of another operator is refused (ERR_POLICY_DENIED), unless the charger allows that operator', { timeout: 15_000 }, async () => {
  const other = await connectTool('service-tool', 'tool-otherco', 'maker', 'OtherCo');
  const { msgId, log } = await refused(other, { cmd: 'unlock-connector', connector: 1 }, 'ERR_POLICY_DENIED');
  assert.ok(log.some((l) => l.event === 'command-refused' && l.reason === 'operator-not-allowed' && l.detail === 'OtherCo' && l.msgId === msgId), JSON.stringify(log));

  // The same tool on a charger whose allowlist names OtherCo.
  const dir = await tw.identity('charger', 'CP-R2', 'op');
  await tw.station(dir, 'CP-R2');
  const open = tw.charger(dir, { toolOperators: ['ChargeCo', 'OtherCo'] });
  await open.ready;
  const r = await other.open('CP-R2', { cmd: 'unlock-connector', connector: 1 }, { timeoutMs: 10_000 });
  assert.deepEqual(r.result, { ok: true, result: { connector: 1, status: 'Unlocked' } });
  await open.stop();
});

test('a tool certified by a CA the charger does not allow for tools is refused (ERR_OPEN_FAILED)', { timeout: 15_000 }, async () => {
  // The operator's CA is trusted by the gateway and by the charger, but the charger's policy scopes it to chargers and provisioning.
  const opTool = await connectTool('service-tool', 'tool-opca', 'op');
  const { msgId, log } = await refused(opTool, { cmd: 'reset' }, 'ERR_OPEN_FAILED');
  assert.ok(log.some((l) => l.event === 'session-refused' && l.reason === 'anchor-not-allowed' && l.from === 'tool-opca'), JSON.stringify(log));
  assert.ok(log.some((l) => l.event === 'command-refused' && l.reason === 'session-refused' && l.msgId === msgId));
});

test('a revoked tool is refused (ERR_OPEN_FAILED) even while the gateway still lets it in', { timeout: 15_000 }, async () => {
  const dir = await tw.identity('service-tool', 'tool-revoked', 'maker');
  const t = await connectTool('service-tool', 'tool-revoked', 'maker');
  assert.equal((await t.open(CP, { cmd: 'get-diagnostics' }, { timeoutMs: 10_000 })).result.ok, true, 'accepted before the revocation');
  await revokeWithCaDir(tw.cas.maker, readFileSync(join(dir, 'cert.pem'), 'utf8'));
  const { log } = await refused(t, { cmd: 'unlock-connector', connector: 2 }, 'ERR_OPEN_FAILED');
  assert.ok(log.some((l) => l.event === 'session-refused' && l.reason === 'cert-revoked' && l.from === 'tool-revoked'), JSON.stringify(log));
});

test('a wrong role is refused: a PSP cannot command, neither by the tool nor by a session it opens itself', { timeout: 15_000 }, async () => {
  const psp = await connectTool('psp', 'psp-1', 'psp', 'PayCo');
  // The PSP's own keystore will not start a command session (role policy), so nothing is sent.
  await assert.rejects(psp.open(CP, { cmd: 'reset' }, { timeoutMs: 10_000 }), { code: 'ERR_POLICY_DENIED' });
  assert.equal(psp.sent.length, 0);

  // A session of a kind a PSP may open (payment), carrying a command: the gateway routes it, the charger refuses it.
  const before = state();
  const logFrom = securityEvents(cpDir).length;
  const bundle = (await psp.gateway.getBundle(CP))!;
  const { message } = psp.ep.startSession(bundle, encodeCommand({ cmd: 'reset' }), { kind: 'payment' });
  const id = b64u(randomBytes(16));
  await psp.gateway.sendSession({ to: CP, kind: 'payment', id, expires: Date.now() + 10_000, body: encodeInitFrame(message) });
  await until(() => about(id).length > 0, 5000, 'the charger to answer');
  assert.deepEqual(about(id)[0], { type: 'refused', msgId: id, from: 'psp-1', code: 'ERR_OPEN_FAILED' });
  assert.deepEqual(state(), before);
  assert.ok(securitySince(logFrom).some((l) => l.event === 'session-refused' && l.reason === 'role-mismatch' && l.from === 'psp-1'), JSON.stringify(securitySince(logFrom)));

  // A provisioning service (a role the charger trusts, for config envelopes) cannot command either.
  const prov = await connectTool('provisioning', 'prov-1', 'op');
  const { message: m2 } = prov.ep.startSession(bundle, encodeCommand({ cmd: 'reset' }), { kind: 'config' });
  const id2 = b64u(randomBytes(16));
  await prov.gateway.sendSession({ to: CP, kind: 'config', id: id2, expires: Date.now() + 10_000, body: encodeInitFrame(m2) });
  await until(() => about(id2).length > 0, 5000, 'the charger to answer');
  assert.equal((about(id2)[0] as { code: string }).code, 'ERR_OPEN_FAILED');
  assert.deepEqual(state(), before);
});

test('a service tool opening a session of another kind (config) cannot command in it (ERR_POLICY_DENIED)', { timeout: 15_000 }, async () => {
  const t = await connectTool('service-tool', 'tool-kind', 'maker');
  const before = state();
  const bundle = (await t.gateway.getBundle(CP))!;
  const { message } = t.ep.startSession(bundle, encodeCommand({ cmd: 'reset' }), { kind: 'config' });
  const id = b64u(randomBytes(16));
  await t.gateway.sendSession({ to: CP, kind: 'config', id, expires: Date.now() + 10_000, body: encodeInitFrame(message) });
  await until(() => about(id).length > 0, 5000, 'the charger to answer');
  assert.equal((about(id)[0] as { code: string }).code, 'ERR_POLICY_DENIED');
  assert.deepEqual(state(), before);
});

test('a replayed command is refused and not executed again: first message and ratchet message, by the tool or by anyone', { timeout: 15_000 }, async () => {
  const t = await connectTool('service-tool', 'tool-replay', 'maker');
  const resets0 = state().resets;
  // without a one-time prekey, so that the handshake's replay window is what refuses its replay (case 1b has one)
  const { session, result } = await t.open(CP, { cmd: 'reset' }, { timeoutMs: 10_000, oneTimePrekey: false });
  assert.equal(result.ok, true);
  assert.equal(state().resets, resets0 + 1);
  const first = t.sent.at(-1)!;

  const resubmit = async (gw: GatewayClient, body: string): Promise<string> => {
    const id = b64u(randomBytes(16));
    const logFrom = securityEvents(cpDir).length;
    await gw.sendSession({ to: CP, kind: 'command', id, expires: Date.now() + 10_000, body });
    await until(() => about(id).length > 0, 5000, 'the charger to answer');
    assert.deepEqual(about(id)[0], { type: 'refused', msgId: id, from: gw.identity.id, code: 'ERR_OPEN_FAILED' });
    return JSON.stringify(securitySince(logFrom));
  };

  // 1. The exact first message again, under a new gateway message id: the handshake's replay window.
  assert.match(await resubmit(t.gateway, first.body), /"event":"session-refused","reason":"replay"/);
  assert.equal(state().resets, resets0 + 1);
  // 1b. A first message that used one of the charger's one-time prekeys (published by the charger over OCPP,
  //     claimed from the directory): its replay finds that prekey gone.
  assert.equal((await t.open(CP, { cmd: 'get-diagnostics' }, { timeoutMs: 10_000 })).result.ok, true);
  assert.match(await resubmit(t.gateway, t.sent.at(-1)!.body), /"event":"session-refused","reason":"unknown-prekey","detail":"one-time prekey"/);

  // 2. A later command in the session, then its ratchet message again: the ratchet has used that key.
  assert.equal((await session.send({ cmd: 'reset' }, { timeoutMs: 10_000 })).ok, true);
  assert.equal(state().resets, resets0 + 2);
  const second = t.sent.at(-1)!;
  assert.match(await resubmit(t.gateway, second.body), /"reason":"decrypt-failed"/);
  assert.equal(state().resets, resets0 + 2);

  // 3. Another (valid) tool replaying the captured messages as its own: the sender does not match.
  const thief = await connectTool('service-tool', 'tool-thief', 'maker');
  assert.match(await resubmit(thief.gateway, first.body), /"reason":"identity-mismatch"/);
  assert.match(await resubmit(thief.gateway, second.body), /"reason":"identity-mismatch"/);
  assert.equal(state().resets, resets0 + 2);

  // The session itself still works: the refusals changed nothing.
  assert.equal((await session.send({ cmd: 'get-diagnostics' }, { timeoutMs: 10_000 })).ok, true);
});

test('a gateway redelivering a processed message (lost answer) gets Accepted again; nothing runs twice', { timeout: 15_000 }, async () => {
  const t = await connectTool('service-tool', 'tool-redeliver', 'maker');
  await t.open(CP, { cmd: 'reset' }, { timeoutMs: 10_000 });
  const m = t.sent.at(-1)!;
  const resets = state().resets;
  const cmds = new ChargerCommands(sim.endpoint);
  // the charger marks its reply sent when the gateway's answer reaches it, which may be just after the tool has it
  await until(() => cmds.unsentReplies().length === 0, 3000, 'the reply to be marked sent');
  const again = cmds.handle(JSON.stringify({ from: 'tool-redeliver', kind: 'command', id: m.id, expires: m.expires, body: m.body }));
  assert.deepEqual(again.answer, { status: 'Accepted' });
  assert.equal(again.event.type, 'replay');
  assert.equal(again.reply, undefined, 'the reply was already taken by the gateway');
  assert.equal(state().resets, resets);
});
