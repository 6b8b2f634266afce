// Station authentication (security profiles 1-3) and its refusals: a wrong
// password, an unknown station, a certificate that belongs to another
// station, a certificate from an untrusted CA. Each refusal is counted by
// reason and logged without the password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ocpp from 'ocpp-rpc';
import { basicAuthPassword, hashPassword, verifyPassword } from '../../src/gateway/ocpp/auth.js';
import { stationIdFromUrl } from '../../src/gateway/ocpp/service.js';
import { startGateway } from './helpers/ocpp-gateway.js';
import { PASSWORD, ocppClient, upgradeStatus } from './helpers/ocpp-clients.js';
import { fingerprintOf, tlsCa } from './helpers/ocpp-tls.js';

const httpStatus = (e: unknown) => (e as { code?: number }).code;

test('password hashes: scrypt format, constant-time verification, malformed hashes never match', async () => {
  const h = await hashPassword(PASSWORD);
  assert.match(h, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.notEqual(h, await hashPassword(PASSWORD), 'salted');
  assert.equal(await verifyPassword(Buffer.from(PASSWORD), h), true);
  assert.equal(await verifyPassword(Buffer.from(PASSWORD + '!'), h), false);
  for (const bad of ['', 'scrypt$16384$8$1$AAAA', h.replace('16384', '16385'), h.replace('16384', '1048576'), h.replace('$8$', '$0$'), h.replace('$1$', '$9$'), h.slice(0, -4), 'bcrypt$1$2$3$4$5']) {
    assert.equal(await verifyPassword(Buffer.from(PASSWORD), bad), false, bad);
  }
});

test('Basic auth: the user must be the station id; passwords may contain colons', () => {
  const hdr = (s: string) => 'Basic ' + Buffer.from(s).toString('base64');
  assert.equal(basicAuthPassword(hdr('CP-1:a:b'), 'CP-1')?.toString(), 'a:b');
  assert.equal(basicAuthPassword(hdr('CP-2:secret'), 'CP-1'), undefined);
  assert.equal(basicAuthPassword('Bearer abc', 'CP-1'), undefined);
  assert.equal(basicAuthPassword(undefined, 'CP-1'), undefined);
});

test('station ids are taken from /ocpp/<id> only, in the envelope id syntax', () => {
  assert.equal(stationIdFromUrl('/ocpp/CP-001'), 'CP-001');
  assert.equal(stationIdFromUrl('/ocpp/CP%3A1?x=1'), 'CP:1');
  for (const bad of ['/ocpp/', '/ocpp/a/b', '/other/CP-1', '/ocpp/%E0%A4%A', '/ocpp/has%20space', `/ocpp/${'x'.repeat(65)}`, undefined]) {
    assert.equal(stationIdFromUrl(bad), undefined, String(bad));
  }
});

test('profile 1: a wrong password, an unknown station and a missing password are refused; the right one is served', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    const wrong = 'not the password, but long';
    await assert.rejects(ocppClient(gw, 'CP-1', 'ocpp2.0.1', { password: wrong }).connect(), (e) => httpStatus(e) === 401);
    await assert.rejects(ocppClient(gw, 'CP-404', 'ocpp2.0.1').connect(), (e) => httpStatus(e) === 401);
    await assert.rejects(ocppClient(gw, 'CP-1', 'ocpp2.0.1', { password: null }).connect(), (e) => httpStatus(e) === 401);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'bad-password' }), 1);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'unknown-station' }), 1);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'no-credentials' }), 1);
    assert.equal(gw.service.connections(), 0);

    const ok = ocppClient(gw, 'CP-1', 'ocpp2.0.1');
    await ok.connect();
    assert.equal(((await ok.call('BootNotification', { reason: 'PowerUp', chargingStation: { vendorName: 'v', model: 'm' } })) as { status: string }).status, 'Accepted');
    await ok.close();

    const log = gw.logs.join('');
    assert.match(log, /"reason":"bad-password"/);
    assert.ok(!log.includes(wrong) && !log.includes(PASSWORD), 'no password in the log');
    assert.ok(!log.includes(Buffer.from(`CP-1:${wrong}`).toString('base64')), 'no Authorization header in the log');
  } finally {
    await gw.close();
  }
});

