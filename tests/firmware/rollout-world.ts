// Rollout managers as cluster nodes over one SQLite store, for tests of which node
// holds a rollout and how station reports reach it: no package file, no router
// (the calls a rollout makes are recorded), no bus (a test passes announcements on).
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { PackageIndex } from '../../src/firmware/package.js';
import type { GatewayContext, Principal, Router } from '../../src/gateway/context.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { RolloutManager } from '../../src/gateway/firmware/rollouts.js';
import { createMetrics } from '../../src/gateway/metrics.js';
import { defaultRoutePolicy } from '../../src/gateway/route-policy.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { GatewayStore } from '../../src/gateway/store/store.js';

export const PID = 'ab'.repeat(16);
export const owner: Principal = { id: 'prov-1', role: 'provisioning', via: 'endpoint' };

/**
 * A store (SQLite unless given) with station CP-1 (booted, OCPP 2.0.1) and
 * nodes a and b on it; `node` makes more. The package has key slots for
 * `devices`; `now` is every node's clock.
 */
export async function rolloutWorld(tmp: string, o: { devices?: string[]; now?: () => number; store?: GatewayStore } = {}) {
  const { devices = ['CP-1'], now = Date.now } = o;
  const dir = mkdtempSync(join(tmp, 'w-'));
  const store = o.store ?? new SqliteStore(join(dir, 'store'));
  await store.putStation({ id: 'CP-1', passwordHash: 'x', created: 0 });
  await store.putStationState('CP-1', { protocol: 'ocpp2.0.1' });
  const calls: string[] = [];
  const node = (name: string, o: { shared?: boolean; address?: string } = {}) => {
    const router = { submit: async (_p: Principal, s: { to: string }) => (calls.push(`${name}:${s.to}`), { seq: calls.length, duplicate: false, receipt: undefined }) } as unknown as Router;
    const metrics = createMetrics();
    const ctx: GatewayContext = { store, log: pino({ level: 'silent' }), metrics, router, now };
    const dataDir = join(dir, name);
    const packages = new PackageStore({ dataDir });
    // the package itself is not needed: its index and OCPP fields are
    packages.index = async () => ({ packageId: PID, version: '2', model: 'M', publisher: 'pub', deviceIds: devices, shared: { offset: 0, length: 1 } }) satisfies PackageIndex;
    const m = new RolloutManager(ctx, {
      packages,
      policy: defaultRoutePolicy(),
      baseUrl: () => `http://${name}`,
      fields: async () => ({ signingCertificate: 'cert', signature: 'sig' }),
      dataDir,
      node: () => o.address ?? `http://${name}`,
      shared: o.shared ?? true,
    });
    return { m, metrics, file: (id: string) => join(dataDir, 'firmware', 'rollouts', `${id}.json`) };
  };
  return { store, calls, node, a: node('a'), b: node('b') };
}
