import { randomBytes } from 'node:crypto';
import { b64u } from '../core/base64url.js';
import { EvsealError } from '../core/errors.js';
import { pemToDer, certFingerprint } from '../core/x509/pem.js';
import { STATION_ID, hashPassword } from './ocpp/auth.js';
import type { GatewayStore } from './store/store.js';

/** What an operator may see of a station: never the password hash. */
export interface StationSummary {
  id: string;
  /** Basic auth (security profiles 1 and 2) is set up */
  password: boolean;
  /** the client certificate bound to the station (security profile 3) */
  certFingerprint?: string;
  created: string;
}

/** OCPP 2.0.1 bounds BasicAuthPassword to 16..40 characters; evseal asks for the minimum only. */
const MIN_PASSWORD_CHARS = 16;

/**
 * Registers a station, or replaces the credentials of one already
 * registered. With neither a password nor a certificate a random password
 * is generated and returned once: only its scrypt hash is stored.
 */
export async function addStation(
  store: GatewayStore,
  o: { id: string; password?: string; certPem?: string },
  now: number,
): Promise<{ station: StationSummary; updated: boolean; generatedPassword?: string }> {
  if (!STATION_ID.test(o.id)) throw new EvsealError('ERR_USAGE', 'a station id is 1 to 64 of A-Z a-z 0-9 . _ : -');
  if (o.password !== undefined && o.password.length < MIN_PASSWORD_CHARS) {
    throw new EvsealError('ERR_USAGE', `a station password needs at least ${MIN_PASSWORD_CHARS} characters`);
  }
  const generatedPassword = o.password === undefined && o.certPem === undefined ? b64u(randomBytes(24)) : undefined;
  const password = o.password ?? generatedPassword;
  let fingerprint: string | undefined;
  if (o.certPem !== undefined) {
    try {
      fingerprint = certFingerprint(pemToDer(o.certPem, 'CERTIFICATE'));
    } catch {
      throw new EvsealError('ERR_INVALID_INPUT', 'the station certificate is not a PEM certificate');
    }
  }
  const existing = await store.getStation(o.id);
  await store.putStation({
    id: o.id,
    ...(password !== undefined ? { passwordHash: await hashPassword(password) } : {}),
    ...(fingerprint !== undefined ? { certFingerprint: fingerprint } : {}),
    created: existing?.created ?? now,
  });
  const station = summary((await store.getStation(o.id))!);
  return { station, updated: existing !== undefined, ...(generatedPassword ? { generatedPassword } : {}) };
}

function summary(s: { id: string; passwordHash?: string; certFingerprint?: string; created: number }): StationSummary {
  return {
    id: s.id,
    password: s.passwordHash !== undefined,
    ...(s.certFingerprint !== undefined ? { certFingerprint: s.certFingerprint } : {}),
    created: new Date(s.created).toISOString(),
  };
}

export async function listStations(store: GatewayStore): Promise<StationSummary[]> {
  return (await store.listStations()).map(summary);
}
