// Test fixture: CAs and endpoint identities in a temporary directory, built
// through the same keystore functions the CLI uses.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCaDir, signCsrWithCaDir } from '../../src/keystore/ca-dir.js';
import { initIdentity, installCert } from '../../src/keystore/identity-dir.js';
import { Endpoint } from '../../src/keystore/endpoint.js';
import { trustPolicyFromCaPem, type SigAlg, type TrustPolicy } from '../../src/core/x509/index.js';
import type { Role } from '../../src/core/roles.js';
import type { SuiteName } from '../../src/core/suites.js';
import type { RolePolicy } from '../../src/core/role-policy.js';

export const T0 = Date.parse('2026-06-01T00:00:00Z');
/** Every test identity's keystore is encrypted under this passphrase. */
export const PASSPHRASE = 'test passphrase, not a secret';

export class World {
  readonly dir = mkdtempSync(join(tmpdir(), 'evseal-test-'));
  now = T0;
  readonly wall = () => this.now;

  path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  async ca(name: string, alg: SigAlg = 'ecdsa-p256'): Promise<string> {
    await initCaDir(this.path(name), { name, alg, now: new Date(this.now - 3600_000) });
    return this.path(name);
  }

  async identity(
    ca: string,
    role: Role,
    id: string,
    o: { operator?: string; alg?: SigAlg; suites?: SuiteName[]; days?: number } = {},
  ): Promise<string> {
    const dir = this.path(`id-${id}`);
    const { csrPem } = await initIdentity(dir, { role, id, operator: o.operator ?? 'ChargeCo', alg: o.alg ?? 'ed25519', suites: o.suites, passphrase: PASSPHRASE });
    const { certPem } = await signCsrWithCaDir(ca, csrPem, { now: new Date(this.now - 60_000), validityDays: o.days ?? 365 });
    installCert(dir, certPem, Math.floor(this.now / 1000), PASSPHRASE);
    return dir;
  }

  trust(ca: string): TrustPolicy {
    return trustPolicyFromCaPem(readFileSync(join(ca, 'ca.pem'), 'utf8'));
  }

  endpoint(dir: string, trust: TrustPolicy, crls: string[], o: { rolePolicy?: RolePolicy; revocationCheck?: boolean } = {}): Endpoint {
    return Endpoint.load(dir, { trust, crls, wall: this.wall, passphrase: PASSPHRASE, ...o });
  }

  bundle(dir: string): string {
    return readFileSync(join(dir, 'bundle.json'), 'utf8');
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
