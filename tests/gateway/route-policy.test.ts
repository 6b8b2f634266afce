// The gateway's route policy on clear metadata, and the OCPP actions each
// kind of ocpp-call may carry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OCPP_CALL_ACTIONS, defaultRoutePolicy, ocppCallAllowed, routeAllowed } from '../../src/gateway/route-policy.js';

const p = defaultRoutePolicy();

test('route policy: sealed kinds follow the role table, sessions both ways, nothing to or from the gateway', () => {
  assert.equal(routeAllowed(p, 'provisioning', 'credentials', 'charger', 'envelope'), true);
  assert.equal(routeAllowed(p, 'charger', 'credentials', 'provisioning', 'envelope'), false);
  assert.equal(routeAllowed(p, 'charger', 'command', 'service-tool', 'session'), true, 'a session kind flows back');
  assert.equal(routeAllowed(p, 'service-tool', 'command', 'charger', 'ocpp-call'), true);
  assert.equal(routeAllowed(p, 'service-tool', 'command', 'psp', 'ocpp-call'), false, 'OCPP calls go to chargers only');
  assert.equal(routeAllowed(p, 'provisioning', 'firmware', 'charger', 'ocpp-call'), true);
  assert.equal(routeAllowed(p, 'gateway', 'command', 'charger', 'envelope'), false);
  assert.equal(routeAllowed(p, 'provisioning', 'credentials', 'charger', 'no-such-format'), false);
});

test('ocpp-call actions are bounded by kind; unknown kinds and inherited keys carry none', () => {
  assert.equal(ocppCallAllowed('credentials', 'SetNetworkProfile'), true);
  assert.equal(ocppCallAllowed('firmware', 'SignedUpdateFirmware'), true);
  assert.equal(ocppCallAllowed('command', 'Reset'), true);
  for (const kind of Object.keys(OCPP_CALL_ACTIONS)) {
    for (const action of ['InstallCertificate', 'DeleteCertificate', 'CertificateSigned', 'DataTransfer']) assert.equal(ocppCallAllowed(kind, action), false, `${kind} ${action}`);
  }
  assert.equal(ocppCallAllowed('credentials', 'Reset'), false);
  assert.equal(ocppCallAllowed('payment', 'Reset'), false);
  assert.equal(ocppCallAllowed('__proto__', 'toString'), false);
  assert.equal(ocppCallAllowed('constructor', 'name'), false);
});
