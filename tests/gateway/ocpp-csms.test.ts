// Real OCPP clients we did not write — ocpp-rpc's RPCClient in strict mode —
// boot, heartbeat, authorize and transact against the built-in CSMS on 1.6,
// 2.0.1 and 2.1; every response is schema-checked by the client, and the
// station state the CSMS keeps is checked in the store afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ocpp from 'ocpp-rpc';
import { ocppValidators } from '../../src/gateway/ocpp/validators.js';
import { ABANDONED, type StationState } from '../../src/gateway/ocpp/csms.js';
import { startGateway, until } from './helpers/ocpp-gateway.js';
import { PASSWORD, ocppClient } from './helpers/ocpp-clients.js';

const iso = () => new Date().toISOString();
const isIsoTime = (s: unknown) => typeof s === 'string' && !Number.isNaN(Date.parse(s));

test('normalised 2.1 schemas resolve in strict mode, where the bundled ones do not', () => {
  const bundled = new ocpp.RPCClient({ identity: 'x', protocols: ['ocpp2.1'], strictMode: true } as ConstructorParameters<typeof ocpp.RPCClient>[0]);
  const v = (bundled as unknown as { _strictValidators: Map<string, { validate(id: string, p: unknown): unknown }> })._strictValidators.get('ocpp2.1')!;
  assert.throws(() => v.validate('urn:Heartbeat.req', {}), /Schema 'urn:Heartbeat.req' is missing/);
  const ours = ocppValidators().find((x) => x.subprotocol === 'ocpp2.1')!;
  assert.equal(ours.validate('urn:Heartbeat.req', {}), true);
  assert.throws(() => ours.validate('urn:Heartbeat.conf', {}), /currentTime/);
});

