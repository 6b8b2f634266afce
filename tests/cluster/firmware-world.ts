// The world of the cluster firmware tests: a CA, a firmware publisher, the
// operator's provisioning identity and one P-256 charger with an installed
// firmware record; a fresh PostgreSQL schema and JetStream stream; one
// gateway key that each node gets a copy of in its own data directory.
// Registers the test file's before/after hooks.
import { before, after } from 'node:test';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayClient, type RolloutEvent } from '../../src/client/gateway-client.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/identity.js';
import { packFirmware } from '../../src/firmware/pack.js';
import { writeInstalled } from '../../src/firmware/installed.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { PASSPHRASE, World } from '../helpers/world.js';
import { stopCluster, type ClusterConfig, type Node } from './nodes.js';
import { freshBusNames, freshSchema, NATS_URL, servicesMissing } from './services.js';

export class FirmwareCluster {
  readonly w = new World();
  readonly nodes: Node[] = [];
  readonly dirs = new Map<string, string>();
  cfg!: ClusterConfig;
  ca = '';

  private constructor(
    readonly skip: string | undefined,
    readonly charger: string,
  ) {}

  /** Sets the world up before the file's tests and tears it down after them. */
  static async create(tag: string, charger: string): Promise<FirmwareCluster> {
    const c = new FirmwareCluster(await servicesMissing({ pg: true, nats: true }), charger);
    const schema = freshSchema(tag);
    const bus = freshBusNames(tag);
    c.w.now = Date.now();
    before(async () => {
      if (c.skip) return;
      c.ca = await c.w.ca('ca');
      c.dirs.set('pub-1', await c.w.identity(c.ca, 'firmware-publisher', 'pub-1'));
      c.dirs.set('prov-1', await c.w.identity(c.ca, 'provisioning', 'prov-1'));
      const cpDir = await c.w.identity(c.ca, 'charger', charger, { alg: 'ecdsa-p256' });
      writeInstalled(cpDir, { model: 'SIM-1', version: '1.0' });
      c.dirs.set(charger, cpDir);
      const keyDir = c.w.path('gateway-key');
      loadOrCreateGatewayKey(keyDir);
      c.cfg = { storeUrl: schema.url, natsUrl: NATS_URL, stream: bus.stream, prefix: bus.prefix, keyDir, trust: join(c.ca, 'ca.pem'), crl: join(c.ca, 'crl.pem'), env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE } };
    });
    after(async () => {
      await stopCluster(c.nodes, c.skip ? undefined : { schema, natsUrl: NATS_URL, stream: bus.stream });
      c.w.cleanup();
    });
    return c;
  }

  endpoint(id: string): Endpoint {
    return this.w.endpoint(this.dirs.get(id)!, this.w.trust(this.ca), [join(this.ca, 'crl.pem')]);
  }

  /** A node's own --data, holding a copy of the one gateway key. */
  dataOf(node: string): string {
    const d = this.w.path(`data-${node}`);
    mkdirSync(d);
    copyFileSync(join(this.cfg.keyDir, 'gateway-key.pem'), join(d, 'gateway-key.pem'));
    return d;
  }

  /** `image` packed by pub-1 as `version` for the charger. */
  async pack(image: string, version: string): Promise<{ path: string; packageId: string }> {
    const path = this.w.path(`v${version}.evfw`);
    const { packageId } = await packFirmware({
      publisher: this.endpoint('pub-1'),
      input: image,
      output: path,
      version,
      model: 'SIM-1',
      recipients: [{ bundleJson: readFileSync(join(this.dirs.get(this.charger)!, 'bundle.json'), 'utf8') }],
    });
    return { path, packageId };
  }

  /** prov-1's connection to a node, its rollout events appended to `events`. */
  connect(url: string, events: RolloutEvent[]): Promise<GatewayClient> {
    const prov = this.endpoint('prov-1');
    return GatewayClient.connect(url, { chain: prov.id.chain, privateKey: prov.id.privateKey, onRolloutEvent: (e) => events.push(e) });
  }
}