test('failed logins are throttled per station and source (successful ones are not): after the burst, 429 with Retry-After and no password check, also for the right password; other stations behind the same address are unaffected; unregistered ids alike; refilled, it is served', async () => {
  const gw = await startGateway({ logins: { failureBurst: 3, failuresPerMinute: 60, maxPending: 64 } });
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    // Successful logins cost nothing: a fleet behind one address reconnects at once.
    const fleet = ['CP-A', 'CP-B', 'CP-C', 'CP-D', 'CP-E', 'CP-F'];
    for (const id of fleet) await gw.addStation(id, { password: PASSWORD });
    assert.deepEqual((await Promise.all(fleet.map((id) => upgradeStatus(gw.url, id, PASSWORD)))).map((r) => r.status), fleet.map(() => 101));
    // Three wrong guesses at once: all are checked (the burst), none is served.
    const wrong = await Promise.all([1, 2, 3].map((i) => upgradeStatus(gw.url, 'CP-1', `wrong guess number ${i}`)));
    assert.deepEqual(wrong.map((r) => r.status), [401, 401, 401]);
    // Now CP-1 from this address is out of budget: refused before any password check, whatever the password.
    assert.deepEqual(await upgradeStatus(gw.url, 'CP-1', PASSWORD), { status: 429, retryAfter: '1' });
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'bad-password' }), 3);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'throttled' }), 1);
    // A station sharing the address (a NAT, a load balancer) is not held back by CP-1's failures.
    assert.deepEqual(await upgradeStatus(gw.url, 'CP-A', PASSWORD), { status: 101 });
    // An unregistered id is throttled exactly like a registered one: the answers do not tell which ids exist.
    const unknown = [];
    for (let i = 0; i < 4; i++) unknown.push((await upgradeStatus(gw.url, 'CP-404', `guess ${i}`)).status);
    assert.deepEqual(unknown, [401, 401, 401, 429]);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'unknown-station' }), 3, 'the fourth was not checked');
    // One failure per second comes back: after Retry-After the right password is served.
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(await upgradeStatus(gw.url, 'CP-1', PASSWORD), { status: 101 });
  } finally {
    await gw.close();
  }
});

test('a charger offering no OCPP subprotocol is refused', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    const c = new ocpp.RPCClient({ endpoint: gw.url, identity: 'CP-1', password: PASSWORD, protocols: ['ocpp9'], reconnect: false } as ConstructorParameters<typeof ocpp.RPCClient>[0]);
    await assert.rejects(c.connect(), (e) => httpStatus(e) === 400);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'subprotocol' }), 1);
  } finally {
    await gw.close();
  }
});

test('profiles 2 and 3: TLS with a password, mutual TLS bound to the station, and the refusals', async () => {
  const ca = await tlsCa('Station TLS CA');
  const server = await ca.issue('gateway', 'server');
  const certA = await ca.issue('CP-A', 'client');
  const certB = await ca.issue('CP-B', 'client');
  const rogue = await (await tlsCa('Rogue CA')).issue('CP-A', 'client');
  const gw = await startGateway({ tlsServer: { key: server.key, cert: server.cert, ca: ca.ca } });
  try {
    await gw.addStation('CP-A', { certFingerprint: fingerprintOf(certA.cert) });
    await gw.addStation('CP-B', { certFingerprint: fingerprintOf(certB.cert), password: PASSWORD });
    const tls = (c?: { key: string; cert: string }) => ({ ca: ca.ca, ...(c ? { key: c.key, cert: c.cert } : {}) });

    // profile 3: its own certificate
    const a = ocppClient(gw, 'CP-A', 'ocpp1.6', { password: null, wsOpts: tls(certA) });
    await a.connect();
    assert.equal(((await a.call('Heartbeat', {})) as { currentTime: string }).currentTime.length > 0, true);
    await a.close();

    // a valid certificate of another station is refused, even with that station's valid password
    await assert.rejects(ocppClient(gw, 'CP-A', 'ocpp1.6', { password: null, wsOpts: tls(certB) }).connect(), (e) => httpStatus(e) === 401);
    await assert.rejects(ocppClient(gw, 'CP-B', 'ocpp1.6', { wsOpts: tls(certA) }).connect(), (e) => httpStatus(e) === 401);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'cert-mismatch' }), 2);

    // a certificate naming the station, from a CA the gateway does not trust
    await assert.rejects(ocppClient(gw, 'CP-A', 'ocpp1.6', { password: null, wsOpts: tls(rogue) }).connect(), (e) => httpStatus(e) === 401);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'cert-untrusted' }), 1);

    // profile 2: TLS without a client certificate, with the password
    const b = ocppClient(gw, 'CP-B', 'ocpp2.1', { wsOpts: tls() });
    await b.connect();
    assert.equal(((await b.call('Heartbeat', {})) as { currentTime: string }).currentTime.length > 0, true);
    await b.close();
    // CP-A has no password: without its certificate there is nothing to check
    await assert.rejects(ocppClient(gw, 'CP-A', 'ocpp2.1', { wsOpts: tls() }).connect(), (e) => httpStatus(e) === 401);
    assert.equal(await gw.counter('connectionsRefused', { kind: 'station', reason: 'no-credentials' }), 1);
  } finally {
    await gw.close();
  }
});
