// The mission's flows through protect/unprotect with real Endpoints, in
// OCPP 1.6, 2.0.1 and 2.1: every protected message (and every 1.6 side
// DataTransfer) validates strictly against the OCA schema, the CSMS view
// holds no sealed value, each recipient restores exactly its own fields.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspectEnvelope } from '../../src/core/envelope.js';
import {
  protect,
  unprotect,
  openFields,
  extractEnvelopes,
  ocppPolicyFromJSON,
  PLACEHOLDER_STRING,
  type OcppMessage,
  type Unprotected,
} from '../../src/ocpp/index.js';
import { fixture, meterValues16, setNetworkProfile, stopTransaction16, transactionEvent, validate, type Fixture } from './fixture.js';

let f: Fixture;
before(async () => {
  f = await fixture();
});
after(() => f.w.cleanup());

const SECRETS = { vpnKey: 'vpn-psk-Zq81-secret', vpnPassword: 'vpn-pass-Xw92', apnPassword: 'apn-pass-Lm33', simPin: 4711 };
const TX = { payment: { token: 'tok_4111-xxxx-PAYTOKEN', session: 'adhoc-7781' }, driverId: 'DRIVER-Jane-Doe-001', vin: 'WVWZZZ1JZXW000001', soc: 57.5 };

const snp = (version: '2.0.1' | '2.1', payload = setNetworkProfile(version, SECRETS)): OcppMessage => ({ version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload });
const open = (me: string, msg: OcppMessage & { side?: unknown }, reasons?: string[]): Unprotected =>
  unprotect(msg, { policy: f.policy, me, open: f.openAs(me), onRefused: (r) => reasons?.push(r) });

function assertHidden(view: unknown, secrets: string[]): void {
  const text = JSON.stringify(view);
  for (const s of secrets) {
    const b = Buffer.from(s, 'utf8');
    for (const enc of [s, JSON.stringify(s).slice(1, -1), b.toString('hex'), b.toString('base64'), b.toString('base64url')]) {
      assert.ok(!text.includes(enc), `the CSMS view contains ${JSON.stringify(s)} (as ${enc})`);
    }
  }
}

