// Property-based tests (fast-check) of protect/unprotect with real
// Endpoints: round trip for any field values in OCPP 1.6, 2.0.1 and 2.1,
// strict schema validity of every protected message, a CSMS view that never
// holds a sealed value (raw, JSON-escaped, hex, base64, base64url), and
// tampering that is refused opaquely without committing the envelope.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { protect, unprotect, type OcppMessage, type Unprotected } from '../../src/ocpp/index.js';
import { fixture, meterValues16, setNetworkProfile, stopTransaction16, transactionEvent, validate, type Fixture } from './fixture.js';

let f: Fixture;
before(async () => {
  f = await fixture();
});
after(() => f.w.cleanup());

const RUNS = 12;
const open = (me: string, msg: OcppMessage & { side?: unknown }): Unprotected => unprotect(msg, { policy: f.policy, me, open: f.openAs(me) });
/** Secret strings: any Unicode code points, long enough that a chance match inside an envelope is negligible. */
const secret = (maxLength: number) => fc.string({ unit: 'binary', minLength: 12, maxLength });

function assertHidden(view: unknown, secrets: string[]): void {
  const text = JSON.stringify(view);
  for (const s of secrets) {
    const b = Buffer.from(s, 'utf8');
    for (const enc of [s, JSON.stringify(s).slice(1, -1), b.toString('hex'), b.toString('base64'), b.toString('base64url')]) {
      assert.ok(!text.includes(enc), `the CSMS view contains a sealed value (${JSON.stringify(enc)})`);
    }
  }
}

test('SetNetworkProfile (2.0.1, 2.1): round trip, schema-valid, nothing sealed in the CSMS view, for any secrets', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('2.0.1' as const, '2.1' as const),
      fc.record({ vpnKey: secret(255), vpnPassword: secret(20), apnPassword: secret(20), simPin: fc.integer() }),
      (version, s) => {
        const msg: OcppMessage = { version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: setNetworkProfile(version, s) };
        validate(version, 'SetNetworkProfile', 'request', msg.payload);
        const p = protect(msg, { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
        validate(version, 'SetNetworkProfile', 'request', p.payload);
        assertHidden(p.payload, [s.vpnKey, s.vpnPassword, s.apnPassword]);
        assert.equal((p.payload as any).connectionData.apn.simPin, undefined);
        const u = open('CP-1', { ...msg, payload: p.payload });
        assert.deepEqual(u.payload, msg.payload);
        validate(version, 'SetNetworkProfile', 'request', u.payload);
      },
    ),
    { numRuns: RUNS },
  );
});

test('TransactionEvent (2.0.1, 2.1): payment to the PSP, ids and SoC to the fleet, for any values', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('2.0.1' as const, '2.1' as const),
      fc.record({ token: secret(40), extra: fc.jsonValue({ maxDepth: 3 }) }),
      secret(255),
      secret(255),
      fc.double({ min: 0, max: 100, noNaN: true }),
      (version, payment, driverId, vin, soc) => {
        const msg: OcppMessage = { version, action: 'TransactionEvent', message: 'request', from: 'station', payload: transactionEvent(version, { payment, driverId, vin, soc }) };
        const orig = JSON.parse(JSON.stringify(msg.payload));
        const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
        validate(version, 'TransactionEvent', 'request', p.payload);
        assertHidden(p.payload, [payment.token, driverId, vin]);
        assert.equal((p.payload as any).meterValue[0].sampledValue[1].value, 0);
        assert.equal((p.payload as any).transactionInfo.customData.payment, undefined);
        const received = { ...msg, payload: p.payload };
        const psp = open('psp-1', received);
        assert.deepEqual(psp.payload.transactionInfo, orig.transactionInfo);
        const fleet = open('fleet-1', received);
        assert.deepEqual([fleet.payload.idToken, fleet.payload.meterValue], [orig.idToken, orig.meterValue]);
      },
    ),
    { numRuns: RUNS },
  );
});

