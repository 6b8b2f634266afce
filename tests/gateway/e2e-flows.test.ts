// The field-sealing flows of docs/ocpp.md end to end, over real sockets,
// through the REAL gateway (startGateway: router, SQLite store, audit log):
//
// 1. credentials the CSMS must not see: a provisioning endpoint seals a
//    SetNetworkProfile (2.0.1, 2.1) and has the gateway send it; a strict
//    RPCClient charger restores the secrets and answers;
// 2. payment (2.0.1): a TransactionEvent's payment data goes to the PSP while
//    the built-in CSMS bills on the clear energy; the PSP's sealed answer
//    reaches the charger over the org.evseal DataTransfer;
// 3. fleet data minimization: 2.1 TransactionEvent (ids + SoC) and 1.6
//    MeterValues / StopTransaction (SoC, side DataTransfer) with OCMF clear;
// 4. proxy mode: an upstream CSMS gets the evseal charger's frames byte for
//    byte while the sealed fields go to the PSP, beside an ordinary charger.
//
// Each test checks what the station / CSMS / upstream saw, what the endpoint
// received, and that no secret is in the gateway's data dir (SQLite db, WAL,
// keys) or its pino log in raw, hex, base64 or base64url form. The first test
// is the scanner's positive control.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';
import { PASSWORD } from './helpers/ocpp-clients.js';
import { inspectEnvelope } from '../../src/core/envelope.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import type { Role } from '../../src/core/roles.js';
import { protect, unprotect, openFields, extractEnvelopes, bindingRef, loadOcppPolicy, PLACEHOLDER_STRING, type OcppPolicy, type OpenFn, type RecipientRef, type Unprotected } from '../../src/ocpp/index.js';
import { DEFAULT_POLICY_PATH, meterValues16, setNetworkProfile, stopTransaction16, transactionEvent, validate } from '../ocpp/fixture.js';
import { calls, connectCharger, connectEndpoint, encodedForms, fakeUpstream, findSecrets, nextDelivery, readTree, waitFor, type Blob, type RpcCharger } from './helpers/flows-fixture.js';

const w = new World();
w.now = Date.now();
let ca = '';
let crls: string[] = [];
let policy: OcppPolicy;
let gw: RunningGateway;
let log: Logger;
const DATA = () => w.path('data');
const LOG = () => w.path('gateway.log');
const ocppUrl = () => `${gw.url}/ocpp`;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Every secret of flows 1-3, scanned for once more after the gateway has shut down. */
const secretsOfGateway1: string[] = [];

const STATIONS = ['CP-CANARY', 'CP-NET201', 'CP-NET21', 'CP-PAY', 'CP-FLEET21', 'CP-FLEET16'];

before(async () => {
  ca = await w.ca('ca');
  crls = [join(ca, 'crl.pem')];
  policy = loadOcppPolicy(DEFAULT_POLICY_PATH);
  log = fileLog(LOG());
  gw = await startGateway({ port: 0, dataDir: DATA(), trust: w.trust(ca), crlFiles: crls, log });
  for (const id of STATIONS) await addStation(gw.store, { id, password: PASSWORD }, Date.now());
});
after(async () => {
  await gw.close();
  w.cleanup();
});

/** The gateway's pino log, written synchronously to a file at the most verbose level. */
function fileLog(path: string): Logger {
  return pino({ level: 'trace' }, pino.destination({ dest: path, sync: true, mkdir: true }));
}

// ---- identities

const endpoints = new Map<string, { ep: Endpoint; bundle: string }>();
async function identity(role: Role, id: string): Promise<{ ep: Endpoint; bundle: string }> {
  let e = endpoints.get(id);
  if (!e) {
    const dir = await w.identity(ca, role, id);
    e = { ep: w.endpoint(dir, w.trust(ca), crls), bundle: w.bundle(dir) };
    endpoints.set(id, e);
  }
  return e;
}
const openAs = (ep: Endpoint): OpenFn => (env, check) => ep.open(env, { beforeCommit: (x) => check(x.plaintext) });
const sealAs = (ep: Endpoint, bundleOf: (id: string) => string) => (to: string, pt: Uint8Array, o: { kind: string; contentType: string }) => ep.seal(bundleOf(to), pt, o);

// ---- the scanner

/** The gateway's files now: everything in its data dir, and its log. */
function gatewayFiles(dataDir: string, logFile: string): Blob[] {
  return [...readTree(dataDir), { name: logFile, data: readFileSync(logFile) }];
}

function assertNoSecrets(dataDir: string, logFile: string, secrets: string[], o: { mustHaveWal?: boolean } = { mustHaveWal: true }): void {
  const files = gatewayFiles(dataDir, logFile);
  const names = files.map((f) => f.name);
  assert.ok(names.includes(join(dataDir, 'evseal.db')), `the SQLite db is scanned: ${names.join(', ')}`);
  if (o.mustHaveWal) assert.ok(names.includes(join(dataDir, 'evseal.db-wal')), `the WAL is scanned: ${names.join(', ')}`);
  assert.ok(files.find((f) => f.name === logFile)!.data.length > 0, 'the log is not empty');
  assert.deepEqual(findSecrets(files, secrets), [], 'no secret in the gateway files');
}

/** No secret in a set of texts (frames a CSMS saw, station state), in any encoded form. */
function assertHidden(what: string, texts: (string | Buffer)[], secrets: string[]): void {
  const hits = findSecrets(texts.map((t, i) => ({ name: `${what}[${i}]`, data: Buffer.isBuffer(t) ? t : Buffer.from(t, 'utf8') })), secrets);
  assert.deepEqual(hits, [], `${what} holds no secret`);
}