for (const version of ['2.0.1', '2.1'] as const) {
  test(`credentials (${version}): provisioning seals SetNetworkProfile secrets to CP-1; the CSMS view validates and holds none`, () => {
    const p = protect(snp(version), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
    validate(version, 'SetNetworkProfile', 'request', p.payload);
    assertHidden(p.payload, [SECRETS.vpnKey, SECRETS.vpnPassword, SECRETS.apnPassword]);
    const cd = p.payload.connectionData as Record<string, any>;
    assert.equal(cd.vpn.key, PLACEHOLDER_STRING);
    assert.equal(cd.vpn.password, PLACEHOLDER_STRING);
    assert.equal(cd.apn.apnPassword, undefined, 'optional: removed');
    assert.equal(cd.apn.simPin, undefined);
    assert.equal(cd.vpn.server, 'vpn.example.com', 'what the CSMS needs stays clear');
    if (version === '2.1') assert.equal(cd.basicAuthPassword, 'basic-auth-password-0001', 'BasicAuthPassword is not sealed');
    // One envelope to CP-1 in connectionData.customData, naming the four pointers.
    assert.deepEqual(Object.keys(cd.customData), ['vendorId', 'sealed']);
    assert.equal(cd.customData.vendorId, 'org.evseal');
    assert.deepEqual(cd.customData.sealed[0].ptrs, ['/connectionData/apn/apnPassword', '/connectionData/apn/simPin', '/connectionData/vpn/key', '/connectionData/vpn/password']);
    const envs = extractEnvelopes(p.payload);
    assert.equal(envs.length, 1);
    const hdr = inspectEnvelope(envs[0]!);
    assert.deepEqual([hdr.from, hdr.to, hdr.kind, hdr.cty], ['prov-1', 'CP-1', 'credentials', 'application/vnd.evseal.ocpp-fields+json']);
    assert.deepEqual(p.sealed, [{ to: 'CP-1', kind: 'credentials', pointers: cd.customData.sealed[0].ptrs }]);

    // Another charger restores nothing and sees the envelope as pending.
    const other = open('CP-2', snp(version, p.payload));
    assert.deepEqual(other.restored, []);
    assert.deepEqual(other.pending, [{ to: 'CP-1', kind: 'credentials', pointers: cd.customData.sealed[0].ptrs }]);
    assert.deepEqual(other.payload, p.payload);

    // CP-1 restores exactly the original message.
    const u = open('CP-1', snp(version, p.payload));
    assert.deepEqual(u.payload, setNetworkProfile(version, SECRETS));
    validate(version, 'SetNetworkProfile', 'request', u.payload);
    assert.deepEqual(u.restored.map((r) => [r.pointer, r.from, r.role, r.kind]), cd.customData.sealed[0].ptrs.map((p: string) => [p, 'prov-1', 'provisioning', 'credentials']));
    assert.deepEqual([u.pending, u.withheld], [[], []]);
    assert.equal(u.ref, p.ref);
  });

  test(`payment and fleet data (${version}): TransactionEvent fields go to the PSP and the fleet, one envelope each; OCMF and billing data stay clear`, () => {
    const msg: OcppMessage = { version, action: 'TransactionEvent', message: 'request', from: 'station', payload: transactionEvent(version, TX) };
    const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    validate(version, 'TransactionEvent', 'request', p.payload);
    assertHidden(p.payload, [TX.payment.token, TX.payment.session, TX.driverId, TX.vin]);
    const pl = p.payload as Record<string, any>;
    const sv = pl.meterValue[0].sampledValue;
    assert.equal(sv[1].value, 0, 'SoC placeholder');
    assert.equal(sv[1].measurand, 'SoC');
    assert.deepEqual(sv[0], (transactionEvent(version, TX) as any).meterValue[0].sampledValue[0], 'the signed energy reading is untouched');
    assert.equal(sv[2].value, 11.2);
    assert.equal(pl.idToken.idToken, 'PSEUDO-7f3a9c', 'the CSMS authorizes on the pseudonymous token');
    assert.equal(pl.idToken.additionalInfo[0].additionalIdToken, PLACEHOLDER_STRING);
    assert.equal(pl.idToken.additionalInfo[0].type, 'DriverId');
    assert.deepEqual(p.sealed.map((s) => [s.to, s.kind]), [['psp-1', 'payment'], ['fleet-1', 'fleet-data']]);
    // The payment envelope sits in transactionInfo.customData (the org.evseal object that held the payment data);
    // the fleet envelope covers fields under idToken and meterValue, so it sits at the root.
    assert.deepEqual(Object.keys(pl.transactionInfo.customData), ['vendorId', 'sealed']);
    assert.deepEqual(pl.transactionInfo.customData.sealed[0].ptrs, ['/transactionInfo/customData/payment']);
    assert.deepEqual(pl.customData.sealed[0].ptrs, ['/idToken/additionalInfo/0/additionalIdToken', '/idToken/additionalInfo/1/additionalIdToken', '/meterValue/0/sampledValue/1/value']);
    assert.deepEqual(extractEnvelopes(p.payload).map((e) => inspectEnvelope(e).to), ['psp-1', 'fleet-1']);

    const received = { ...msg, payload: p.payload };
    const psp = open('psp-1', received);
    assert.deepEqual(psp.payload.transactionInfo, transactionEvent(version, TX).transactionInfo);
    assert.deepEqual(psp.restored.map((r) => [r.pointer, r.from, r.kind]), [['/transactionInfo/customData/payment', 'CP-1', 'payment']]);
    assert.deepEqual(psp.pending, [{ to: 'fleet-1', kind: 'fleet-data', pointers: pl.customData.sealed[0].ptrs }]);
    assert.equal((psp.payload as any).meterValue[0].sampledValue[1].value, 0, 'the fleet part stays sealed');

    const fleet = open('fleet-1', received);
    const orig = transactionEvent(version, TX) as any;
    assert.deepEqual(fleet.payload.idToken, orig.idToken);
    assert.deepEqual(fleet.payload.meterValue, orig.meterValue);
    assert.equal(fleet.payload.customData, undefined, 'an emptied carrier is removed');
    assert.deepEqual((fleet.payload.transactionInfo as any).customData.sealed.length, 1, 'the PSP envelope is left in place');
  });

  test(`fleet data (${version}): a recipient given only the envelope opens the fields with their context; MeterValues and Authorize`, () => {
    const msg: OcppMessage = { version, action: 'TransactionEvent', message: 'request', from: 'station', payload: transactionEvent(version, TX) };
    const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    const env = extractEnvelopes(p.payload).find((e) => inspectEnvelope(e).to === 'fleet-1')!;
    const o = openFields(env, { open: f.openAs('fleet-1'), me: 'fleet-1' });
    assert.deepEqual([o.ocpp, o.action, o.message, o.ref, o.kind, o.sender.id], [version, 'TransactionEvent', 'request', p.ref, 'fleet-data', 'CP-1']);
    assert.deepEqual(o.fields, { '/idToken/additionalInfo/0/additionalIdToken': TX.driverId, '/idToken/additionalInfo/1/additionalIdToken': TX.vin, '/meterValue/0/sampledValue/1/value': TX.soc });
    assert.deepEqual(o.context, { '/eventType': 'Updated', '/meterValue/0/timestamp': '2026-06-01T10:00:00.000Z', '/seqNo': 4, '/timestamp': '2026-06-01T10:00:00.000Z', '/transactionInfo/transactionId': 'tx-0001' });

    const mv: OcppMessage = { version, action: 'MeterValues', message: 'request', from: 'station', payload: { evseId: 1, meterValue: (transactionEvent(version, TX) as any).meterValue } };
    const pm = protect(mv, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    validate(version, 'MeterValues', 'request', pm.payload);
    assert.equal((pm.payload as any).meterValue[0].sampledValue[1].customData.sealed[0].ptrs[0], '/meterValue/0/sampledValue/1/value', 'one field: the carrier is on the object that contains it');
    assert.deepEqual(open('fleet-1', { ...mv, payload: pm.payload }).payload, mv.payload);

    const au: OcppMessage = { version, action: 'Authorize', message: 'request', from: 'station', payload: { idToken: (transactionEvent(version, TX) as any).idToken } };
    const pa = protect(au, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    validate(version, 'Authorize', 'request', pa.payload);
    assertHidden(pa.payload, [TX.driverId, TX.vin]);
    assert.deepEqual(open('fleet-1', { ...au, payload: pa.payload }).payload, au.payload);
  });
}

test('fleet data (1.6): MeterValues and StopTransaction keep placeholders; the SoC travels in a side DataTransfer linked by ref', () => {
  for (const [action, payload] of [['MeterValues', meterValues16('57')], ['StopTransaction', stopTransaction16('81')]] as const) {
    const msg: OcppMessage = { version: 'ocpp1.6', action, message: 'request', from: 'station', payload };
    const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    validate('1.6', action, 'request', p.payload);
    assert.ok(p.side);
    validate('1.6', 'DataTransfer', 'request', p.side);
    assert.deepEqual([p.side.vendorId, p.side.messageId], ['org.evseal', 'sealed-fields']);
    const data = JSON.parse(p.side.data);
    assert.deepEqual(Object.keys(data), ['action', 'message', 'ocpp', 'ref', 'sealed', 'v']);
    assert.deepEqual([data.action, data.message, data.ocpp, data.ref, data.v], [action, 'request', '1.6', p.ref, 1]);
    assert.equal(JSON.stringify(p.payload).includes('evseal:sealed'), true);
    assert.equal(JSON.stringify(p.payload).includes('customData'), false);
    if (action === 'MeterValues') {
      const sv = (p.payload as any).meterValue[0].sampledValue;
      assert.equal(sv[1].value, PLACEHOLDER_STRING);
      assert.deepEqual(sv[2], (payload as any).meterValue[0].sampledValue[2], 'the signed reading is untouched');
    }
    assert.deepEqual(extractEnvelopes(p.side).map((e) => inspectEnvelope(e).to), ['fleet-1']);
    assert.deepEqual(extractEnvelopes(p.payload), []);

    // Without its side message, or with another message's, the fleet refuses; with it, it restores.
    const reasons: string[] = [];
    assert.throws(() => open('fleet-1', { ...msg, payload: p.payload }, reasons), { code: 'ERR_OPEN_FAILED' });
    // (The side message of a message with other clear content: the ref binds the clear content.)
    const otherPayload = { ...(action === 'MeterValues' ? meterValues16('58') : stopTransaction16('82')), transactionId: 43 };
    const other = protect({ ...msg, payload: otherPayload }, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    assert.throws(() => open('fleet-1', { ...msg, payload: p.payload, side: other.side }, reasons), { code: 'ERR_OPEN_FAILED' });
    assert.deepEqual(reasons, ['policy-field-in-clear', 'side-ref-mismatch']);
    const u = open('fleet-1', { ...msg, payload: p.payload, side: p.side });
    assert.deepEqual(u.payload, payload);
    assert.equal(u.side, undefined);
    // The CSMS (or another endpoint) keeps the side message whole.
    const cp2 = open('CP-2', { ...msg, payload: p.payload, side: p.side });
    assert.deepEqual(cp2.side, p.side);
    assert.deepEqual(cp2.payload, p.payload);
  }
});

test('a signed meter value is never sealed, even when a rule matches it at run time', () => {
  // 1.6: an SoC reading with format SignedData stays clear.
  const m16 = meterValues16('57') as any;
  m16.meterValue[0].sampledValue[1].format = 'SignedData';
  const p16 = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: m16 }, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
  assert.deepEqual(p16.payload, m16);
  assert.equal(p16.side, undefined);
  assert.deepEqual(p16.skipped, ['/meterValue/0/sampledValue/1/value']);
  // 2.x: an SoC reading with a signedMeterValue stays clear.
  const tx = transactionEvent('2.1', TX) as any;
  tx.meterValue[0].sampledValue[1].signedMeterValue = { signedMeterData: 'c29j', signingMethod: 'x', encodingMethod: 'OCMF', publicKey: 'k' };
  const p = protect({ version: '2.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: tx }, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
  assert.equal((p.payload as any).meterValue[0].sampledValue[1].value, TX.soc);
  assert.deepEqual(p.skipped, ['/meterValue/0/sampledValue/1/value']);
  validate('2.1', 'TransactionEvent', 'request', p.payload);
  // ... and the receiver does not demand it sealed.
  const u = open('fleet-1', { version: '2.1', action: 'TransactionEvent', message: 'request', from: 'station', payload: p.payload });
  assert.deepEqual([u.payload.idToken, u.payload.meterValue], [tx.idToken, tx.meterValue]);
});

test('withheld fields: with no recipient the fields are removed and sent to nobody', () => {
  const resolve = (to: Parameters<typeof f.resolve>[0]) => ('role' in to && to.role === 'fleet' ? null : f.resolve(to));
  for (const version of ['2.0.1', '2.1'] as const) {
    const msg: OcppMessage = { version, action: 'TransactionEvent', message: 'request', from: 'station', payload: transactionEvent(version, TX) };
    const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve });
    validate(version, 'TransactionEvent', 'request', p.payload);
    assertHidden(p.payload, [TX.driverId, TX.vin]);
    assert.deepEqual(p.withheld, ['/idToken/additionalInfo/0/additionalIdToken', '/idToken/additionalInfo/1/additionalIdToken', '/meterValue/0/sampledValue/1/value']);
    assert.deepEqual((p.payload as any).customData, { vendorId: 'org.evseal', sealed: [{ ptrs: p.withheld }] });
    const u = open('psp-1', { ...msg, payload: p.payload });
    assert.deepEqual(u.withheld, p.withheld);
    assert.deepEqual(u.restored.map((r) => r.pointer), ['/transactionInfo/customData/payment']);
  }
  const p16 = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: meterValues16('57') }, { policy: f.policy, seal: f.sealAs('CP-1'), resolve });
  validate('1.6', 'DataTransfer', 'request', p16.side);
  assert.deepEqual(extractEnvelopes(p16.side), []);
  assert.deepEqual(JSON.parse(p16.side!.data).sealed, [{ ptrs: ['/meterValue/0/sampledValue/1/value'] }]);
});

test('tampering is refused opaquely, and a refused envelope can still be opened genuinely (nothing committed)', () => {
  const version = '2.0.1';
  const fresh = () => protect(snp(version), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
  const p = fresh();
  const reasons: string[] = [];
  const attempt = (payload: Record<string, unknown>) => {
    assert.throws(() => open('CP-1', snp(version, payload), reasons), (e: Error & { code?: string }) => e.code === 'ERR_OPEN_FAILED' && e.message === 'sealed OCPP fields could not be opened');
  };
  const edit = (fn: (x: any) => void) => {
    const c = structuredClone(p.payload) as any;
    fn(c);
    return c;
  };
  // A clear field changed (the CSMS points the charger at its own VPN server).
  attempt(edit((x) => (x.connectionData.vpn.server = 'vpn.attacker.example')));
  // A placeholder replaced by a value of the CSMS's choosing.
  attempt(edit((x) => (x.connectionData.vpn.key = 'csms-chosen-key')));
  // The envelope changed.
  attempt(edit((x) => {
    const e: string = x.connectionData.customData.sealed[0].env;
    const i = e.indexOf('"ct":"') + 10;
    x.connectionData.customData.sealed[0].env = e.slice(0, i) + (e[i] === 'A' ? 'B' : 'A') + e.slice(i + 1);
  }));
  // The pointer list changed: one dropped, one added, one renamed.
  attempt(edit((x) => x.connectionData.customData.sealed[0].ptrs.shift()));
  attempt(edit((x) => x.connectionData.customData.sealed[0].ptrs.unshift('/configurationSlot')));
  attempt(edit((x) => (x.connectionData.customData.sealed[0].ptrs[3] = '/connectionData/vpn/user')));
  attempt(edit((x) => x.connectionData.customData.sealed[0].ptrs.reverse()));
  // The carrier stripped and the values put in the clear (or left as placeholders).
  attempt(edit((x) => delete x.connectionData.customData));
  attempt(edit((x) => (x.connectionData.customData.vendorId = 'com.other')));
  // Malformed carriers.
  attempt(edit((x) => (x.connectionData.customData.sealed = {})));
  attempt(edit((x) => (x.connectionData.customData.sealed[0].extra = 1)));
  attempt(edit((x) => (x.connectionData.customData.sealed[0].env = 'not an envelope')));
  // An envelope from another SetNetworkProfile to the same charger (another slot).
  const q = protect(snp(version, { ...setNetworkProfile(version, { ...SECRETS, vpnKey: 'another-key-0000' }), configurationSlot: 2 }), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
  attempt(edit((x) => (x.connectionData.customData.sealed[0].env = (q.payload as any).connectionData.customData.sealed[0].env)));
  // The whole message replayed under another version or action is another message.
  assert.throws(() => open('CP-1', { ...snp('2.1', p.payload) }, reasons), { code: 'ERR_OPEN_FAILED' });
  assert.deepEqual(reasons, [
    'binding-mismatch',
    'binding-mismatch',
    'envelope-refused',
    'pointers-mismatch',
    'field-not-in-local-policy',
    'policy-field-in-clear',
    'ERR_INVALID_INPUT: evseal carrier: ptrs must be sorted and unique',
    'policy-field-in-clear',
    'policy-field-in-clear',
    'ERR_INVALID_INPUT: evseal carrier: sealed must be a non-empty array',
    'ERR_INVALID_INPUT: evseal carrier: an entry has members other than env and ptrs',
    'malformed-envelope',
    'binding-mismatch',
    'plaintext-for-another-message',
  ]);
  // None of the refusals committed the envelope: the genuine message still opens, once.
  assert.deepEqual(open('CP-1', snp(version, p.payload)).payload, setNetworkProfile(version, SECRETS));
  assert.throws(() => open('CP-1', snp(version, p.payload), reasons), { code: 'ERR_OPEN_FAILED' });
  assert.equal(reasons.at(-1), 'envelope-refused');
});

test('a receiver accepts only what its own policy seals, under the kind it expects', () => {
  const version = '2.1';
  // A service tool may send "config" to a charger, but the charger's policy says SetNetworkProfile secrets are "credentials".
  const asConfig = ocppPolicyFromJSON({ v: 1, rules: [{ ...f.policy.rules[0]!, kind: 'config' }] });
  const p = protect(snp(version), { policy: asConfig, seal: f.sealAs('tool-1'), resolve: f.resolve });
  const reasons: string[] = [];
  assert.throws(() => open('CP-1', snp(version, p.payload), reasons), { code: 'ERR_OPEN_FAILED' });
  // A sender that seals more than the receiver's policy names.
  const more = ocppPolicyFromJSON({ v: 1, rules: [{ ...f.policy.rules[0]!, fields: [...f.policy.rules[0]!.fields, '/connectionData/vpn/user'] }] });
  const q = protect(snp(version), { policy: more, seal: f.sealAs('prov-1'), resolve: f.resolve });
  assert.throws(() => open('CP-1', snp(version, q.payload), reasons), { code: 'ERR_OPEN_FAILED' });
  assert.deepEqual(reasons, ['kind-not-the-policy-kind', 'field-not-in-local-policy']);
});

test('protect: carriers skip foreign customData, refuse double protection, check the sealer and resolver', () => {
  const version = '2.0.1';
  const payload = setNetworkProfile(version, SECRETS) as any;
  payload.connectionData.customData = { vendorId: 'com.acme', x: 1 };
  const p = protect(snp(version, payload), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
  assert.deepEqual((p.payload as any).connectionData.customData, { vendorId: 'com.acme', x: 1 });
  assert.equal((p.payload as any).customData.sealed.length, 1, 'the carrier moved up to the root');
  validate(version, 'SetNetworkProfile', 'request', p.payload);
  assert.deepEqual(open('CP-1', snp(version, p.payload)).payload, payload);

  assert.throws(() => protect(snp(version, p.payload), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve }), /already carries sealed fields/);
  assert.throws(() => protect(snp(version), { policy: f.policy, seal: f.sealAs('prov-1'), resolve: () => 'CP 1' }), { code: 'ERR_USAGE' });
  assert.throws(() => protect(snp(version), { policy: f.policy, seal: (_to, pt, o) => f.sealAs('prov-1')('CP-2', pt, o), resolve: f.resolve }), /not to CP-1/);
  assert.throws(() => protect({ ...snp(version), version: '3.0' as never }, { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve }), { code: 'ERR_USAGE' });
  // The role policy is still enforced by the Endpoint: a charger cannot seal credentials.
  assert.throws(() => protect(snp(version), { policy: f.policy, seal: f.sealAs('CP-2'), resolve: f.resolve }), { code: 'ERR_POLICY_DENIED' });
  // A message the policy does not touch, and evseal's own DataTransfer, pass through unchanged.
  const boot = { version, action: 'BootNotification', message: 'request', from: 'station', payload: { reason: 'PowerUp', chargingStation: { model: 'm', vendorName: 'v' } } } as const;
  assert.deepEqual(protect(boot, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve }).payload, boot.payload);
  const dt = { version, action: 'DataTransfer', message: 'request', from: 'station', payload: { vendorId: 'org.evseal', messageId: 'envelope', data: 'x' } } as const;
  assert.deepEqual(protect(dt, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve }).payload, dt.payload);
});

test('extractEnvelopes: customData anywhere, 1.6 side messages, nothing elsewhere; malformed carriers refused', () => {
  assert.deepEqual(extractEnvelopes({ a: 1 }), []);
  assert.deepEqual(extractEnvelopes({ vendorId: 'org.evseal', messageId: 'envelope', data: 'x' }), []);
  assert.deepEqual(extractEnvelopes({ x: [{ customData: { vendorId: 'org.evseal', sealed: [{ env: 'E1', ptrs: ['/x/0/y'] }, { ptrs: ['/z'] }] } }], customData: { vendorId: 'org.evseal', sealed: [{ env: 'E2', ptrs: ['/q'] }] } }), ['E1', 'E2']);
  assert.throws(() => extractEnvelopes({ customData: { vendorId: 'org.evseal', sealed: [{ env: 'E', ptrs: ['/b', '/a'] }] } }), { code: 'ERR_INVALID_INPUT' });
  assert.throws(() => extractEnvelopes({ vendorId: 'org.evseal', messageId: 'sealed-fields', data: '{"v":1}' }), { code: 'ERR_INVALID_INPUT' });
});

test('responses are sealed the same way (a custom rule on DataTransfer responses, 1.6 and 2.0.1)', () => {
  const policy = ocppPolicyFromJSON({
    v: 1,
    rules: [{ ocpp: ['1.6', '2.0.1', '2.1'], action: 'DataTransfer', message: 'response', from: 'station', fields: ['/data'], where: { status: 'Accepted' }, to: { id: 'psp-1' }, kind: 'payment' }],
  });
  for (const version of ['1.6', '2.0.1', '2.1'] as const) {
    const data = version === '1.6' ? 'receipt-7781-secret-text' : { receipt: 'receipt-7781-secret-text', amount: 1234 };
    const msg: OcppMessage = { version, action: 'DataTransfer', message: 'response', from: 'station', payload: { status: 'Accepted', data } };
    const p = protect(msg, { policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
    validate(version, 'DataTransfer', 'response', p.payload);
    if (p.side) validate(version, 'DataTransfer', 'request', p.side);
    assert.equal(version === '1.6', p.side !== undefined);
    assertHidden([p.payload, p.side], ['receipt-7781-secret-text']);
    const u = unprotect({ ...msg, payload: p.payload, ...(p.side ? { side: p.side } : {}) }, { policy, me: 'psp-1', open: f.openAs('psp-1') });
    assert.deepEqual(u.payload, msg.payload);
    // A Rejected response carries no data to seal.
    assert.deepEqual(protect({ ...msg, payload: { status: 'Rejected', data } }, { policy, seal: f.sealAs('CP-1'), resolve: f.resolve }).sealed, []);
  }
});
