// evseal carriers over OCPP: sealed envelopes ride in DataTransfer
// (vendorId org.evseal) both ways. Gateway → charger: an Accepted answer is
// the durable acknowledgement; a rejection or a timeout is a failed attempt,
// a lost connection is neither. Charger → gateway: Accepted only once the
// envelope is durable, and only for envelopes the station sent as itself.
// Also: SignCertificate is forwarded to the CA service and the signed chain
// comes back as CertificateSigned. Nothing the gateway logs holds a payload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspectEnvelope } from '../../src/core/envelope.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import type { TrustPolicy } from '../../src/core/x509/index.js';
import type { OcppProtocol } from '../../src/gateway/ocpp/validators.js';
import { World } from '../helpers/world.js';
import { startGateway, until, type TestGateway } from './helpers/ocpp-gateway.js';
import { PASSWORD, boot, ocppClient } from './helpers/ocpp-clients.js';

const w = new World();
w.now = Date.now();
let charger: Endpoint;
let prov: Endpoint;
let provBundle = '';
let chargerBundle = '';
let trust: TrustPolicy;
const SECRET = 'wifi-password: hunter2-hunter2';

before(async () => {
  const ca = await w.ca('op-ca');
  trust = w.trust(ca);
  const cpDir = await w.identity(ca, 'charger', 'CP-1');
  const provDir = await w.identity(ca, 'provisioning', 'prov-1');
  charger = w.endpoint(cpDir, trust, [], { revocationCheck: false });
  prov = w.endpoint(provDir, trust, [], { revocationCheck: false });
  provBundle = w.bundle(provDir);
  chargerBundle = w.bundle(cpDir);
});
after(() => w.cleanup());

const provPrincipal = { id: 'prov-1', role: 'provisioning' as const, via: 'endpoint' as const };

/** Seals a fresh credentials envelope from prov-1 to CP-1 and submits it as prov-1 would. */
async function submitToCharger(gw: TestGateway): Promise<{ seq: number; env: string }> {
  const env = prov.seal(chargerBundle, Buffer.from(SECRET), { kind: 'credentials' });
  const h = inspectEnvelope(env);
  const r = await gw.router.submit(provPrincipal, { format: 'envelope', to: 'CP-1', kind: h.kind, msgId: h.id, expires: h.expires * 1000, body: env });
  return { seq: r.seq, env };
}

async function connectCharger(gw: TestGateway, protocol: OcppProtocol, handlers: Record<string, (p: Record<string, unknown>) => unknown>) {
  const cp = ocppClient(gw, 'CP-1', protocol);
  for (const [action, fn] of Object.entries(handlers)) cp.handle(action, async ({ params }) => fn(params as Record<string, unknown>) as Record<string, unknown>);
  await cp.connect();
  await boot(cp, protocol);
  return cp;
}

function assertBlind(gw: TestGateway, envs: string[]): void {
  const log = gw.logs.join('');
  assert.ok(!log.includes(SECRET), 'no plaintext in the log');
  for (const e of envs) {
    const h = inspectEnvelope(e);
    assert.ok(!log.includes(e.slice(0, 200)) && !log.includes(JSON.parse(e).ct.slice(0, 40)), 'no envelope in the log');
    assert.ok(log.includes(h.id), 'ids are logged');
  }
}

for (const protocol of ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'] as const) {
  test(`gateway → charger (${protocol}): DataTransfer delivery, acknowledged durably only when Accepted`, async () => {
    const gw = await startGateway();
    try {
      await gw.addStation('CP-1', { password: PASSWORD });
      const opened: string[] = [];
      let answer: 'Accepted' | 'Rejected' = 'Rejected';
      const cp = await connectCharger(gw, protocol, {
        DataTransfer: (p) => {
          assert.deepEqual([p.vendorId, p.messageId], ['org.evseal', 'envelope']);
          if (answer === 'Accepted') opened.push(Buffer.from(charger.open(p.data as string).plaintext).toString());
          return { status: answer };
        },
      });
      const first = await submitToCharger(gw);
      await until(() => gw.router.failures.length === 1, 3000, 'a failed attempt');
      assert.deepEqual(gw.router.failures[0], { recipient: 'CP-1', seq: first.seq, reason: 'rejected (Rejected)' });
      assert.equal(await gw.store.depth('CP-1'), 1, 'a rejected message stays in the mailbox');

      answer = 'Accepted';
      const second = await submitToCharger(gw);
      await until(() => gw.router.acks.length === 1, 3000, 'an acknowledgement');
      assert.deepEqual(gw.router.acks, [{ recipient: 'CP-1', seq: second.seq }]);
      assert.deepEqual(opened, [SECRET]);
      assert.deepEqual((await gw.store.pending('CP-1', 0, 10, Date.now())).map((m) => m.seq), [first.seq]);
      await cp.close();
      assertBlind(gw, [first.env, second.env]);
    } finally {
      await gw.close();
    }
  });
}

