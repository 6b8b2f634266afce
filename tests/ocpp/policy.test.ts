// The sealing policy: the shipped default loads and covers the flows; the
// loader refuses what cannot work, with a reason, and never seals a signed
// meter value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_POLICY_PATH } from './fixture.js';
import { loadOcppPolicy, parseOcppPolicy, ocppPolicyFromJSON, placeholderFor, PLACEHOLDER_STRING, type PolicyRule } from '../../src/ocpp/index.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';

test('the default policy loads and covers the credentials, payment and fleet flows in every version', () => {
  const p = loadOcppPolicy(DEFAULT_POLICY_PATH);
  const pats = (v: '1.6' | '2.0.1' | '2.1', a: string, from: 'csms' | 'station') => p.fieldsFor(v, a, 'request', from).map((f) => `${f.pattern}>${'role' in f.to ? f.to.role : '?'}:${f.kind}`);
  for (const v of ['2.0.1', '2.1'] as const) {
    assert.deepEqual(pats(v, 'SetNetworkProfile', 'csms'), [
      '/connectionData/vpn/key>charger:credentials',
      '/connectionData/vpn/password>charger:credentials',
      '/connectionData/apn/apnPassword>charger:credentials',
      '/connectionData/apn/simPin>charger:credentials',
    ]);
    assert.deepEqual(pats(v, 'TransactionEvent', 'station'), [
      '/transactionInfo/customData/payment>psp:payment',
      '/idToken/additionalInfo/*/additionalIdToken>fleet:fleet-data',
      '/meterValue/*/sampledValue/*/value>fleet:fleet-data',
    ]);
    assert.deepEqual(pats(v, 'MeterValues', 'station'), ['/meterValue/*/sampledValue/*/value>fleet:fleet-data']);
    assert.deepEqual(pats(v, 'Authorize', 'station'), ['/idToken/additionalInfo/*/additionalIdToken>fleet:fleet-data']);
  }
  assert.deepEqual(pats('1.6', 'MeterValues', 'station'), ['/meterValue/*/sampledValue/*/value>fleet:fleet-data']);
  assert.deepEqual(pats('1.6', 'StopTransaction', 'station'), ['/transactionData/*/sampledValue/*/value>fleet:fleet-data']);
  // BasicAuthPassword stays clear: the CSMS checks it (security profiles 1 and 2).
  assert.ok(!readFileSync(DEFAULT_POLICY_PATH, 'utf8').toLowerCase().includes('basicauth'));
  // Nothing sealed where the policy says nothing.
  assert.equal(p.fieldsFor('2.0.1', 'SetNetworkProfile', 'request', 'station').length, 0);
  assert.equal(p.fieldsFor('2.0.1', 'BootNotification', 'request', 'station').length, 0);
});

test('placeholders follow the field schema', () => {
  const p = loadOcppPolicy(DEFAULT_POLICY_PATH);
  const ph = (v: '1.6' | '2.0.1' | '2.1', a: string, pat: string) => p.fieldsFor(v, a, 'request', a === 'SetNetworkProfile' ? 'csms' : 'station').find((f) => f.pattern === pat)!.placeholder;
  assert.equal(ph('2.0.1', 'SetNetworkProfile', '/connectionData/vpn/key'), PLACEHOLDER_STRING); // required, maxLength 255
  assert.equal(ph('2.0.1', 'SetNetworkProfile', '/connectionData/apn/apnPassword'), undefined); // optional: removed
  assert.equal(ph('2.1', 'TransactionEvent', '/meterValue/*/sampledValue/*/value'), 0); // required number
  assert.equal(ph('1.6', 'MeterValues', '/meterValue/*/sampledValue/*/value'), PLACEHOLDER_STRING); // required string
  assert.deepEqual(placeholderFor({ type: 'string', maxLength: 5 }), { ok: true, value: 'evsea' });
  assert.deepEqual(placeholderFor({ type: 'integer', minimum: 3, maximum: 9 }), { ok: true, value: 3 });
  assert.deepEqual(placeholderFor({ type: 'string', enum: ['Accepted', 'Rejected'] }), { ok: true, value: 'Accepted' });
  assert.deepEqual(placeholderFor({ type: 'boolean' }), { ok: true, value: false });
  assert.equal(placeholderFor({ type: 'object' }).ok, false);
  assert.equal(placeholderFor({ type: 'string', format: 'date-time' }).ok, false);
});