test('OCPP 1.6: boot, heartbeat, status, authorize, start/meter/stop transaction, firmware and security events', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-16', { password: PASSWORD });
    const cp = ocppClient(gw, 'CP-16', 'ocpp1.6');
    await cp.connect();
    assert.equal(cp.protocol, 'ocpp1.6');

    const boot = (await cp.call('BootNotification', { chargePointVendor: 'Acme', chargePointModel: 'AC-22', chargePointSerialNumber: 'SN-1', firmwareVersion: '1.2.3' })) as Record<string, unknown>;
    assert.equal(boot.status, 'Accepted');
    assert.ok(Number.isInteger(boot.interval) && (boot.interval as number) > 0);
    assert.ok(isIsoTime(boot.currentTime));
    assert.ok(isIsoTime(((await cp.call('Heartbeat', {})) as { currentTime: string }).currentTime));
    assert.deepEqual(await cp.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Preparing', timestamp: iso() }), {});
    assert.deepEqual(await cp.call('Authorize', { idTag: 'TAG-1' }), { idTagInfo: { status: 'Accepted' } });

    const start = (await cp.call('StartTransaction', { connectorId: 1, idTag: 'TAG-1', meterStart: 1000, timestamp: iso() })) as { transactionId: number; idTagInfo: { status: string } };
    assert.ok(Number.isInteger(start.transactionId));
    assert.equal(start.idTagInfo.status, 'Accepted');
    const mv = { connectorId: 1, transactionId: start.transactionId, meterValue: [{ timestamp: iso(), sampledValue: [{ value: '1.75', unit: 'kWh', measurand: 'Energy.Active.Import.Register' }] }] };
    assert.deepEqual(await cp.call('MeterValues', mv), {});
    assert.deepEqual(await cp.call('StopTransaction', { transactionId: start.transactionId, meterStop: 2500, timestamp: iso(), idTag: 'TAG-1', reason: 'EVDisconnected' }), { idTagInfo: { status: 'Accepted' } });
    const second = (await cp.call('StartTransaction', { connectorId: 1, idTag: 'TAG-2', meterStart: 2500, timestamp: iso() })) as { transactionId: number };
    assert.notEqual(second.transactionId, start.transactionId);

    assert.deepEqual(await cp.call('FirmwareStatusNotification', { status: 'Downloading' }), {});
    assert.deepEqual(await cp.call('SignedFirmwareStatusNotification', { status: 'SignatureVerified', requestId: 7 }), {});
    assert.deepEqual(await cp.call('SecurityEventNotification', { type: 'FirmwareUpdated', timestamp: iso(), techInfo: 'v1.2.4' }), {});
    assert.deepEqual(await cp.call('DataTransfer', { vendorId: 'com.example', messageId: 'x', data: 'y' }), { status: 'UnknownVendorId' });
    // no CA service configured: the gateway never signs, so it can only refuse
    assert.deepEqual(await cp.call('SignCertificate', { csr: '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----' }), { status: 'Rejected' });
    await assert.rejects(cp.call('DiagnosticsStatusNotification', { status: 'Idle' }), (e: Error) => e instanceof ocpp.RPCNotImplementedError);
    await cp.close();

    const s = (await gw.store.getStationState('CP-16')) as unknown as StationState;
    assert.equal(s.protocol, 'ocpp1.6');
    assert.deepEqual({ ...s.boot, at: undefined }, { at: undefined, vendor: 'Acme', model: 'AC-22', serialNumber: 'SN-1', firmwareVersion: '1.2.3' });
    assert.ok(isIsoTime(s.lastHeartbeat));
    assert.equal(s.connectors['1']!.status, 'Preparing');
    const t = s.transactions[String(start.transactionId)]!;
    assert.deepEqual([t.state, t.idTag, t.meterStart, t.lastMeter, t.meterStop, t.stopReason], ['ended', 'TAG-1', 1000, 1750, 2500, 'EVDisconnected']);
    assert.equal(s.transactions[String(second.transactionId)]!.state, 'active');
    assert.deepEqual({ ...s.firmware, at: undefined }, { at: undefined, status: 'SignatureVerified', signed: true, requestId: 7 });
    assert.deepEqual(s.securityEvents.map((e) => [e.type, e.techInfo]), [['FirmwareUpdated', 'v1.2.4']]);
    assert.equal(s.certificate?.status, 'rejected');
    assert.ok((await gw.counter('ocppCalls', { protocol: 'ocpp1.6', action: 'StartTransaction' })) === 2);
  } finally {
    await gw.close();
  }
});