test('gateway → charger: a timeout is a failed attempt; a lost connection is not, and the message goes out on reconnect', async () => {
  const gw = await startGateway({ callTimeoutMs: 300 });
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    const silent = await connectCharger(gw, 'ocpp2.0.1', { DataTransfer: () => new Promise(() => {}) });
    const { seq } = await submitToCharger(gw);
    await until(() => gw.router.failures.length === 1, 3000, 'the timeout');
    assert.deepEqual(gw.router.failures[0], { recipient: 'CP-1', seq, reason: 'timeout' });
    await silent.close({ force: true });

    let got: (() => void) | undefined;
    const inFlight = new Promise<void>((r) => (got = r));
    const dropper = await connectCharger(gw, 'ocpp2.0.1', {
      DataTransfer: () => {
        got!();
        return new Promise(() => {});
      },
    });
    // the test router does not retry: push the message again as the real router would
    gw.router.attached('CP-1')!.push((await gw.store.pending('CP-1', 0, 1, Date.now()))[0]!);
    await inFlight;
    await dropper.close({ force: true });
    await until(() => gw.service.connections() === 0, 3000, 'the disconnect');
    assert.equal(gw.router.failures.length, 1, 'a lost connection is not counted against the message');
    assert.equal(await gw.store.depth('CP-1'), 1);

    const good = await connectCharger(gw, 'ocpp2.0.1', { DataTransfer: (p) => ({ status: charger.open(p.data as string) ? 'Accepted' : 'Rejected' }) });
    await until(async () => (await gw.store.depth('CP-1')) === 0, 3000, 'redelivery on reconnect');
    assert.deepEqual(gw.router.acks, [{ recipient: 'CP-1', seq }]);
    await good.close();
  } finally {
    await gw.close();
  }
});

for (const protocol of ['ocpp1.6', 'ocpp2.1'] as const) {
  test(`charger → gateway (${protocol}): envelope, get-bundle and claim-prekey carriers`, async () => {
    const gw = await startGateway({ trust });
    try {
      await gw.addStation('CP-1', { password: PASSWORD });
      await gw.store.putBundle('prov-1', 'provisioning', provBundle, Date.now());
      await gw.store.addOneTimePrekeys('prov-1', [{ kid: 'k1', json: '{"kid":"k1"}' }]);
      const cp = await connectCharger(gw, protocol, {});
      const dt = (messageId: string, data?: string) => cp.call('DataTransfer', { vendorId: 'org.evseal', messageId, ...(data !== undefined ? { data } : {}) }) as Promise<{ status: string; data?: string }>;

      assert.deepEqual(await dt('get-bundle', 'prov-1'), { status: 'Accepted', data: provBundle });
      assert.deepEqual(await dt('get-bundle', 'nobody'), { status: 'Rejected', data: 'ERR_NOT_FOUND' });
      assert.deepEqual(await dt('claim-prekey', 'prov-1'), { status: 'Accepted', data: '{"kid":"k1"}' });
      assert.deepEqual(await dt('claim-prekey', 'prov-1'), { status: 'Rejected', data: 'ERR_NOT_FOUND' }, 'each one-time prekey is handed out once');

      const env = charger.seal((await dt('get-bundle', 'prov-1')).data!, Buffer.from(SECRET), { kind: 'provisioning-report' });
      const h = inspectEnvelope(env);
      const r = await dt('envelope', env);
      assert.equal(r.status, 'Accepted');
      const { seq, duplicate } = JSON.parse(r.data!) as { seq: number; duplicate: boolean };
      assert.equal(duplicate, false);
      const [queued] = await gw.store.pending('prov-1', 0, 10, Date.now());
      assert.deepEqual(
        { seq: queued!.seq, sender: queued!.sender, kind: queued!.kind, msgId: queued!.msgId, format: queued!.format, expires: queued!.expires },
        { seq, sender: 'CP-1', kind: 'provisioning-report', msgId: h.id, format: 'envelope', expires: h.expires * 1000 },
      );
      assert.equal(queued!.body, env, 'stored as sent, byte for byte');
      const again = await dt('envelope', env);
      assert.deepEqual(JSON.parse(again.data!), { seq, duplicate: true, receipt: null }, 'a resend after a lost answer is not queued twice');
      assert.equal(await gw.store.depth('prov-1'), 1);
      assert.equal(Buffer.from(prov.open(queued!.body).plaintext).toString(), SECRET);

      // a station may only send as itself
      const forged = prov.seal(chargerBundle, Buffer.from('x'), { kind: 'credentials' });
      assert.deepEqual(await dt('envelope', forged), { status: 'Rejected', data: 'ERR_POLICY_DENIED' });
      assert.deepEqual(await dt('envelope', 'not an envelope'), { status: 'Rejected', data: 'ERR_INVALID_INPUT' });
      assert.deepEqual(await dt('envelope'), { status: 'Rejected', data: 'ERR_INVALID_INPUT' });
      assert.deepEqual(await dt('what-is-this', 'x'), { status: 'UnknownMessageId' });
      gw.router.refuseWith = 'ERR_LIMIT';
      assert.deepEqual(await dt('envelope', charger.seal(provBundle, Buffer.from('y'), { kind: 'provisioning-report' })), { status: 'Rejected', data: 'ERR_LIMIT' });
      await cp.close();
      assertBlind(gw, [env]);
    } finally {
      await gw.close();
    }
  });
}