const base: PolicyRule = {
  ocpp: ['2.0.1'],
  action: 'SetNetworkProfile',
  message: 'request',
  from: 'csms',
  fields: ['/connectionData/vpn/key'],
  to: { role: 'charger' },
  kind: 'credentials',
};
const refuse = (rules: unknown[], re: RegExp) => assert.throws(() => ocppPolicyFromJSON({ v: 1, rules }), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_INPUT' && re.test(e.message), String(re));

test('a rule that points at a signed meter value (OCMF) is refused, in every version and every shape', () => {
  const tx = { ...base, action: 'TransactionEvent', from: 'station', to: { role: 'fleet' }, kind: 'fleet-data' };
  for (const v of ['2.0.1', '2.1']) {
    refuse([{ ...tx, ocpp: [v], fields: ['/meterValue/*/sampledValue/*/signedMeterValue'] }], /signed meter values \(OCMF\) are never sealed/);
    refuse([{ ...tx, ocpp: [v], fields: ['/meterValue/*/sampledValue/*/signedMeterValue/signedMeterData'] }], /never sealed/);
    refuse([{ ...tx, ocpp: [v], fields: ['/meterValue'] }], /never sealed.*contains a signedMeterValue/); // the whole array holds them
    refuse([{ ...tx, ocpp: [v], fields: ['/meterValue/*/sampledValue'] }], /never sealed/);
    refuse([{ ...tx, ocpp: [v], fields: ['/meterValue/*/sampledValue/*/value'], where: { signedMeterValue: 'x' } }], /never sealed|no member/);
    refuse([{ ...tx, ocpp: [v], action: 'MeterValues', fields: ['/meterValue'] }], /never sealed/);
  }
  const mv16 = { ...tx, ocpp: ['1.6'], action: 'MeterValues' };
  refuse([{ ...mv16, fields: ['/meterValue'] }], /never sealed.*SignedData/);
  refuse([{ ...mv16, fields: ['/meterValue/*/sampledValue'] }], /never sealed/);
  refuse([{ ...mv16, action: 'StopTransaction', fields: ['/transactionData'] }], /never sealed/);
});

test('the loader refuses what cannot work, naming the rule and the reason', () => {
  refuse([{ ...base, fields: ['/connectionData/vpn/nope'] }], /rule 0 \(SetNetworkProfile\): field "\/connectionData\/vpn\/nope" \(OCPP 2\.0\.1\): not in the OCPP 2\.0\.1 SetNetworkProfile request schema/);
  refuse([{ ...base, action: 'SetNetworkProfile', ocpp: ['1.6'] }], /OCPP 1\.6 has no SetNetworkProfile request/);
  refuse([{ ...base, fields: ['/connectionData'] }], /the schema requires this field and a required object cannot be sealed whole; seal its members instead/);
  refuse([{ ...base, action: 'TransactionEvent', from: 'station', to: { role: 'fleet' }, kind: 'fleet-data', fields: ['/timestamp'] }], /requires this field and a string with a pattern or format has no placeholder/);
  refuse([{ ...base, fields: [''] }], /whole message/);
  refuse([{ ...base, fields: ['connectionData'] }], /must start with/);
  refuse([{ ...base, fields: ['/connectionData/vpn/key', '/connectionData/vpn/key'] }], /twice/);
  refuse([{ ...base, fields: ['/connectionData/customData'] }], /customData carries/);
  refuse([{ ...base, fields: ['/customData/vendorId'] }], /part of the evseal carrier/);
  refuse([{ ...base, action: 'TransactionEvent', from: 'station', to: { role: 'fleet' }, kind: 'fleet-data', fields: ['/meterValue/0/timestamp'] }], /use "\*" for array elements/);
  refuse([{ ...base, action: 'TransactionEvent', from: 'station', to: { role: 'fleet' }, kind: 'fleet-data', fields: ['/idToken/additionalInfo/*'] }], /array element cannot be removed/);
  refuse([{ ...base, fields: ['/connectionData/*/key'] }], /"\*" matches array elements/);
  refuse([{ ...base, kind: 'nonsense' }], /kind "nonsense" is not in the role policy/);
  refuse([{ ...base, kind: 'diagnostics' }], /allows no diagnostics from the CSMS side to a charger/);
  refuse([{ ...base, action: 'TransactionEvent', from: 'station', fields: ['/transactionInfo/customData/payment'], to: { role: 'fleet' }, kind: 'payment' }], /allows no payment from a charger to a fleet/);
  refuse([{ ...base, from: 'station', to: { peer: true }, action: 'TransactionEvent', fields: ['/transactionInfo/customData/payment'], kind: 'payment' }], /the CSMS, which is never a recipient/);
  refuse([{ ...base, to: { role: 'gateway' } }], /not an endpoint role/);
  refuse([{ ...base, to: { role: 'charger', id: 'CP-1' } }], /exactly one/);
  refuse([{ ...base, to: { id: 'bad id' } }], /endpoint id/);
  refuse([{ ...base, extra: 1 }], /unknown member "extra"/);
  refuse([{ ...base, ocpp: ['2.0'] }], /unknown OCPP version "2\.0"/);
  refuse([{ ...base, message: 'reply' }], /message must be/);
  refuse([{ ...base, where: { vpnType: 'IKEv2' } }], /where\.vpnType: the object that contains the field has no member/);
  refuse([{ ...base, where: { type: 'SSH' } }], /where\.type: "SSH" is not one of the schema's values/);
  refuse([{ ...base, where: { key: 'x' } }], /tests the sealed field itself/);
  refuse([{ ...base, context: ['/connectionData/vpn/key'] }], /overlaps the sealed field/);
  refuse([{ ...base, context: ['/connectionData/nope'] }], /context "\/connectionData\/nope"/);
  refuse([base, { ...base, fields: ['/connectionData/vpn/key'], to: { id: 'CP-2' } }], /rule 1 \(SetNetworkProfile\): field "\/connectionData\/vpn\/key" overlaps "\/connectionData\/vpn\/key" of rule 0/);
  refuse([base, { ...base, fields: ['/connectionData/apn'], to: { id: 'CP-2' } }, { ...base, fields: ['/connectionData/apn/apnPassword'] }], /overlaps "\/connectionData\/apn"/);
  assert.throws(() => ocppPolicyFromJSON({ v: 2, rules: [] }), /v must be 1/);
  assert.throws(() => parseOcppPolicy('{"v":1,"rules":[],"rules":[]}'), /duplicate/i);
  assert.throws(() => parseOcppPolicy('{"v":1,"rules":[]'), { code: 'ERR_INVALID_INPUT' });
  assert.throws(() => loadOcppPolicy('/nonexistent/policy.json'), { code: 'ERR_NOT_FOUND' });
});

test('rules that cannot collide are accepted: disjoint where conditions, other versions, other kinds of role policy', () => {
  const tx = { ...base, ocpp: ['2.0.1', '2.1'], action: 'MeterValues', from: 'station', fields: ['/meterValue/*/sampledValue/*/value'], to: { role: 'fleet' }, kind: 'fleet-data' };
  const p = ocppPolicyFromJSON({ v: 1, rules: [{ ...tx, where: { measurand: 'SoC' } }, { ...tx, where: { measurand: 'Voltage' }, to: { id: 'fleet-2' } }] });
  // An optional object may be sealed whole (it is removed, not replaced).
  ocppPolicyFromJSON({ v: 1, rules: [{ ...base, fields: ['/connectionData/vpn'] }] });
  assert.equal(p.fieldsFor('2.1', 'MeterValues', 'request', 'station').length, 2);
  // A custom role policy can add a kind.
  const rolePolicy = { rules: [...DEFAULT_ROLE_POLICY.rules, { kind: 'tariff', from: ['charger' as const], to: ['emsp' as const] }] };
  const q = ocppPolicyFromJSON({ v: 1, rules: [{ ...tx, to: { role: 'emsp' }, kind: 'tariff' }] }, { rolePolicy });
  assert.equal(q.rules[0]!.kind, 'tariff');
  refuse([{ ...tx, to: { role: 'emsp' }, kind: 'tariff' }], /kind "tariff" is not in the role policy/);
});