for (const protocol of ['ocpp2.0.1', 'ocpp2.1'] as const) {
  test(`OCPP ${protocol.slice(4)}: boot, heartbeat, status, authorize, TransactionEvent Started/Updated/Ended, firmware and security events`, async () => {
    const gw = await startGateway({ heartbeatIntervalSec: 60 });
    try {
      const id = `CP-${protocol}`;
      await gw.addStation(id, { password: PASSWORD });
      const cp = ocppClient(gw, id, protocol);
      await cp.connect();
      assert.equal(cp.protocol, protocol);

      const boot = (await cp.call('BootNotification', { reason: 'PowerUp', chargingStation: { vendorName: 'Acme', model: 'DC-150', serialNumber: 'SN-2', firmwareVersion: '2.0' } })) as Record<string, unknown>;
      assert.deepEqual([boot.status, boot.interval], ['Accepted', 60]);
      assert.ok(isIsoTime(boot.currentTime));
      assert.ok(isIsoTime(((await cp.call('Heartbeat', {})) as { currentTime: string }).currentTime));
      assert.deepEqual(await cp.call('StatusNotification', { timestamp: iso(), connectorStatus: 'Occupied', evseId: 1, connectorId: 1 }), {});
      assert.deepEqual(await cp.call('Authorize', { idToken: { idToken: 'TOKEN-9', type: 'ISO14443' } }), { idTokenInfo: { status: 'Accepted' } });

      const meter = (wh: number) => [{ timestamp: iso(), sampledValue: [{ value: wh, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } }] }];
      const tx = { transactionId: 'tx-0001' };
      const started = await cp.call('TransactionEvent', {
        eventType: 'Started', timestamp: iso(), triggerReason: 'Authorized', seqNo: 0, transactionInfo: { ...tx, chargingState: 'Charging' },
        evse: { id: 1, connectorId: 1 }, idToken: { idToken: 'TOKEN-9', type: 'ISO14443' }, meterValue: meter(1000),
      });
      assert.deepEqual(started, { idTokenInfo: { status: 'Accepted' } });
      assert.deepEqual(await cp.call('TransactionEvent', { eventType: 'Updated', timestamp: iso(), triggerReason: 'MeterValuePeriodic', seqNo: 1, transactionInfo: tx, meterValue: meter(1500) }), {});
      assert.deepEqual(await cp.call('MeterValues', { evseId: 1, meterValue: meter(1600) }), {});
      assert.deepEqual(await cp.call('TransactionEvent', { eventType: 'Ended', timestamp: iso(), triggerReason: 'EVCommunicationLost', seqNo: 2, transactionInfo: { ...tx, stoppedReason: 'EVDisconnected' }, meterValue: meter(2500) }), {});

      assert.deepEqual(await cp.call('FirmwareStatusNotification', { status: 'Installed', requestId: 3 }), {});
      assert.deepEqual(await cp.call('SecurityEventNotification', { type: 'TamperDetectionActivated', timestamp: iso() }), {});
      assert.deepEqual(await cp.call('DataTransfer', { vendorId: 'com.example' }), { status: 'UnknownVendorId' });
      assert.deepEqual(await cp.call('SignCertificate', { csr: 'MIIB', certificateType: 'ChargingStationCertificate' }), { status: 'Rejected' });
      await assert.rejects(cp.call('NotifyReport', { requestId: 1, generatedAt: iso(), seqNo: 0 }), (e: Error) => e instanceof ocpp.RPCNotImplementedError);
      await cp.close();

      const s = (await gw.store.getStationState(id)) as unknown as StationState;
      assert.equal(s.protocol, protocol);
      assert.deepEqual({ ...s.boot, at: undefined }, { at: undefined, reason: 'PowerUp', vendor: 'Acme', model: 'DC-150', serialNumber: 'SN-2', firmwareVersion: '2.0' });
      assert.ok(isIsoTime(s.lastHeartbeat));
      assert.equal(s.connectors['1/1']!.status, 'Occupied');
      const t = s.transactions['tx-0001']!;
      assert.deepEqual([t.state, t.idTag, t.evse, t.connector, t.meterStart, t.meterStop, t.seqNo, t.stopReason], ['ended', 'TOKEN-9', 1, 1, 1000, 2500, 2, 'EVDisconnected']);
      assert.deepEqual({ ...s.firmware, at: undefined }, { at: undefined, status: 'Installed', requestId: 3 });
      assert.deepEqual(s.securityEvents.map((e) => e.type), ['TamperDetectionActivated']);
    } finally {
      await gw.close();
    }
  });
}

test('station state survives a reconnect', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-R', { password: PASSWORD });
    const a = ocppClient(gw, 'CP-R', 'ocpp1.6');
    await a.connect();
    const { transactionId } = (await a.call('StartTransaction', { connectorId: 1, idTag: 'T', meterStart: 0, timestamp: iso() })) as { transactionId: number };
    await a.close();
    const b = ocppClient(gw, 'CP-R', 'ocpp1.6');
    await b.connect();
    const next = (await b.call('StartTransaction', { connectorId: 2, idTag: 'T', meterStart: 0, timestamp: iso() })) as { transactionId: number };
    assert.ok(next.transactionId > transactionId, 'transaction ids keep increasing across connections');
    await b.close();
    const s = (await gw.store.getStationState('CP-R')) as unknown as StationState;
    assert.deepEqual(Object.keys(s.transactions).sort(), [String(transactionId), String(next.transactionId)].sort());
  } finally {
    await gw.close();
  }
});

