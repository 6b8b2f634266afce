// Firmware test fixture: a maker CA that certifies the firmware publisher, an
// operator CA for the chargers, a rogue CA allowed only for chargers, and the
// trust policies on each side.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { World } from '../helpers/world.js';
import { pemToDer, type TrustPolicy } from '../../src/core/x509/index.js';
import type { Role } from '../../src/core/roles.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { writeInstalled } from '../../src/firmware/installed.js';

export const MODEL = 'EVB-22';

export class FirmwareWorld extends World {
  cas!: { op: string; maker: string; rogue: string };
  publisher!: string;
  devices: string[] = [];
  outsider!: string;

  static async create(nDevices = 2): Promise<FirmwareWorld> {
    const w = new FirmwareWorld();
    w.cas = { op: await w.ca('op'), maker: await w.ca('maker'), rogue: await w.ca('rogue') };
    w.publisher = await w.identity(w.cas.maker, 'firmware-publisher', 'fw-pub', { alg: 'ecdsa-p256' });
    for (let i = 1; i <= nDevices; i++) w.devices.push(await w.identity(w.cas.op, 'charger', `CP-00${i}`, { alg: 'ecdsa-p256' }));
    w.outsider = await w.identity(w.cas.op, 'charger', 'CP-999', { alg: 'ecdsa-p256' });
    for (const d of [...w.devices, w.outsider]) writeInstalled(d, { model: MODEL, version: '1.0.0' });
    return w;
  }

  anchor(name: keyof FirmwareWorld['cas'], roles: Role[]): TrustPolicy['anchors'][number] {
    return { name, certDer: pemToDer(readFileSync(join(this.cas[name], 'ca.pem'), 'utf8'), 'CERTIFICATE'), roles };
  }

  /** What a device trusts: chargers from the operator and the rogue CA, firmware only from the maker. */
  deviceTrust(): TrustPolicy {
    return { anchors: [this.anchor('op', ['charger']), this.anchor('maker', ['firmware-publisher']), this.anchor('rogue', ['charger'])] };
  }

  /** What a publisher trusts to name recipients. */
  publisherTrust(): TrustPolicy {
    return { anchors: [this.anchor('op', ['charger'])] };
  }

  crls(): string[] {
    return Object.values(this.cas).map((c) => join(c, 'crl.pem'));
  }

  publisherEp(dir = this.publisher): Endpoint {
    return this.endpoint(dir, this.publisherTrust(), [join(this.cas.op, 'crl.pem')]);
  }

  deviceEp(dir: string, o: { crls?: string[]; revocationCheck?: boolean } = {}): Endpoint {
    return this.endpoint(dir, this.deviceTrust(), o.crls ?? this.crls(), { revocationCheck: o.revocationCheck });
  }

  bundles(dirs: string[] = this.devices): { bundleJson: string }[] {
    return dirs.map((d) => ({ bundleJson: this.bundle(d) }));
  }

  /** Files in a directory that an aborted write could have left (temp files, partial outputs). */
  leftovers(dir: string, keep: Set<string>): string[] {
    return readdirSync(dir).filter((f) => !keep.has(f));
  }

  writeFile(name: string, data: Uint8Array): string {
    const p = this.path(name);
    writeFileSync(p, data);
    return p;
  }
}

export function noOutput(out: string): boolean {
  return !existsSync(out) && !readdirSync(dirname(out)).some((f) => f.startsWith(`.${basename(out)}.`));
}
