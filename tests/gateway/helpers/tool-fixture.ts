// Fixture for the service-tool tests: the real gateway in-process
// (startGateway: router, SQLite store, audit log), a sim charger on OCPP,
// and identities from three CAs:
//   op-ca     the operator's CA: chargers and provisioning services
//   maker-ca  the charger maker's CA: service tools (of any operator)
//   psp-ca    a payment provider's CA
// The charger's trust policy scopes each CA to its roles; the gateway
// trusts all three for every role (it is not the one deciding). The
// gateway's CRLs are copies taken at start, so a later revocation reaches
// the charger (which reads the CA's crl.pem) but not the gateway: the
// charger must refuse on its own.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { startGateway, type RunningGateway } from '../../../src/gateway/server.js';
import { addStation } from '../../../src/gateway/stations.js';
import { runSimCharger, type SimEvent } from '../../../src/sim/charger.js';
import { Endpoint } from '../../../src/keystore/endpoint.js';
import { loadTrust } from '../../../src/keystore/trust-files.js';
import { GatewayClient } from '../../../src/client/gateway-client.js';
import { readPublicOneTime } from '../../../src/keystore/identity-dir.js';
import type { Role } from '../../../src/core/roles.js';
import { PASSPHRASE, World } from '../../helpers/world.js';
import { PASSWORD } from './ocpp-clients.js';

export interface ToolWorld {
  w: World;
  gw: RunningGateway;
  cas: { op: string; maker: string; psp: string };
  /** the charger's trust policy file */
  chargerPolicy: string;
  chargerCrls: string[];
  /** an identity directory (made on first use) */
  identity(role: Role, id: string, ca: 'op' | 'maker' | 'psp', operator?: string): Promise<string>;
  /** an Endpoint for a tool (or any non-charger) identity: trusts op-ca to verify charger bundles */
  endpoint(dir: string): Endpoint;
  /** a charger Endpoint under the charger's trust policy */
  chargerEndpoint(dir: string): Endpoint;
  /** registers the station, and optionally publishes its bundle and one-time prekeys as an endpoint (the charger stays offline) */
  station(dir: string, id: string, o?: { publish?: boolean }): Promise<void>;
  /** runs a sim charger until stop() */
  charger(dir: string, o?: { toolOperators?: string[] }): SimHandle;
  close(): Promise<void>;
}

export interface SimHandle {
  events: SimEvent[];
  endpoint: Endpoint;
  /** resolves once the charger has booted and published its bundle */
  ready: Promise<void>;
  stop(): Promise<void>;
}

export async function until(pred: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function toolWorld(): Promise<ToolWorld> {
  const w = new World();
  w.now = Date.now();
  const cas = { op: await w.ca('op-ca'), maker: await w.ca('maker-ca'), psp: await w.ca('psp-ca') };
  const chargerPolicy = w.path('charger-policy.json');
  writeFileSync(
    chargerPolicy,
    JSON.stringify({
      version: 1,
      anchors: [
        { name: 'operator', cert: join(cas.op, 'ca.pem'), roles: ['charger', 'provisioning'] },
        { name: 'maker', cert: join(cas.maker, 'ca.pem'), roles: ['service-tool'] },
        { name: 'psp', cert: join(cas.psp, 'ca.pem'), roles: ['psp'] },
      ],
    }),
  );
  const gwPolicy = w.path('gateway-policy.json');
  writeFileSync(
    gwPolicy,
    JSON.stringify({
      version: 1,
      anchors: Object.entries(cas).map(([name, dir]) => ({ name, cert: join(dir, 'ca.pem'), roles: '*' })),
    }),
  );
  const chargerCrls = Object.values(cas).map((d) => join(d, 'crl.pem'));
  const gwCrls = Object.entries(cas).map(([name, d]) => {
    const copy = w.path(`gateway-${name}-crl.pem`);
    copyFileSync(join(d, 'crl.pem'), copy);
    return copy;
  });
  const gw = await startGateway({
    port: 0,
    dataDir: w.path('gw-data'),
    trust: loadTrust(gwPolicy),
    crlFiles: gwCrls,
    log: pino({ level: 'silent' }),
    // a refused delivery is dead-lettered (and its sender told) after 2 quick attempts
    limits: { retryDelayMs: 50, maxAttempts: 2 },
    expirySweepMs: 200,
  });
  const ids = new Map<string, string>();
  const sims: SimHandle[] = [];

  const tw: ToolWorld = {
    w,
    gw,
    cas,
    chargerPolicy,
    chargerCrls,
    async identity(role, id, ca, operator = 'ChargeCo') {
      const have = ids.get(id);
      if (have) return have;
      const dir = await w.identity(cas[ca], role, id, { operator });
      ids.set(id, dir);
      return dir;
    },
    endpoint(dir) {
      return Endpoint.load(dir, { trust: w.trust(cas.op), crls: [join(cas.op, 'crl.pem')], passphrase: PASSPHRASE });
    },
    chargerEndpoint(dir) {
      return Endpoint.load(dir, { trust: loadTrust(chargerPolicy), crls: chargerCrls, passphrase: PASSPHRASE });
    },
    async station(dir, id, o = {}) {
      await addStation(gw.store, { id, password: PASSWORD }, Date.now());
      if (!o.publish) return;
      const ep = tw.chargerEndpoint(dir);
      const c = await GatewayClient.connect(gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey });
      await c.publishBundle(readFileSync(join(dir, 'bundle.json'), 'utf8'));
      await c.close();
    },
    charger(dir, o = {}) {
      const endpoint = tw.chargerEndpoint(dir);
      const events: SimEvent[] = [];
      const abort = new AbortController();
      const run = runSimCharger(
        { endpoint, gateway: `${gw.url}/ocpp`, password: PASSWORD, protocol: 'ocpp2.0.1', toolOperators: o.toolOperators, onEvent: (e) => events.push(e) },
        abort.signal,
      );
      run.catch(() => undefined);
      const id = endpoint.id.file.id;
      // booted, and its bundle and one-time prekeys published (over OCPP carriers)
      const otks = readPublicOneTime(dir).length;
      const ready = until(
        async () => events.some((e) => e.type === 'booted') && (await gw.store.getBundle(id)) !== undefined && (await gw.store.countOneTimePrekeys(id)) >= otks,
        5000,
        `${id} to boot`,
      );
      const h: SimHandle = {
        events,
        endpoint,
        ready,
        async stop() {
          abort.abort();
          await run.catch(() => undefined);
        },
      };
      sims.push(h);
      return h;
    },
    async close() {
      for (const s of sims) await s.stop();
      await gw.close();
      w.cleanup();
    },
  };
  return tw;
}

/** The charger's security log, one parsed object per line. */
export function securityEvents(dir: string): { event: string; reason: string; [k: string]: unknown }[] {
  let text = '';
  try {
    text = readFileSync(join(dir, 'security.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { event: string; reason: string });
}