test('a second connection of the same station replaces the first', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-D', { password: PASSWORD });
    const a = ocppClient(gw, 'CP-D', 'ocpp2.0.1');
    const closed = new Promise((r) => a.once('close', r));
    await a.connect();
    const b = ocppClient(gw, 'CP-D', 'ocpp2.0.1');
    await b.connect();
    await closed;
    assert.equal(gw.service.connections(), 1);
    assert.ok(isIsoTime(((await b.call('Heartbeat', {})) as { currentTime: string }).currentTime));
    gw.service.disconnect('CP-D');
    await new Promise((r) => b.once('close', r));
    await until(() => gw.service.connections() === 0, 3000, 'the server side to see the close');
  } finally {
    await gw.close();
  }
});

test('station-chosen keys cannot reach Object.prototype, and what a station opens is bounded', async () => {
  const gw = await startGateway({ heartbeatIntervalSec: 60, callsPerSecond: 100_000 });
  try {
    await gw.addStation('CP-B', { password: PASSWORD });
    const cp = ocppClient(gw, 'CP-B', 'ocpp2.0.1');
    await cp.connect();
    await cp.call('BootNotification', { reason: 'PowerUp', chargingStation: { vendorName: 'Acme', model: 'T' } });
    const event = (transactionId: string, eventType = 'Started') => ({
      eventType, timestamp: iso(), triggerReason: 'Authorized', seqNo: 0, transactionInfo: { transactionId },
      evse: { id: 1, connectorId: 1 }, idToken: { idToken: 'TOKEN-P', type: 'ISO14443' },
    });
    for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) await cp.call('TransactionEvent', event(key));
    await cp.call('TransactionEvent', event('__proto__', 'Ended'));
    const probe: Record<string, unknown> = {};
    assert.deepEqual([probe.idTag, probe.state, probe.evse, probe.seqNo], [undefined, undefined, undefined, undefined], 'Object.prototype untouched');
    // ... and they are ordinary transactions, kept as such
    const early = (await gw.store.getStationState('CP-B')) as unknown as StationState;
    assert.ok(Object.hasOwn(early.transactions, '__proto__') && Object.hasOwn(early.transactions, 'constructor'));
    assert.deepEqual([early.transactions['__proto__']!.state, early.transactions['constructor']!.state], ['ended', 'active']);
    // 100 transactions left open (their stops lost) and 200 connectors: bounded, and charging is never refused
    for (let i = 0; i < 100; i++) assert.deepEqual(await cp.call('TransactionEvent', event(`open-${i}`)), { idTokenInfo: { status: 'Accepted' } });
    // an integer-like id comes first in a record's key order, yet the transaction just started is not the one abandoned
    await cp.call('TransactionEvent', event('7'));
    for (let i = 1; i <= 200; i++) await cp.call('StatusNotification', { timestamp: iso(), connectorStatus: 'Available', evseId: 1, connectorId: i });
    await cp.close();
    const s = (await gw.store.getStationState('CP-B')) as unknown as StationState;
    const all = Object.values(s.transactions);
    assert.ok(all.filter((t) => t.state === 'active').length <= 64, 'open transactions bounded');
    assert.ok(all.length <= 64 + 50, 'state bounded');
    assert.equal(s.transactions['open-99']?.state, 'active', 'the newest stay open');
    assert.equal(s.transactions['7']?.state, 'active', 'the one just started stays open');
    assert.ok(Object.keys(s.connectors).length <= 128, 'connectors bounded');
    assert.equal(s.connectors['1/1']?.status, 'Available', 'a known connector is still updated');
    assert.equal(s.transactions['constructor']?.stopReason, ABANDONED, 'the oldest open ones were ended as abandoned');
  } finally {
    await gw.close();
  }
});
