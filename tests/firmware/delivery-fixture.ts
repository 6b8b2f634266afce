// Fixture for the firmware delivery and rollout tests: a CA, a firmware
// publisher, the operator's provisioning identity, P-256 chargers with an
// installed-firmware record, packages packed for them with the real
// packFirmware, and the real gateway (startGateway: router, SQLite store,
// audit log, OCPP built-in CSMS) on 127.0.0.1 with the chargers registered.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { World } from '../helpers/world.js';
import { startGateway, type GatewayOptions, type RunningGateway } from '../../src/gateway/server.js';
import { addStation } from '../../src/gateway/stations.js';
import { GatewayClient, type ClientOptions } from '../../src/client/gateway-client.js';
import { packFirmware } from '../../src/firmware/pack.js';
import { writeInstalled } from '../../src/firmware/installed.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';

export const PASSWORD = 'correct horse battery staple';
export const MODEL = 'SIM-1';

export class FirmwareWorld {
  readonly w = new World();
  ca = '';
  crls: string[] = [];
  gw!: RunningGateway;
  readonly dirs = new Map<string, string>();

  async start(chargerIds: string[], o: Partial<GatewayOptions> = {}): Promise<void> {
    this.w.now = Date.now();
    this.ca = await this.w.ca('ca');
    this.crls = [join(this.ca, 'crl.pem')];
    this.dirs.set('pub-1', await this.w.identity(this.ca, 'firmware-publisher', 'pub-1'));
    this.dirs.set('prov-1', await this.w.identity(this.ca, 'provisioning', 'prov-1'));
    this.dirs.set('tool-1', await this.w.identity(this.ca, 'service-tool', 'tool-1'));
    for (const id of chargerIds) {
      const dir = await this.w.identity(this.ca, 'charger', id, { alg: 'ecdsa-p256' });
      writeInstalled(dir, { model: MODEL, version: '1.0' });
      this.dirs.set(id, dir);
    }
    // FW_LOG=FILE keeps the gateway's debug log, to see why a run failed
    const log = process.env.FW_LOG ? pino({ level: 'debug' }, pino.destination({ dest: process.env.FW_LOG, sync: true })) : pino({ level: 'silent' });
    this.gw = await startGateway({ port: 0, dataDir: this.w.path('data'), trust: this.w.trust(this.ca), crlFiles: this.crls, log, ...o });
    for (const id of chargerIds) await addStation(this.gw.store, { id, password: PASSWORD }, Date.now());
  }

  endpoint(id: string): Endpoint {
    return this.w.endpoint(this.dirs.get(id)!, this.w.trust(this.ca), this.crls);
  }

  /** A random image of `bytes` bytes in the test directory. */
  image(name: string, bytes: number): { path: string; data: Buffer } {
    const data = randomBytes(bytes);
    const path = this.w.path(name);
    writeFileSync(path, data);
    return { path, data };
  }

  /** Packs `image` for `devices` as pub-1. */
  async pack(image: string, out: string, o: { version: string; model?: string; devices: string[] }): Promise<{ path: string; packageId: string }> {
    const path = this.w.path(out);
    const r = await packFirmware({
      publisher: this.endpoint('pub-1'),
      input: image,
      output: path,
      version: o.version,
      model: o.model ?? MODEL,
      recipients: o.devices.map((d) => ({ bundleJson: readFileSync(join(this.dirs.get(d)!, 'bundle.json'), 'utf8') })),
    });
    return { path, packageId: r.packageId };
  }

  async client(id: string, o: Partial<ClientOptions> = {}): Promise<GatewayClient> {
    const ep = this.endpoint(id);
    const gc = await GatewayClient.connect(this.gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey, ...o });
    // published, so the gateway routes the stations' answers (ocpp-result) back to it
    await gc.publishBundle(readFileSync(join(this.dirs.get(id)!, 'bundle.json'), 'utf8'));
    return gc;
  }

  httpBase(): string {
    return this.gw.url.replace(/^ws/, 'http');
  }

  async close(): Promise<void> {
    await this.gw?.close();
    this.w.cleanup();
  }
}

/** Polls `cond` until it holds; fails with `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