/** evseal_messages_refused_total{code} from the gateway's /metrics. */
async function refusedTotal(g: RunningGateway, code: string): Promise<number> {
  const text = await (await fetch(`${g.url.replace(/^ws/, 'http')}/metrics`)).text();
  const m = new RegExp(`^evseal_messages_refused_total\\{code="${code}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

// ---- 0. the scanner's positive control

test('positive control: the scanner finds planted copies (raw, hex, base64, base64url, any alignment) in the db/WAL and in the log', async () => {
  // Pure: a secret embedded at every byte offset of a longer base64/base64url/hex blob is found.
  const secret = 'planted-secret-Wq4Zt8';
  for (let pre = 0; pre < 3; pre++) {
    for (const encName of ['base64', 'base64url', 'hex'] as const) {
      const blob = Buffer.from(Buffer.concat([Buffer.alloc(pre, 0xfb), Buffer.from(secret), Buffer.alloc(2, 0xff)]).toString(encName));
      assert.equal(findSecrets([{ name: 'x', data: blob }], [secret]).length > 0, true, `${encName} at offset ${pre}`);
    }
  }
  assert.throws(() => encodedForms('short'), /too short/);

  // Through the real gateway: a charger reports clear values (a SecurityEventNotification's
  // techInfo, which the built-in CSMS keeps in the station state in SQLite), one per form.
  const c = { raw: 'canary-raw-Hq2Lp9xV', hex: 'canary-hex-Tb7Rk1mZ', b64: 'canary-b64-Yc5Nw3sQ', b64u: 'canary-b64u-Jd8Vf6oP' };
  const techInfo = [c.raw, Buffer.from(c.hex).toString('hex'), Buffer.from('x' + c.b64).toString('base64'), Buffer.from('yz' + c.b64u + '\xff\xfe').toString('base64url')].join(' ');
  const cp = await connectCharger(ocppUrl(), 'CP-CANARY', 'ocpp2.0.1');
  try {
    await cp.rpc.call('SecurityEventNotification', { type: 'evseal-canary', timestamp: new Date().toISOString(), techInfo });
  } finally {
    await cp.close();
  }
  const l = { raw: 'logcanary-raw-Pz3Ke8', hex: 'logcanary-hex-Mv6Qa1', b64: 'logcanary-b64-Ux9Rc4', b64u: 'logcanary-b64u-Ls2Wd7' };
  log.info({ planted: [l.raw, Buffer.from(l.hex).toString('hex'), Buffer.from('q' + l.b64).toString('base64'), Buffer.from('\xfb' + l.b64u).toString('base64url')] }, 'positive control');

  const files = gatewayFiles(DATA(), LOG());
  const store = files.filter((f) => f.name.startsWith(DATA()));
  assert.ok(store.some((f) => f.name.endsWith('evseal.db-wal')), 'the WAL exists while the gateway runs');
  for (const [form, s] of Object.entries(c)) {
    const hits = findSecrets(store, [s]);
    assert.ok(hits.length > 0, `the ${form} copy of ${s} is found in the store`);
    if (form !== 'raw') assert.ok(hits.every((h) => !h.includes('(raw)')), `${s} is there only ${form}-encoded, and still found: ${hits.join('; ')}`);
  }
  for (const [form, s] of Object.entries(l)) {
    const hits = findSecrets(files.filter((f) => f.name === LOG()), [s]);
    assert.ok(hits.length > 0, `the ${form} copy of ${s} is found in the log`);
    if (form !== 'raw') assert.ok(hits.every((h) => !h.includes('(raw)')), `${s} is in the log only ${form}-encoded: ${hits.join('; ')}`);
  }
  assert.deepEqual(findSecrets(store, Object.values(l)), [], 'log canaries are not in the store');
});

// ---- 1. credentials the CSMS must not see

for (const [protocol, station] of [['ocpp2.0.1', 'CP-NET201'], ['ocpp2.1', 'CP-NET21']] as const) {
  const version = protocol === 'ocpp2.0.1' ? '2.0.1' : '2.1';
  test(`credentials (${version}): provisioning seals SetNetworkProfile secrets to the charger; the gateway relays placeholders + customData; the charger restores them`, async () => {
    const tag = version.replace(/\./g, '');
    const secrets = { vpnKey: `vpn-psk-${tag}-Zq81Hf0aLs`, vpnPassword: `vpn-pass-${tag}-Xw92Pe7`, apnPassword: `apn-pass-${tag}-Lm33Gk5`, simPin: 4711 };
    const scan = [secrets.vpnKey, secrets.vpnPassword, secrets.apnPassword];
    secretsOfGateway1.push(...scan);
    const cpId = await identity('charger', station);
    const prov = await identity('provisioning', `prov-${tag}`);

    // The charger: ocpp-rpc in strict mode, restoring sealed fields with its own Endpoint.
    const applied: Unprotected[] = [];
    const handlerErrors: unknown[] = [];
    const cp = await connectCharger(ocppUrl(), station, protocol, {
      bundle: cpId.bundle,
      setup: (rpc: RpcCharger) =>
        rpc.handle('SetNetworkProfile', async ({ params }: { params?: unknown }) => {
          try {
            const u = unprotect({ version: protocol, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: params as Record<string, unknown> }, { policy, me: station, open: openAs(cpId.ep) });
            if (u.pending.length > 0 || u.withheld.length > 0) return { status: 'Rejected' };
            applied.push(u);
            return { status: 'Accepted' };
          } catch (e) {
            handlerErrors.push(e);
            return { status: 'Rejected' };
          }
        }),
    });
    const pc = await connectEndpoint(gw.url, prov.ep, prov.bundle);
    try {
      // The provisioning service seals to the bundle the charger published over OCPP.
      const cpBundle = await pc.gc.getBundle(station);
      assert.equal(cpBundle, cpId.bundle, 'the charger published its bundle through the org.evseal carrier');
      const original = setNetworkProfile(version, secrets);
      const p = protect({ version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: original }, { policy, seal: sealAs(prov.ep, () => cpBundle!), resolve: () => station });
      assert.deepEqual(p.sealed.map((s) => [s.to, s.kind]), [[station, 'credentials']]);
      const callId = `snp-${tag}`;
      const r = await pc.gc.sendOcppCall({ to: station, kind: 'credentials', id: callId, expires: Date.now() + 60_000, action: 'SetNetworkProfile', payload: p.payload });
      assert.ok(r.receipt, 'accepted durably, with an audit receipt');

      // What the endpoint gets back: the charger's answer as an ocpp-result.
      const res = await nextDelivery(pc, (d) => d.format === 'ocpp-result', 'the ocpp-result');
      assert.deepEqual([res.from, res.kind], [station, 'credentials']);
      assert.deepEqual(JSON.parse(res.body), { action: 'SetNetworkProfile', inReplyTo: callId, result: { status: 'Accepted' } });
      await pc.gc.ack(res.seq);

      // What the station received on its wire: exactly the protected payload, schema-valid,
      // placeholders where the secrets were, one envelope to the charger in connectionData.customData.
      assert.deepEqual(handlerErrors, []);
      const got = calls(cp.wire.in, 'SetNetworkProfile');
      assert.equal(got.length, 1);
      const recv = got[0]!.params;
      assert.deepEqual(recv, p.payload);
      validate(version, 'SetNetworkProfile', 'request', recv);
      const cd = recv.connectionData as Record<string, any>;
      assert.deepEqual([cd.vpn.key, cd.vpn.password, cd.apn.apnPassword, cd.apn.simPin], [PLACEHOLDER_STRING, PLACEHOLDER_STRING, undefined, undefined]);
      assert.deepEqual([cd.vpn.server, cd.vpn.user, cd.apn.apn, cd.ocppCsmsUrl], ['vpn.example.com', 'cp1', 'internet.example', 'wss://csms.example.com/ocpp/CP-1'], 'what operations need stays clear');
      if (version === '2.1') assert.equal(cd.basicAuthPassword, 'basic-auth-password-0001', 'the CSMS checks BasicAuthPassword: clear');
      assert.equal(cd.customData.vendorId, 'org.evseal');
      const envs = extractEnvelopes(recv);
      assert.equal(envs.length, 1);
      const h = inspectEnvelope(envs[0]!);
      assert.deepEqual([h.from, h.to, h.kind], [`prov-${tag}`, station, 'credentials']);
      assertHidden('the SetNetworkProfile frame the station received', cp.wire.in, scan);

      // The charger restored exactly the original secrets, from the provisioning service.
      assert.equal(applied.length, 1);
      assert.deepEqual(applied[0]!.payload, original);
      const vpn = (applied[0]!.payload.connectionData as Record<string, any>).vpn;
      assert.deepEqual([vpn.key, vpn.password], [secrets.vpnKey, secrets.vpnPassword]);
      assert.deepEqual(
        applied[0]!.restored.map((x) => [x.pointer, x.from, x.role, x.kind]),
        ['/connectionData/apn/apnPassword', '/connectionData/apn/simPin', '/connectionData/vpn/key', '/connectionData/vpn/password'].map((ptr) => [ptr, `prov-${tag}`, 'provisioning', 'credentials']),
      );
      // The charger's answer went out on its wire; the call left the mailbox.
      assert.deepEqual(JSON.parse(cp.wire.out.find((f) => f.startsWith(`[3,${JSON.stringify(got[0]!.id)}`))!), [3, got[0]!.id, { status: 'Accepted' }]);
      await waitFor(async () => (await gw.store.depth(station)) === 0, 'the station mailbox to drain');

      assertNoSecrets(DATA(), LOG(), scan);
    } finally {
      await cp.close();
      await pc.close();
    }
  });
}

// ---- 2. payment (2.0.1)

test('payment (2.0.1): the TransactionEvent payment data goes to the PSP; the built-in CSMS bills on the clear energy; the PSP answer reaches the charger as DataTransfer org.evseal envelope', async () => {
  const station = 'CP-PAY';
  const payment = { token: 'tok_4111-PAYTOKEN-8c1e77', session: 'adhoc-session-Rk29xQ', amountCents: 2350 };
  const pspSecret = 'AUTHCODE-psp-9d7Qw2xLk';
  const scan = [payment.token, payment.session, pspSecret];
  secretsOfGateway1.push(...scan);
  const cpId = await identity('charger', station);
  const psp = await identity('psp', 'psp-flows');

  const opened: ReturnType<Endpoint['open']>[] = [];
  const cp = await connectCharger(ocppUrl(), station, 'ocpp2.0.1', {
    bundle: cpId.bundle,
    setup: (rpc) =>
      rpc.handle('DataTransfer', async ({ params }: { params?: unknown }) => {
        const p = params as { vendorId: string; messageId?: string; data?: string };
        if (p.vendorId !== 'org.evseal') return { status: 'UnknownVendorId' };
        if (p.messageId !== 'envelope') return { status: 'Accepted' };
        try {
          opened.push(cpId.ep.open(p.data!));
          return { status: 'Accepted' };
        } catch (e) {
          return { status: 'Rejected', data: (e as { code?: string }).code ?? 'ERR' };
        }
      }),
  });
  const pc = await connectEndpoint(gw.url, psp.ep, psp.bundle);
  try {
    const started = '2026-06-01T09:00:00.000Z';
    const ended = '2026-06-01T09:45:00.000Z';
    const energy = (wh: number, ts: string) => [{ timestamp: ts, sampledValue: [{ value: wh, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } }] }];
    const startEvent = {
      eventType: 'Started',
      timestamp: started,
      triggerReason: 'Authorized',
      seqNo: 0,
      transactionInfo: { transactionId: 'tx-pay-1', chargingState: 'Charging', customData: { vendorId: 'org.evseal', payment } },
      idToken: { idToken: 'PSEUDO-pay-51c0', type: 'Central' },
      evse: { id: 1, connectorId: 1 },
      meterValue: energy(1000, started),
    };
    const resolve = (to: RecipientRef) => ('role' in to && to.role === 'psp' ? 'psp-flows' : null);
    const p = protect({ version: '2.0.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: startEvent }, { policy, seal: sealAs(cpId.ep, () => psp.bundle), resolve });
    assert.deepEqual(p.sealed, [{ to: 'psp-flows', kind: 'payment', pointers: ['/transactionInfo/customData/payment'] }]);
    validate('2.0.1', 'TransactionEvent', 'request', p.payload);

    // The gateway routes the envelope to the PSP durably, then the built-in CSMS answers.
    const ans = await cp.rpc.call('TransactionEvent', p.payload);
    assert.deepEqual(ans, { idTokenInfo: { status: 'Accepted' } });
    // A retry after a lost answer is answered again; the envelope is queued once.
    assert.deepEqual(await cp.rpc.call('TransactionEvent', p.payload), { idTokenInfo: { status: 'Accepted' } });
    // Sealed fields the gateway cannot route are refused with a CALLERROR before the CSMS acts on the call:
    // here an envelope sealed by another charger (a station only sends as itself).
    const other = await identity('charger', 'CP-NET201');
    const forged = protect(
      { version: '2.0.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: { ...startEvent, transactionInfo: { ...startEvent.transactionInfo, transactionId: 'tx-pay-forged' } } },
      { policy, seal: sealAs(other.ep, () => psp.bundle), resolve },
    );
    const denied = await refusedTotal(gw, 'ERR_POLICY_DENIED');
    await assert.rejects(cp.rpc.call('TransactionEvent', forged.payload), (e: { rpcErrorCode?: string; message: string }) => e.rpcErrorCode === 'GenericError' && /sealed fields not accepted: ERR_POLICY_DENIED/.test(e.message));
    assert.equal(await refusedTotal(gw, 'ERR_POLICY_DENIED'), denied + 1, 'the refusal is counted once');
    assert.deepEqual(await cp.rpc.call('TransactionEvent', { eventType: 'Ended', timestamp: ended, triggerReason: 'StopAuthorized', seqNo: 1, transactionInfo: { transactionId: 'tx-pay-1', stoppedReason: 'Local' }, meterValue: energy(8500, ended) }), {});

    // What the CSMS saw: the frame as sent (no payment data), and the state it keeps: clear energy, times, token.
    const sent = calls(cp.wire.out, 'TransactionEvent');
    assert.deepEqual(sent[0]!.params, p.payload);
    assert.deepEqual(Object.keys((sent[0]!.params.transactionInfo as any).customData), ['vendorId', 'sealed']);
    assertHidden('the TransactionEvent frames the CSMS received', sent.map((s) => s.raw), scan);
    const state = (await gw.store.getStationState(station)) as { transactions: Record<string, any> };
    assert.deepEqual(Object.keys(state.transactions), ['tx-pay-1'], 'the refused call changed nothing');
    assert.deepEqual(state.transactions['tx-pay-1'], { id: 'tx-pay-1', state: 'ended', started, evse: 1, connector: 1, idTag: 'PSEUDO-pay-51c0', seqNo: 1, meterStart: 1000, lastMeter: 8500, stopped: ended, meterStop: 8500, stopReason: 'Local' });
    assertHidden('the station state', [JSON.stringify(state)], scan);

    // What the PSP got: the envelope alone, which it opens with openFields.
    const d = await nextDelivery(pc, (x) => x.format === 'envelope' && x.from === station, 'the payment envelope at the PSP');
    assert.equal(d.kind, 'payment');
    assert.equal(d.body, extractEnvelopes(p.payload)[0], 'the envelope is routed as the charger sealed it');
    const f = openFields(d.body, { open: openAs(psp.ep), me: 'psp-flows' });
    assert.deepEqual([f.ocpp, f.action, f.message, f.kind, f.sender.id, f.sender.role, f.ref], ['2.0.1', 'TransactionEvent', 'request', 'payment', station, 'charger', p.ref]);
    assert.deepEqual(f.fields, { '/transactionInfo/customData/payment': payment });
    assert.deepEqual(f.context, { '/eventType': 'Started', '/seqNo': 0, '/timestamp': started, '/transactionInfo/transactionId': 'tx-pay-1' });
    assert.equal(f.ref, bindingRef('2.0.1', 'TransactionEvent', 'request', sent[0]!.params as never), 'bound to the message the CSMS received');
    await pc.gc.ack(d.seq);
    assert.equal(pc.inbox.filter((x) => x.from === station).length, 1, 'one envelope despite the retry; none from the refused call');
    assert.equal(await gw.store.depth('psp-flows'), 0, 'nothing else queued for the PSP');

    // The PSP answers with a standalone sealed envelope (kind payment); the charger receives it as DataTransfer and opens it.
    const reply = { transactionId: 'tx-pay-1', status: 'captured', authCode: pspSecret, amountCents: 2350 };
    const env = psp.ep.seal((await pc.gc.getBundle(station))!, enc.encode(JSON.stringify(reply)), { kind: 'payment' });
    assert.ok((await pc.gc.sendEnvelope(env)).receipt);
    await waitFor(() => opened.length === 1, 'the charger to open the PSP reply');
    assert.deepEqual(JSON.parse(dec.decode(opened[0]!.plaintext)), reply);
    assert.deepEqual([opened[0]!.sender.id, opened[0]!.sender.role, opened[0]!.header.kind], ['psp-flows', 'psp', 'payment']);
    const dt = calls(cp.wire.in, 'DataTransfer');
    assert.deepEqual(dt.map((c) => c.params), [{ vendorId: 'org.evseal', messageId: 'envelope', data: env }]);
    await waitFor(async () => (await gw.store.depth(station)) === 0, 'the charger\'s Accepted to remove the reply');

    assertNoSecrets(DATA(), LOG(), scan);
  } finally {
    await cp.close();
    await pc.close();
  }
});

// ---- 3. fleet data minimization

test('fleet data (2.1): TransactionEvent driver/vehicle ids and SoC go to the fleet; the CSMS keeps the pseudonymous token, energy and times; OCMF stays clear', async () => {
  const station = 'CP-FLEET21';
  const tx = { payment: null, driverId: 'DRIVER-Jane-Doe-0042', vin: 'WVWZZZ1JZXW000042', soc: 63.918274 };
  const scan = [tx.driverId, tx.vin, String(tx.soc)];
  secretsOfGateway1.push(...scan);
  const cpId = await identity('charger', station);
  const fleet = await identity('fleet', 'fleet-flows');
  const original = transactionEvent('2.1', tx) as Record<string, any>;
  delete original.transactionInfo.customData; // no payment in this flow
  const ocmf = structuredClone(original.meterValue[0].sampledValue[0]);

  const cp = await connectCharger(ocppUrl(), station, 'ocpp2.1', { bundle: cpId.bundle });
  const fc = await connectEndpoint(gw.url, fleet.ep, fleet.bundle);
  try {
    const resolve = (to: RecipientRef) => ('role' in to && to.role === 'fleet' ? 'fleet-flows' : null);
    const p = protect({ version: '2.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: original }, { policy, seal: sealAs(cpId.ep, () => fleet.bundle), resolve });
    assert.deepEqual(p.sealed.map((s) => [s.to, s.kind]), [['fleet-flows', 'fleet-data']], 'ids and SoC: one envelope');
    assert.deepEqual(await cp.rpc.call('TransactionEvent', p.payload), { idTokenInfo: { status: 'Accepted' } });

    // The frame the CSMS received: placeholders, clear types, clear OCMF reading.
    const sent = calls(cp.wire.out, 'TransactionEvent')[0]!;
    assert.deepEqual(sent.params, p.payload);
    validate('2.1', 'TransactionEvent', 'request', sent.params);
    const sp = sent.params as Record<string, any>;
    assert.deepEqual(sp.idToken.additionalInfo.map((a: { additionalIdToken: string; type: string }) => [a.additionalIdToken, a.type]), [[PLACEHOLDER_STRING, 'DriverId'], [PLACEHOLDER_STRING, 'VIN']]);
    assert.equal(sp.idToken.idToken, 'PSEUDO-7f3a9c');
    assert.equal(sp.meterValue[0].sampledValue[1].value, 0, 'SoC placeholder');
    assert.equal(sp.meterValue[0].sampledValue[1].measurand, 'SoC');
    assert.deepEqual(sp.meterValue[0].sampledValue[0], ocmf, 'the signed (OCMF) energy reading is untouched');
    assert.ok(sent.raw.includes(JSON.stringify(ocmf.signedMeterValue)), 'OCMF travels clear, byte for byte');
    assertHidden('the TransactionEvent frame the CSMS received', [sent.raw], scan);

    // The CSMS state: the pseudonymous token, the energy, the times; nothing of the fleet's.
    const state = (await gw.store.getStationState(station)) as { transactions: Record<string, any> };
    assert.deepEqual(state.transactions['tx-0001'], { id: 'tx-0001', state: 'active', started: '2026-06-01T10:00:00.000Z', evse: 1, connector: 1, idTag: 'PSEUDO-7f3a9c', seqNo: 4, meterStart: 12345.5, lastMeter: 12345.5 });
    assertHidden('the station state', [JSON.stringify(state)], scan);

    // The fleet gets the ids and the SoC, with the transaction context, bound to the message.
    const d = await nextDelivery(fc, (x) => x.from === station, 'the fleet envelope');
    assert.deepEqual([d.format, d.kind], ['envelope', 'fleet-data']);
    const f = openFields(d.body, { open: openAs(fleet.ep), me: 'fleet-flows' });
    assert.deepEqual(f.fields, { '/idToken/additionalInfo/0/additionalIdToken': tx.driverId, '/idToken/additionalInfo/1/additionalIdToken': tx.vin, '/meterValue/0/sampledValue/1/value': tx.soc });
    assert.deepEqual(f.context, { '/eventType': 'Updated', '/meterValue/0/timestamp': '2026-06-01T10:00:00.000Z', '/seqNo': 4, '/timestamp': '2026-06-01T10:00:00.000Z', '/transactionInfo/transactionId': 'tx-0001' });
    assert.deepEqual([f.ocpp, f.action, f.kind, f.sender.id, f.ref], ['2.1', 'TransactionEvent', 'fleet-data', station, bindingRef('2.1', 'TransactionEvent', 'request', sent.params as never)]);
    await fc.gc.ack(d.seq);

    assertNoSecrets(DATA(), LOG(), scan);
  } finally {
    await cp.close();
    await fc.close();
  }
});

test('fleet data (1.6): MeterValues and StopTransaction SoC travel in the side DataTransfer sealed-fields to the fleet; the CSMS keeps token, energy and times; SignedData stays clear', async () => {
  const station = 'CP-FLEET16';
  const soc = { meter: '71.402918', stop: '88.130472' };
  const scan = [soc.meter, soc.stop];
  secretsOfGateway1.push(...scan);
  const cpId = await identity('charger', station);
  const fleet = await identity('fleet', 'fleet-flows');
  const cp = await connectCharger(ocppUrl(), station, 'ocpp1.6', { bundle: cpId.bundle });
  const fc = await connectEndpoint(gw.url, fleet.ep, fleet.bundle);
  try {
    const start = (await cp.rpc.call('StartTransaction', { connectorId: 1, idTag: 'PSEUDO-16-a1b2', meterStart: 10000, timestamp: '2026-06-01T10:00:00Z' })) as { transactionId: number };
    const txId = start.transactionId;
    const resolve = (to: RecipientRef) => ('role' in to && to.role === 'fleet' ? 'fleet-flows' : null);
    const seal = sealAs(cpId.ep, () => fleet.bundle);

    const mv = { ...meterValues16(soc.meter), transactionId: txId } as Record<string, any>;
    const signed = structuredClone(mv.meterValue[0].sampledValue[2]);
    const pm = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: mv }, { policy, seal, resolve });
    assert.ok(pm.side);
    // The side DataTransfer first, then the message with placeholders.
    assert.deepEqual(await cp.rpc.call('DataTransfer', pm.side), { status: 'Accepted' });
    assert.deepEqual(await cp.rpc.call('MeterValues', pm.payload), {});

    const st = { ...stopTransaction16(soc.stop), transactionId: txId, idTag: 'PSEUDO-16-a1b2' };
    const ps = protect({ version: '1.6', action: 'StopTransaction', message: 'request', from: 'station', payload: st }, { policy, seal, resolve });
    assert.ok(ps.side);
    assert.deepEqual(await cp.rpc.call('DataTransfer', ps.side), { status: 'Accepted' });
    assert.deepEqual(await cp.rpc.call('StopTransaction', ps.payload), { idTagInfo: { status: 'Accepted' } });

    // What the CSMS received: each side message right before its message, the placeholders, the clear signed reading.
    const out = calls(cp.wire.out).filter((c) => c.action !== 'BootNotification' && !(c.action === 'DataTransfer' && c.params.messageId === 'publish-bundle'));
    assert.deepEqual(out.map((c) => [c.action, c.params.messageId ?? null]), [['StartTransaction', null], ['DataTransfer', 'sealed-fields'], ['MeterValues', null], ['DataTransfer', 'sealed-fields'], ['StopTransaction', null]]);
    assert.deepEqual([out[1]!.params, out[2]!.params, out[3]!.params, out[4]!.params], [pm.side, pm.payload, ps.side, ps.payload]);
    const sv = (out[2]!.params as any).meterValue[0].sampledValue;
    assert.deepEqual([sv[0].value, sv[1].value, sv[1].measurand], ['12345', PLACEHOLDER_STRING, 'SoC']);
    assert.deepEqual(sv[2], signed, 'the SignedData (OCMF) reading is untouched');
    assert.equal((out[4]!.params as any).transactionData[0].sampledValue[0].value, PLACEHOLDER_STRING);
    assertHidden('the frames the CSMS received', out.map((c) => c.raw), scan);

    const state = (await gw.store.getStationState(station)) as { transactions: Record<string, any> };
    assert.deepEqual(state.transactions[String(txId)], { id: String(txId), state: 'ended', idTag: 'PSEUDO-16-a1b2', connector: 1, meterStart: 10000, started: '2026-06-01T10:00:00Z', lastMeter: 12345, meterStop: 23456, stopped: '2026-06-01T11:00:00Z', stopReason: 'EVDisconnected' });
    assertHidden('the station state', [JSON.stringify(state)], scan);

    // The fleet gets both envelopes, in order, and opens each with its context.
    await waitFor(() => fc.inbox.filter((x) => x.from === station).length === 2, 'two fleet envelopes');
    const [d1, d2] = fc.inbox.filter((x) => x.from === station);
    const f1 = openFields(d1!.body, { open: openAs(fleet.ep), me: 'fleet-flows' });
    assert.deepEqual([f1.ocpp, f1.action, f1.kind, f1.ref], ['1.6', 'MeterValues', 'fleet-data', bindingRef('1.6', 'MeterValues', 'request', out[2]!.params as never)]);
    assert.deepEqual(f1.fields, { '/meterValue/0/sampledValue/1/value': soc.meter });
    assert.deepEqual(f1.context, { '/connectorId': 1, '/meterValue/0/timestamp': '2026-06-01T10:00:00Z', '/transactionId': txId });
    const f2 = openFields(d2!.body, { open: openAs(fleet.ep), me: 'fleet-flows' });
    assert.deepEqual([f2.action, f2.ref], ['StopTransaction', bindingRef('1.6', 'StopTransaction', 'request', out[4]!.params as never)]);
    assert.deepEqual(f2.fields, { '/transactionData/0/sampledValue/0/value': soc.stop });
    assert.deepEqual(f2.context, { '/transactionData/0/timestamp': '2026-06-01T11:00:00Z', '/transactionId': txId });
    await fc.gc.ack(d1!.seq, d2!.seq);
    assert.equal(await gw.store.depth('fleet-flows'), 0);

    // A side message whose envelope another station sealed is Rejected with the error code, and routes nothing.
    const other = await identity('charger', 'CP-NET21');
    const forged = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: { ...meterValues16('12.345678'), transactionId: txId } }, { policy, seal: sealAs(other.ep, () => fleet.bundle), resolve });
    const denied = await refusedTotal(gw, 'ERR_POLICY_DENIED');
    assert.deepEqual(await cp.rpc.call('DataTransfer', forged.side), { status: 'Rejected', data: 'ERR_POLICY_DENIED' });
    assert.equal(await gw.store.depth('fleet-flows'), 0);
    assert.equal(await refusedTotal(gw, 'ERR_POLICY_DENIED'), denied + 1, 'counted once');
    // ... and one sealed to a recipient the gateway does not know (refused by the router) is Rejected and counted once too.
    const nobody = await identity('fleet', 'fleet-nobody');
    const lost = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: { ...meterValues16('23.456789'), transactionId: txId } }, { policy, seal: sealAs(cpId.ep, () => nobody.bundle), resolve: () => 'fleet-nobody' });
    const notFound = await refusedTotal(gw, 'ERR_NOT_FOUND');
    assert.deepEqual(await cp.rpc.call('DataTransfer', lost.side), { status: 'Rejected', data: 'ERR_NOT_FOUND' });
    assert.equal(await refusedTotal(gw, 'ERR_NOT_FOUND'), notFound + 1, 'counted once');

    assertNoSecrets(DATA(), LOG(), scan);
  } finally {
    await cp.close();
    await fc.close();
  }
});

// ---- 4. proxy mode

test('proxy mode: the upstream CSMS gets the evseal charger\'s TransactionEvent byte for byte (customData it cannot read) after the envelope is durable; the PSP opens it; an ordinary charger is unaffected', async () => {
  const dataDir = w.path('data-proxy');
  const logFile = w.path('gateway-proxy.log');
  let gw2: RunningGateway | undefined;
  const depthAtForward: Promise<number>[] = [];
  const up = await fakeUpstream({ onCall: (station, action) => action === 'TransactionEvent' && station === 'CP-PX' && depthAtForward.push(gw2!.store.depth('psp-flows')) });
  gw2 = await startGateway({ port: 0, dataDir, trust: w.trust(ca), crlFiles: crls, upstream: up.url, log: fileLog(logFile) });
  const payment = { token: 'tok_5500-PROXYTOKEN-3f9a', session: 'adhoc-proxy-Vn41sT' };
  const scan = [payment.token, payment.session];
  const url = `${gw2.url}/ocpp`;
  let plain: Awaited<ReturnType<typeof connectCharger>> | undefined;
  let cp: Awaited<ReturnType<typeof connectCharger>> | undefined;
  let pc: Awaited<ReturnType<typeof connectEndpoint>> | undefined;
  try {
    for (const id of ['CP-PLAIN', 'CP-PX']) await addStation(gw2.store, { id, password: PASSWORD }, Date.now());
    const cpId = await identity('charger', 'CP-PX');
    const psp = await identity('psp', 'psp-flows');
    // The PSP is known to this gateway (it published its bundle) but not connected yet.
    const pre = await connectEndpoint(gw2.url, psp.ep, psp.bundle);
    await pre.close();

    // An ordinary charger, no evseal anywhere, and an evseal charger on the same gateway.
    plain = await connectCharger(url, 'CP-PLAIN', 'ocpp2.0.1');
    cp = await connectCharger(url, 'CP-PX', 'ocpp2.0.1', { bundle: cpId.bundle });
    assert.ok(Date.parse(((await plain.rpc.call('Heartbeat', {})) as { currentTime: string }).currentTime) > 0);

    const event = {
      eventType: 'Started',
      timestamp: '2026-06-01T12:00:00.000Z',
      triggerReason: 'Authorized',
      seqNo: 0,
      transactionInfo: { transactionId: 'tx-px-1', customData: { vendorId: 'org.evseal', payment } },
      idToken: { idToken: 'PSEUDO-px-77aa', type: 'Central' },
      evse: { id: 1, connectorId: 1 },
      meterValue: [{ timestamp: '2026-06-01T12:00:00.000Z', sampledValue: [{ value: 500, measurand: 'Energy.Active.Import.Register' }] }],
    };
    const resolve = (to: RecipientRef) => ('role' in to && to.role === 'psp' ? 'psp-flows' : null);
    const p = protect({ version: '2.0.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: event }, { policy, seal: sealAs(cpId.ep, () => psp.bundle), resolve });
    assert.deepEqual(await cp.rpc.call('TransactionEvent', p.payload), { idTokenInfo: { status: 'Accepted' } }, 'the upstream answered');
    assert.ok(Date.parse(((await plain.rpc.call('Heartbeat', {})) as { currentTime: string }).currentTime) > 0);
    // Sealed fields the gateway refuses (sealed by another charger) keep the call from the upstream: CALLERROR, nothing forwarded.
    const other = await identity('charger', 'CP-FLEET21');
    const forged = protect({ version: '2.0.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: { ...event, seqNo: 1 } }, { policy, seal: sealAs(other.ep, () => psp.bundle), resolve });
    await assert.rejects(cp.rpc.call('TransactionEvent', forged.payload), (e: { rpcErrorCode?: string; message: string }) => e.rpcErrorCode === 'GenericError' && /ERR_POLICY_DENIED/.test(e.message));
    const forgedId = calls(cp.wire.out, 'TransactionEvent')[1]!.id;

    // The upstream got the evseal charger's frames byte for byte, minus the org.evseal DataTransfer (answered by the gateway).
    const fromCp = up.received.filter((f) => f.station === 'CP-PX');
    const cpOut = cp.wire.out.filter((raw) => !raw.includes('"publish-bundle"') && !raw.includes(JSON.stringify(forgedId)));
    assert.deepEqual(calls(cpOut).map((c) => c.action), ['BootNotification', 'TransactionEvent']);
    assert.equal(fromCp.length, cpOut.length);
    fromCp.forEach((f, i) => {
      assert.ok(f.data.equals(Buffer.from(cpOut[i]!, 'utf8')), `frame ${i} byte for byte`);
      assert.equal(f.binary, false);
    });
    const te = JSON.parse(fromCp[1]!.data.toString('utf8')) as [number, string, string, Record<string, any>];
    assert.equal(te[3].transactionInfo.customData.vendorId, 'org.evseal', 'the customData reaches the upstream');
    assert.deepEqual(te[3], p.payload);
    assertHidden('what the upstream received', up.received.map((f) => f.data), scan);
    assert.deepEqual(await Promise.all(depthAtForward), [1], 'the envelope was durable at the gateway when the upstream got the call (and the refused call never got there)');
    assert.ok(!up.received.some((f) => f.data.toString('utf8').includes(JSON.stringify(forgedId))), 'the refused call was not forwarded');
    assert.deepEqual([up.protocols.get('CP-PX'), up.protocols.get('CP-PLAIN')], ['ocpp2.0.1', 'ocpp2.0.1']);

    // The ordinary charger: its frames reached the upstream unchanged, and only the upstream's answers came back.
    const fromPlain = up.received.filter((f) => f.station === 'CP-PLAIN').map((f) => f.data.toString('utf8'));
    assert.deepEqual(fromPlain, plain.wire.out);
    assert.deepEqual(calls(plain.wire.out).map((c) => c.action), ['BootNotification', 'Heartbeat', 'Heartbeat']);
    assert.equal(plain.wire.in.length, 3);
    assert.ok(plain.wire.in.every((f) => (JSON.parse(f) as unknown[])[0] === 3), 'no evseal call reached the ordinary charger');

    // The PSP connects and gets the envelope through the gateway.
    pc = await connectEndpoint(gw2.url, psp.ep, psp.bundle);
    const d = await nextDelivery(pc, (x) => x.from === 'CP-PX', 'the payment envelope at the PSP');
    assert.deepEqual([d.format, d.kind], ['envelope', 'payment']);
    const f = openFields(d.body, { open: openAs(psp.ep), me: 'psp-flows' });
    assert.deepEqual(f.fields, { '/transactionInfo/customData/payment': payment });
    assert.equal(f.ref, bindingRef('2.0.1', 'TransactionEvent', 'request', te[3] as never), 'bound to what the upstream received');
    await pc.gc.ack(d.seq);
    assert.equal(await gw2.store.getStationState('CP-PX'), undefined, 'proxy mode: the upstream is the CSMS, the gateway keeps no OCPP state');

    assertNoSecrets(dataDir, logFile, scan);
  } finally {
    await cp?.close();
    await plain?.close();
    await pc?.close();
    await gw2.close();
    await up.close();
  }
  // After shutdown (the WAL checkpointed into the db) there is still no secret.
  assertNoSecrets(dataDir, logFile, scan, { mustHaveWal: false });
});

// ---- after shutdown

test('after the gateway shuts down (WAL checkpointed), no secret of flows 1-3 is in its files; the planted canaries still are', async () => {
  assert.ok(secretsOfGateway1.length >= 13, `secrets collected: ${secretsOfGateway1.length}`);
  await gw.close();
  const files = gatewayFiles(DATA(), LOG());
  assert.deepEqual(findSecrets(files, secretsOfGateway1), []);
  assert.ok(findSecrets(files.filter((f) => f.name.startsWith(DATA())), ['canary-raw-Hq2Lp9xV', 'canary-hex-Tb7Rk1mZ', 'canary-b64-Yc5Nw3sQ', 'canary-b64u-Jd8Vf6oP']).length >= 4, 'positive control after shutdown');
});