for (const protocol of ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'] as const) {
  test(`SignCertificate goes to the CA service and CertificateSigned comes back (${protocol})`, async () => {
    const gw = await startGateway({ caService: 'ca-svc' });
    try {
      await gw.addStation('CP-1', { password: PASSWORD });
      const chains: Record<string, unknown>[] = [];
      const cp = await connectCharger(gw, protocol, {
        CertificateSigned: (p) => {
          chains.push(p);
          return { status: 'Accepted' };
        },
      });
      const csr = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBfake\n-----END CERTIFICATE REQUEST-----\n';
      const req = protocol === 'ocpp1.6' ? { csr } : { csr, certificateType: 'ChargingStationCertificate' };
      assert.deepEqual(await cp.call('SignCertificate', req), { status: 'Accepted' });
      assert.deepEqual(await cp.call('SignCertificate', req), { status: 'Accepted' });
      const queued = await gw.store.pending('ca-svc', 0, 10, Date.now());
      assert.equal(queued.length, 1, 'the same CSR is queued once');
      assert.deepEqual([queued[0]!.format, queued[0]!.kind, queued[0]!.sender], ['ocpp-csr', 'csr', 'CP-1']);
      assert.deepEqual(JSON.parse(queued[0]!.body), { ...req });

      const chain = '-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n';
      const { seq } = await gw.router.submit(
        { id: 'ca-svc', role: 'provisioning', via: 'endpoint' },
        { format: 'ocpp-cert', to: 'CP-1', kind: 'certificate', msgId: 'cert-1', expires: Date.now() + 60_000, body: JSON.stringify({ certificateChain: chain, certificateType: 'ChargingStationCertificate' }) },
      );
      await until(() => gw.router.acks.some((a) => a.seq === seq), 3000, 'CertificateSigned acknowledged');
      assert.deepEqual(chains, [protocol === 'ocpp1.6' ? { certificateChain: chain } : { certificateChain: chain, certificateType: 'ChargingStationCertificate' }]);

      gw.router.refuseWith = 'ERR_NOT_FOUND';
      assert.deepEqual(await cp.call('SignCertificate', { csr: csr + 'x' }), { status: 'Rejected' });
      await cp.close();
    } finally {
      await gw.close();
    }
  });
}

test('notices about a station\'s own messages reach it as DataTransfer "notice"', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    const notices: unknown[] = [];
    const cp = await connectCharger(gw, 'ocpp2.0.1', {
      DataTransfer: (p) => {
        notices.push([p.messageId, JSON.parse(p.data as string)]);
        return { status: 'Accepted' };
      },
    });
    const n = { type: 'dead-letter', msgId: 'abc', peer: 'prov-1', reason: 'rejected' };
    // deliveries attach once the accepted boot is stored, just after its answer
    await until(() => gw.router.attached('CP-1') !== undefined, 3000, 'the attachment');
    gw.router.attached('CP-1')!.notice!({ seq: 7, ...n });
    await until(() => notices.length === 1, 3000, 'the notice');
    assert.deepEqual(notices, [['notice', n]]);
    await cp.close();
  } finally {
    await gw.close();
  }
});

test('nothing is delivered before a station\'s first accepted BootNotification; after that, deliveries start on connect', async () => {
  const gw = await startGateway();
  try {
    await gw.addStation('CP-1', { password: PASSWORD });
    const seen: string[] = [];
    const handler = { DataTransfer: () => (seen.push('delivery'), { status: 'Accepted' }) };
    const { seq } = await submitToCharger(gw);
    const cp = ocppClient(gw, 'CP-1', 'ocpp2.0.1');
    cp.handle('DataTransfer', async () => handler.DataTransfer());
    await cp.connect();
    await cp.call('Heartbeat', {});
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, [], 'silent until the boot');
    await boot(cp, 'ocpp2.0.1');
    await until(() => gw.router.acks.length === 1, 3000, 'the delivery after boot');
    await cp.close();

    const second = await submitToCharger(gw);
    const again = ocppClient(gw, 'CP-1', 'ocpp2.0.1');
    again.handle('DataTransfer', async () => handler.DataTransfer());
    await again.connect();
    await until(() => gw.router.acks.length === 2, 3000, 'the delivery on reconnect, without a new boot');
    assert.deepEqual(gw.router.acks.map((a) => a.seq), [seq, second.seq]);
    await again.close();
  } finally {
    await gw.close();
  }
});
