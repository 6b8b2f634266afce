import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCaDir, signCsrWithCaDir } from '../keystore/ca-dir.js';
import { initIdentity, installCert, rotatePrekeys } from '../keystore/identity-dir.js';
import { Endpoint } from '../keystore/endpoint.js';
import { loadTrust } from '../keystore/trust-files.js';
import type { Role } from '../core/roles.js';
import type { TrustPolicy } from '../core/x509/index.js';

export const PASSPHRASE = 'evseal demo passphrase (not a secret)';

/**
 * The demo's parties: five CAs, each scoped by trust policy to the roles it
 * may certify (the operator's CA cannot certify a PSP or a fleet backend, so
 * the operator that runs the CSMS cannot read their traffic; only the OEM's
 * firmware root can certify a firmware publisher), and the endpoints of
 * every flow, each with its own encrypted keystore.
 */
export const CAS = {
  op: { name: 'ChargeCo Operator CA', roles: ['charger', 'provisioning'] },
  oem: { name: 'VoltWorks OEM Root', roles: ['service-tool', 'charger'] },
  psp: { name: 'PayCo PSP CA', roles: ['psp'] },
  fleet: { name: 'FleetCo CA', roles: ['fleet'] },
  oemFw: { name: 'VoltWorks Firmware Root', roles: ['firmware-publisher'] },
} as const;
export type CaName = keyof typeof CAS;

export interface DemoWorld {
  dir: string;
  caDir: (ca: CaName) => string;
  crls: string[];
  /** what the gateway and the backends trust */
  backendTrust: TrustPolicy;
  /** what a charger trusts: service tools only from the OEM root, firmware only from the OEM firmware root, chargers and provisioning from the operator */
  chargerTrust: TrustPolicy;
  identity(ca: CaName, role: Role, id: string, operator: string): Promise<string>;
  endpoint(dir: string, trust: TrustPolicy): Endpoint;
}

function writePolicy(path: string, anchors: { name: string; cert: string; roles: readonly string[] }[]): void {
  writeFileSync(path, JSON.stringify({ version: 1, anchors }, null, 2) + '\n');
}

export async function makeWorld(dir: string): Promise<DemoWorld> {
  mkdirSync(dir, { recursive: true });
  const now = Date.now();
  const caDir = (ca: CaName) => join(dir, `${ca}-ca`);
  for (const [k, c] of Object.entries(CAS)) await initCaDir(caDir(k as CaName), { name: c.name, now: new Date(now - 3600_000) });
  const anchor = (ca: CaName, roles: readonly string[]) => ({ name: CAS[ca].name, cert: join(caDir(ca), 'ca.pem'), roles });
  writePolicy(join(dir, 'backend-trust.json'), (Object.keys(CAS) as CaName[]).map((k) => anchor(k, CAS[k].roles)));
  writePolicy(join(dir, 'charger-trust.json'), [anchor('op', ['charger', 'provisioning']), anchor('oem', ['service-tool']), anchor('psp', ['psp']), anchor('fleet', ['fleet']), anchor('oemFw', ['firmware-publisher'])]);
  const crls = (Object.keys(CAS) as CaName[]).map((k) => join(caDir(k), 'crl.pem'));
  return {
    dir,
    caDir,
    crls,
    backendTrust: loadTrust(join(dir, 'backend-trust.json')),
    chargerTrust: loadTrust(join(dir, 'charger-trust.json')),
    async identity(ca, role, id, operator) {
      // Keys are made "on the device"; only the CSR goes to the CA.
      const d = join(dir, 'ids', id);
      const { csrPem } = await initIdentity(d, { role, id, operator, passphrase: PASSPHRASE });
      const { certPem } = await signCsrWithCaDir(caDir(ca), csrPem, { now: new Date(now - 60_000) });
      installCert(d, certPem, Math.floor(now / 1000), PASSPHRASE);
      if (role === 'charger') rotatePrekeys(d, Math.floor(now / 1000), { passphrase: PASSPHRASE });
      return d;
    },
    endpoint(d, trust) {
      return Endpoint.load(d, { trust, crls, passphrase: PASSPHRASE });
    },
  };
}
