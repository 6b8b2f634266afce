// A station publishes its one-time prekeys over OCPP (DataTransfer
// org.evseal / publish-prekeys), with ocpp-rpc's strict RPCClient against the
// real gateway: they must be signed by the identity of the bundle it
// published, are held once each, and are handed out once each to peers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';
import { MAX_ONE_TIME_PREKEYS } from '../../src/gateway/directory.js';
import { PASSWORD } from './helpers/ocpp-clients.js';
import { connectCharger } from './helpers/flows-fixture.js';
import { readPublicOneTime } from '../../src/keystore/identity-dir.js';
import { prekeyToJSON } from '../../src/core/prekey.js';

const w = new World();
w.now = Date.now();
after(() => w.cleanup());

for (const protocol of ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'] as const) {
  test(`publish-prekeys (${protocol}): signed by the station's published identity, held once, claimed once`, async () => {
    const ca = await w.ca(`ca-${protocol}`);
    const ID = `CP-OTK-${protocol.slice(4)}`;
    const cpDir = await w.identity(ca, 'charger', ID);
    const otherDir = await w.identity(ca, 'charger', `CP-OTHER-${protocol.slice(4)}`);
    const gw = await startGateway({ port: 0, dataDir: w.path(`data-${protocol}`), trust: w.trust(ca), crlFiles: [`${ca}/crl.pem`], log: pino({ level: 'silent' }) });
    try {
      await addStation(gw.store, { id: ID, password: PASSWORD }, Date.now());
      const mine = JSON.stringify(readPublicOneTime(cpDir).map(prekeyToJSON));
      const n = readPublicOneTime(cpDir).length;
      assert.ok(n > 0);
      const cp = await connectCharger(`${gw.url}/ocpp`, ID, protocol);
      const dt = (messageId: string, data: string) => cp.rpc.call('DataTransfer', { vendorId: 'org.evseal', messageId, data }) as Promise<{ status: string; data?: string }>;
      try {
        // before its bundle, nothing to check the signatures against
        assert.deepEqual(await dt('publish-prekeys', mine), { status: 'Rejected', data: 'ERR_NOT_FOUND' });
        assert.deepEqual(await dt('publish-bundle', w.bundle(cpDir)), { status: 'Accepted' });
        assert.deepEqual(await dt('publish-prekeys', mine), { status: 'Accepted', data: JSON.stringify({ count: n }) });
        assert.deepEqual(await dt('publish-prekeys', mine), { status: 'Accepted', data: JSON.stringify({ count: n }) }, 'a key already held counts once');
        // another identity's prekeys, a malformed list, too many
        const theirs = JSON.stringify(readPublicOneTime(otherDir).map(prekeyToJSON));
        assert.deepEqual(await dt('publish-prekeys', theirs), { status: 'Rejected', data: 'ERR_INVALID_INPUT' });
        assert.deepEqual(await dt('publish-prekeys', 'not json'), { status: 'Rejected', data: 'ERR_INVALID_INPUT' });
        assert.deepEqual(await dt('publish-prekeys', '{"kid":"x"}'), { status: 'Rejected', data: 'ERR_INVALID_INPUT' });
        const many = JSON.stringify(Array.from({ length: MAX_ONE_TIME_PREKEYS + 1 }, () => JSON.parse(mine)[0]));
        assert.deepEqual(await dt('publish-prekeys', many), { status: 'Rejected', data: 'ERR_LIMIT' });
        assert.equal(await gw.store.countOneTimePrekeys(ID), n);
        // each is handed out once; one handed out is never taken back
        const claimed = new Set<string>();
        for (let i = 0; i < n; i++) claimed.add((JSON.parse((await gw.store.claimOneTimePrekey(ID))!) as { kid: string }).kid);
        assert.equal(claimed.size, n);
        assert.equal(await gw.store.claimOneTimePrekey(ID), undefined);
        assert.deepEqual(await dt('publish-prekeys', mine), { status: 'Accepted', data: JSON.stringify({ count: 0 }) });
      } finally {
        await cp.close();
      }
    } finally {
      await gw.close();
    }
  });
}