test('MeterValues and StopTransaction (1.6): round trip through the side DataTransfer, both schema-valid, for any SoC text', () => {
  fc.assert(
    fc.property(fc.constantFrom('MeterValues', 'StopTransaction'), secret(40), (action, soc) => {
      const payload = action === 'MeterValues' ? meterValues16(soc) : stopTransaction16(soc);
      const msg: OcppMessage = { version: '1.6', action, message: 'request', from: 'station', payload };
      const p = protect(msg, { policy: f.policy, seal: f.sealAs('CP-1'), resolve: f.resolve });
      validate('1.6', action, 'request', p.payload);
      validate('1.6', 'DataTransfer', 'request', p.side);
      assertHidden([p.payload, p.side], [soc]);
      const u = open('fleet-1', { ...msg, payload: p.payload, side: p.side });
      assert.deepEqual(u.payload, payload);
    }),
    { numRuns: RUNS },
  );
});

type Mutation = { what: string; apply: (x: any) => void };
const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** One change an intermediary could make to a protected SetNetworkProfile. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ pos: fc.nat(), ch: fc.constantFrom(...B64U, '"', '{', ',', ' ') }).map(({ pos, ch }) => ({
    what: 'envelope character',
    apply: (x: any) => {
      const e: string = x.connectionData.customData.sealed[0].env;
      const i = pos % e.length;
      const c = ch === e[i] ? (ch === 'A' ? 'B' : 'A') : ch;
      x.connectionData.customData.sealed[0].env = e.slice(0, i) + c + e.slice(i + 1);
    },
  })),
  fc.subarray(['/connectionData/apn/apnPassword', '/connectionData/apn/simPin', '/connectionData/vpn/key', '/connectionData/vpn/password', '/connectionData/vpn/user', '/configurationSlot']).map((ptrs) => ({
    what: `pointers ${ptrs.join(' ')}`,
    apply: (x: any) => {
      const same = ptrs.join() === x.connectionData.customData.sealed[0].ptrs.join();
      x.connectionData.customData.sealed[0].ptrs = same ? ptrs.slice(1) : [...ptrs].sort();
    },
  })),
  fc.tuple(fc.constantFrom('server', 'user', 'group', 'type', 'key', 'password'), fc.string({ minLength: 1, maxLength: 20 })).map(([k, v]) => ({
    what: `vpn.${k}`,
    apply: (x: any) => {
      x.connectionData.vpn[k] = x.connectionData.vpn[k] === v ? `${v}!` : v;
    },
  })),
  fc.tuple(fc.constantFrom('ocppCsmsUrl', 'securityProfile', 'apnPassword'), fc.oneof(fc.string({ maxLength: 20 }), fc.integer())).map(([k, v]) => ({
    what: `connectionData.${k}`,
    apply: (x: any) => {
      const target = k === 'apnPassword' ? x.connectionData.apn : x.connectionData;
      target[k] = target[k] === v ? `${String(v)}!` : v;
    },
  })),
  fc.constantFrom<Mutation>(
    { what: 'vendorId', apply: (x) => (x.connectionData.customData.vendorId = 'org.evseal2') },
    { what: 'carrier removed', apply: (x) => delete x.connectionData.customData },
    { what: 'entry withheld', apply: (x) => delete x.connectionData.customData.sealed[0].env },
    { what: 'carrier moved to the root', apply: (x) => ((x.customData = x.connectionData.customData), delete x.connectionData.customData, (x.configurationSlot = 2)) },
  ),
);

test('tampering with the carrier, the envelope or the clear part never restores a value: refused opaquely, nothing committed', () => {
  const version = '2.1';
  const secrets = { vpnKey: 'vpn-key-for-tamper-test', vpnPassword: 'vpn-pass-tamper', apnPassword: 'apn-pass-tamper', simPin: 1234 };
  const msg: OcppMessage = { version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: setNetworkProfile(version, secrets) };
  fc.assert(
    fc.property(mutation, (m) => {
      const p = protect(msg, { policy: f.policy, seal: f.sealAs('prov-1'), resolve: f.resolve });
      const bad = structuredClone(p.payload);
      m.apply(bad);
      let u: Unprotected | undefined;
      try {
        u = open('CP-1', { ...msg, payload: bad });
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'ERR_OPEN_FAILED', m.what);
        assert.equal((e as Error).message, 'sealed OCPP fields could not be opened');
      }
      // If it did not throw, nothing was restored (e.g. the header now names another recipient).
      if (u) assert.deepEqual(u.restored, [], `${m.what} restored a value`);
      // The refused envelope was not committed: the genuine message still opens.
      assert.deepEqual(open('CP-1', { ...msg, payload: p.payload }).payload, msg.payload);
    }),
    { numRuns: 40 },
  );
});
