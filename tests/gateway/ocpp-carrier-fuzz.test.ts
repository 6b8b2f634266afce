// Random evseal carriers (DataTransfer, vendorId org.evseal) from a real
// OCPP client we did not write: ocpp-rpc's RPCClient in strict mode, which
// also checks every answer against the OCPP schema. Known and unknown
// messageIds, with data that is JSON of the right and the wrong shape, or
// not JSON at all, on the REAL gateway (startGateway: router, SQLite store,
// directory). Every call must get a schema-valid answer with a DataTransfer
// status, and the station stays connected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';
import { PASSWORD, boot, ocppClient } from './helpers/ocpp-clients.js';

const w = new World();
w.now = Date.now();
let gw: RunningGateway;

before(async () => {
  const ca = await w.ca('ca');
  await w.identity(ca, 'provisioning', 'prov-f');
  // Calls back to back, as fast as loopback allows: the per-station call rate (tested in ocpp-limits) is lifted.
  gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), log: pino({ level: 'silent' }), revocationCheck: false, limits: { maxBadMessages: 1_000_000, stationCallsPerSecond: 1_000_000 } });
  await addStation(gw.store, { id: 'CP-F', password: PASSWORD }, Date.now());
});
after(async () => {
  await gw.close();
  w.cleanup();
});

const IDS = ['envelope', 'get-bundle', 'publish-bundle', 'session', 'sealed-fields', 'publish-prekeys', 'claim-prekey', 'notice', 'nope', ''];
const odd = fc.constantFrom('', 'CP-F', 'prov-f', '../x', 'command', 'null', '[]', '{}', '"x"', '{"v":1,"hdr":"","chain":[],"enc":"","ct":"","sig":""}', 'x'.repeat(500));
const jsonData = fc
  .dictionary(fc.constantFrom('to', 'kind', 'id', 'expires', 'body', 'prekeys', 'kid', 'x'), fc.oneof(odd, fc.integer(), fc.array(odd, { maxLength: 3 }), fc.constant(null)), { maxKeys: 6 })
  .map((o) => JSON.stringify(o));
const data = fc.option(fc.oneof(odd, jsonData, fc.string({ maxLength: 40 })), { nil: undefined });

for (const protocol of ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'] as const) {
  test(`random org.evseal carriers (${protocol}) always get a schema-valid DataTransfer answer`, { timeout: 120_000 }, async () => {
    const cp = ocppClient({ url: `${gw.url}/ocpp` }, 'CP-F', protocol);
    let closed = false;
    cp.on('close', () => (closed = true));
    await cp.connect();
    try {
      await boot(cp, protocol);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...IDS), data, async (messageId, d) => {
          const r = (await cp.call('DataTransfer', { vendorId: 'org.evseal', ...(messageId ? { messageId } : {}), ...(d === undefined ? {} : { data: d }) })) as { status: string };
          assert.ok(['Accepted', 'Rejected', 'UnknownMessageId', 'UnknownVendorId'].includes(r.status), r.status);
          assert.equal(closed, false);
        }),
        { numRuns: 150 },
      );
    } finally {
      await cp.close({ code: 1000 });
    }
  });
}
