import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadIdentity, renewalPending } from './identity-dir.js';
import { loadState } from './endpoint-state.js';
import { kemOfSuite } from '../core/suites.js';

/** Renew when less than this share of the certificate's lifetime is left. */
export const RENEW_WHEN_LEFT = 1 / 3;

export interface KeyStatus {
  id: string;
  role: string;
  operator: string;
  alg: string;
  keystore: 'encrypted' | 'plaintext';
  identityKeyAgeDays: number;
  certificate: { serial: string; notBefore: string; notAfter: string; daysLeft: number; renewalPending: boolean };
  prekeys: { kid: string; kem: string; created: string; expires: string; ageDays: number; deleteAfter: string }[];
  oneTimePrekeys: { stock: number; target: number };
  trustedTime: string | null;
  due: string[];
}

const iso = (sec: number) => new Date(sec * 1000).toISOString();
const days = (ms: number) => Math.round((ms / 86400_000) * 10) / 10;

/** What `evseal keys status` shows: key ages, expiries, prekey stock and what is due. */
export function keyStatus(dir: string, now: number, passphrase?: string): KeyStatus {
  const id = loadIdentity(dir, passphrase);
  const s = id.file.settings;
  const cert = new X509Certificate(id.certDer);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  const prekeys = [...id.prekeys.values()].sort((a, b) => b.created - a.created);
  const nowSec = Math.floor(now / 1000);
  const due: string[] = [];
  for (const kem of new Set(id.file.suites.map(kemOfSuite))) {
    const newest = prekeys.find((k) => k.kem === kem);
    if (!newest || nowSec - newest.created >= s.prekeyRotationSec) {
      due.push(`rotate-prekeys (${kem})`);
    }
  }
  if (prekeys.some((k) => nowSec >= k.deleteAfter && prekeys.some((n) => n.kem === k.kem && n.created > k.created))) {
    due.push('delete-expired-prekeys');
  }
  const odir = join(dir, 'otk');
  const stock = existsSync(odir) ? readdirSync(odir).filter((n) => n.endsWith('.key.json')).length : 0;
  if (stock < s.oneTimePrekeys) due.push('replenish-one-time-prekeys');
  const pending = renewalPending(dir);
  if (now > notAfter) due.push('certificate-expired');
  else if (!pending && notAfter - now < (notAfter - notBefore) * RENEW_WHEN_LEFT) due.push('renew-certificate');
  if (pending) due.push('install-renewed-certificate');
  const state = loadState(id.store, () => now);
  return {
    id: id.file.id,
    role: id.file.role,
    operator: id.file.operator,
    alg: id.file.alg,
    keystore: id.store.encrypted ? 'encrypted' : 'plaintext',
    identityKeyAgeDays: days(now - statSync(join(dir, 'identity.key')).mtimeMs),
    certificate: { serial: cert.serialNumber.toLowerCase(), notBefore: new Date(notBefore).toISOString(), notAfter: new Date(notAfter).toISOString(), daysLeft: days(notAfter - now), renewalPending: pending },
    prekeys: prekeys.map((k) => ({ kid: k.kid, kem: k.kem, created: iso(k.created), expires: iso(k.expires), ageDays: days(now - k.created * 1000), deleteAfter: iso(k.deleteAfter) })),
    oneTimePrekeys: { stock, target: s.oneTimePrekeys },
    trustedTime: state.clock.mark > 0 ? new Date(state.clock.mark).toISOString() : null,
    due,
  };
}
