// The real gateway (startGateway: real router, SQLite store, audit log) with
// chargers we did not write: ocpp-rpc's RPCClient in strict mode on 1.6,
// 2.0.1 and 2.1, and the sim charger exchanging sealed messages with an
// endpoint both ways through the OCPP carriers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';
import { GatewayClient, type Delivery } from '../../src/client/gateway-client.js';
import { runSimCharger, type SimEvent } from '../../src/sim/charger.js';
import { ocppClient, PASSWORD, boot } from './helpers/ocpp-clients.js';
import type { OcppProtocol } from '../../src/gateway/ocpp/validators.js';
import { initIdentity } from '../../src/keystore/identity-dir.js';
import { signCsrWithCaDir } from '../../src/keystore/ca-dir.js';

const w = new World();
w.now = Date.now();
let ca = '';
let gw: RunningGateway;
const ocppUrl = () => `${gw.url}/ocpp`;

before(async () => {
  ca = await w.ca('ca');
  gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [join(ca, 'crl.pem')], caService: 'ca-svc', log: pino({ level: 'silent' }) });
  for (const id of ['CP-16', 'CP-201', 'CP-21', 'CP-SIM']) await addStation(gw.store, { id, password: PASSWORD }, Date.now());
});
after(async () => {
  await gw.close();
  w.cleanup();
});

const transact: Record<OcppProtocol, (cp: ReturnType<typeof ocppClient>) => Promise<void>> = {
  'ocpp1.6': async (cp) => {
    assert.equal(((await cp.call('Authorize', { idTag: 'TOKEN-1' })) as { idTagInfo: { status: string } }).idTagInfo.status, 'Accepted');
    const start = (await cp.call('StartTransaction', { connectorId: 1, idTag: 'TOKEN-1', meterStart: 1000, timestamp: new Date().toISOString() })) as { transactionId: number };
    assert.ok(Number.isInteger(start.transactionId));
    await cp.call('MeterValues', { connectorId: 1, transactionId: start.transactionId, meterValue: [{ timestamp: new Date().toISOString(), sampledValue: [{ value: '1500' }] }] });
    await cp.call('StopTransaction', { transactionId: start.transactionId, meterStop: 2000, timestamp: new Date().toISOString() });
  },
  'ocpp2.0.1': async (cp) => transact2(cp),
  'ocpp2.1': async (cp) => transact2(cp),
};

async function transact2(cp: ReturnType<typeof ocppClient>): Promise<void> {
  const auth = (await cp.call('Authorize', { idToken: { idToken: 'TOKEN-1', type: 'ISO14443' } })) as { idTokenInfo: { status: string } };
  assert.equal(auth.idTokenInfo.status, 'Accepted');
  const base = { timestamp: new Date().toISOString(), seqNo: 0, transactionInfo: { transactionId: 'tx-1' } };
  await cp.call('TransactionEvent', { ...base, eventType: 'Started', triggerReason: 'Authorized', idToken: { idToken: 'TOKEN-1', type: 'ISO14443' }, evse: { id: 1, connectorId: 1 } });
  await cp.call('TransactionEvent', { ...base, seqNo: 1, eventType: 'Updated', triggerReason: 'MeterValuePeriodic', meterValue: [{ timestamp: new Date().toISOString(), sampledValue: [{ value: 1500 }] }] });
  await cp.call('TransactionEvent', { ...base, seqNo: 2, eventType: 'Ended', triggerReason: 'StopAuthorized', transactionInfo: { transactionId: 'tx-1', stoppedReason: 'Local' } });
}

for (const [protocol, id] of [['ocpp1.6', 'CP-16'], ['ocpp2.0.1', 'CP-201'], ['ocpp2.1', 'CP-21']] as const) {
  test(`RPCClient (strict, ${protocol}) boots, heartbeats and transacts against the real gateway`, async () => {
    const cp = ocppClient({ url: ocppUrl() }, id, protocol);
    await cp.connect();
    try {
      await boot(cp, protocol);
      assert.ok(Date.parse(((await cp.call('Heartbeat', {})) as { currentTime: string }).currentTime) > 0);
      await transact[protocol](cp);
      const state = await gw.store.getStationState(id);
      assert.ok(state, 'the built-in CSMS keeps station state');
    } finally {
      await cp.close({ code: 1000 });
    }
    // A wrong password is refused at the upgrade.
    const bad = ocppClient({ url: ocppUrl() }, id, protocol, { password: 'wrong password, sixteen+' });
    await assert.rejects(bad.connect());
  });
}

test('sealed messages flow endpoint -> charger (DataTransfer) -> endpoint through the real gateway', async () => {
  const cpDir = await w.identity(ca, 'charger', 'CP-SIM');
  const provDir = await w.identity(ca, 'provisioning', 'prov-e2e');
  const crl = [join(ca, 'crl.pem')];
  const prov = w.endpoint(provDir, w.trust(ca), crl);
  const cp = w.endpoint(cpDir, w.trust(ca), crl);
  const inbox: Delivery[] = [];
  const pc = await GatewayClient.connect(gw.url, { chain: prov.id.chain, privateKey: prov.id.privateKey, onMessage: (d) => inbox.push(d) });
  await pc.publishBundle(w.bundle(provDir));

  // The charger boots once (publishing its bundle), then the provisioning service seals to it.
  const events: SimEvent[] = [];
  const abort = new AbortController();
  const sim = runSimCharger({ endpoint: cp, gateway: ocppUrl(), password: PASSWORD, protocol: 'ocpp2.0.1', count: 1, outDir: w.path('sim-out'), onEvent: (e) => events.push(e) }, abort.signal);
  setTimeout(() => abort.abort(), 15_000).unref();
  const deadline = Date.now() + 5000;
  while ((await gw.store.getBundle('CP-SIM')) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const bundle = await pc.getBundle('CP-SIM');
  assert.ok(bundle, 'the charger published its bundle over OCPP');
  const r = await pc.sendEnvelope(prov.seal(bundle, new TextEncoder().encode('wifi: psk=hunter2'), { kind: 'config' }));
  assert.ok(r.receipt);
  assert.deepEqual(await sim, { opened: 1 });
  assert.ok(events.some((e) => e.type === 'opened' && e.kind === 'config'));
  assert.ok(events.some((e) => e.type === 'replied'), JSON.stringify(events));

  // The charger's sealed reply comes back to the endpoint and opens there.
  while (inbox.length === 0 && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
  const reply = prov.open(inbox[0]!.body);
  assert.equal(reply.sender.id, 'CP-SIM');
  assert.equal(JSON.parse(new TextDecoder().decode(reply.plaintext)).received, 'wifi: psk=hunter2'.length);
  await pc.ack(inbox[0]!.seq);
  assert.equal(await gw.store.depth('CP-SIM'), 0, 'the charger\'s Accepted removed the message');
  await pc.close();
});

test('an endpoint has the gateway make an OCPP call to a station; the answer comes back; a schema-invalid call is dead-lettered', async () => {
  const provDir = await w.identity(ca, 'provisioning', 'prov-call');
  const prov = w.endpoint(provDir, w.trust(ca), [join(ca, 'crl.pem')]);
  const inbox: Delivery[] = [];
  const notices: { type: string; id: string }[] = [];
  const pc = await GatewayClient.connect(gw.url, { chain: prov.id.chain, privateKey: prov.id.privateKey, onMessage: (d) => inbox.push(d), onNotice: (n) => notices.push(n) });
  await pc.publishBundle(w.bundle(provDir));
  const cp = ocppClient({ url: ocppUrl() }, 'CP-201', 'ocpp2.0.1');
  const seen: unknown[] = [];
  cp.handle('SetNetworkProfile', async ({ params }: { params?: unknown }) => {
    seen.push(params);
    return { status: 'Accepted' };
  });
  await cp.connect();
  try {
    await boot(cp, 'ocpp2.0.1');
    const payload = {
      configurationSlot: 1,
      connectionData: { messageTimeout: 30, ocppCsmsUrl: 'wss://csms.example/ocpp', ocppInterface: 'Wired0', ocppTransport: 'JSON', ocppVersion: 'OCPP20', securityProfile: 2 },
    };
    await pc.sendOcppCall({ to: 'CP-201', kind: 'credentials', id: 'call-1', expires: Date.now() + 60_000, action: 'SetNetworkProfile', payload });
    const deadline = Date.now() + 5000;
    while (inbox.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, [payload]);
    assert.equal(inbox[0]!.format, 'ocpp-result');
    assert.deepEqual(JSON.parse(inbox[0]!.body), { action: 'SetNetworkProfile', inReplyTo: 'call-1', result: { status: 'Accepted' } });
    await pc.ack(inbox[0]!.seq);
    // Not schema-valid for the station's protocol: never reaches it, ends in the dead-letter store.
    await pc.sendOcppCall({ to: 'CP-201', kind: 'credentials', id: 'call-2', expires: Date.now() + 60_000, action: 'SetNetworkProfile', payload: { configurationSlot: 'one' } });
    while (!notices.some((n) => n.id === 'call-2') && Date.now() < deadline + 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(notices.find((n) => n.id === 'call-2')?.type, 'dead-letter');
    assert.equal(seen.length, 1);
    // A role the policy does not allow to send credentials to a charger is refused at submission.
    await assert.rejects(pc.sendOcppCall({ to: 'CP-201', kind: 'payment', id: 'call-3', expires: Date.now() + 60_000, action: 'Reset', payload: { type: 'Immediate' } }), { code: 'ERR_POLICY_DENIED' });
    // A kind the role may send bounds the actions: credentials do not carry a root certificate or a reset.
    for (const [action, payload] of [['InstallCertificate', { certificateType: 'CSMSRootCertificate', certificate: 'x' }], ['Reset', { type: 'Immediate' }], ['CertificateSigned', { certificateChain: 'x' }]] as const) {
      await assert.rejects(pc.sendOcppCall({ to: 'CP-201', kind: 'credentials', id: `call-${action}`, expires: Date.now() + 60_000, action, payload }), { code: 'ERR_POLICY_DENIED' }, action);
    }
    assert.equal(seen.length, 1);
  } finally {
    await cp.close({ code: 1000 });
    await pc.close();
  }
});

test('SignCertificate goes to the CA service endpoint, which signs; the gateway only carries the chain back as CertificateSigned', async () => {
  const svcDir = await w.identity(ca, 'provisioning', 'ca-svc');
  const svc = w.endpoint(svcDir, w.trust(ca), [join(ca, 'crl.pem')]);
  const csrs: Delivery[] = [];
  const sc = await GatewayClient.connect(gw.url, { chain: svc.id.chain, privateKey: svc.id.privateKey, onMessage: (d) => csrs.push(d) });
  await sc.publishBundle(w.bundle(svcDir));
  const cp = ocppClient({ url: ocppUrl() }, 'CP-21', 'ocpp2.1');
  const signed: { certificateChain?: string }[] = [];
  cp.handle('CertificateSigned', async ({ params }: { params?: unknown }) => {
    signed.push(params as { certificateChain?: string });
    return { status: 'Accepted' };
  });
  await cp.connect();
  try {
    await boot(cp, 'ocpp2.1');
    const { csrPem } = await initIdentity(w.path('new-cp21'), { role: 'charger', id: 'CP-21', operator: 'ChargeCo', plaintext: true });
    assert.equal(((await cp.call('SignCertificate', { csr: csrPem, certificateType: 'ChargingStationCertificate' })) as { status: string }).status, 'Accepted');
    const deadline = Date.now() + 5000;
    while (csrs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(csrs[0]!.format, 'ocpp-csr');
    const req = JSON.parse(csrs[0]!.body) as { csr: string; certificateType: string };
    assert.equal(req.csr, csrPem);
    const { certPem } = await signCsrWithCaDir(ca, req.csr, { now: new Date(Date.now() - 60_000) });
    await sc.sendOcppCert({ to: 'CP-21', id: 'cert-1', expires: Date.now() + 60_000, certificateChain: certPem, certificateType: req.certificateType });
    await sc.ack(csrs[0]!.seq);
    while (signed.length === 0 && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(signed[0]!.certificateChain, certPem);
    // Only the CA service's role may send certificates to a charger.
    const tool = w.endpoint(await w.identity(ca, 'service-tool', 'tool-cert'), w.trust(ca), [join(ca, 'crl.pem')]);
    const tc = await GatewayClient.connect(gw.url, { chain: tool.id.chain, privateKey: tool.id.privateKey });
    await assert.rejects(tc.sendOcppCert({ to: 'CP-21', id: 'cert-2', expires: Date.now() + 60_000, certificateChain: certPem }), { code: 'ERR_POLICY_DENIED' });
    await tc.close();
  } finally {
    await cp.close({ code: 1000 });
    await sc.close();
  }
});
