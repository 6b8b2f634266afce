import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { b64u, fromB64u } from '../../core/base64url.js';
import { certFingerprint } from '../../core/x509/pem.js';
import type { StationRecord } from '../store/store.js';

/** Station ids follow the envelope id syntax, so a station can seal as itself. */
export const STATION_ID = /^[A-Za-z0-9._:-]{1,64}$/;

// scrypt cost for station passwords: 16 MiB and ~50 ms per check, once per connection.
const N = 16384;
const R = 8;
const P = 1;
const KEY_LEN = 32;

function scryptAsync(password: Uint8Array, salt: Uint8Array, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LEN, { N: n, r, p, maxmem: 256 * n * r }, (e, k) => (e ? reject(e) : resolve(k))),
  );
}

/** "scrypt$N$r$p$salt$hash" with base64url salt and hash (the format of StationRecord.passwordHash). */
export async function hashPassword(password: string | Uint8Array): Promise<string> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const salt = randomBytes(16);
  return `scrypt$${N}$${R}$${P}$${b64u(salt)}$${b64u(await scryptAsync(pw, salt, N, R, P))}`;
}

/** Constant-time check of a password against a stored hash; a malformed hash never matches. */
export async function verifyPassword(password: Uint8Array, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  // Bounds keep a corrupted or hostile record from making one check cost more than 64 MiB or a few seconds.
  if (!Number.isSafeInteger(n) || n < 2 || (n & (n - 1)) !== 0 || !Number.isSafeInteger(r) || r < 1 || 128 * n * r > 64 * 1024 * 1024) return false;
  if (!Number.isSafeInteger(p) || p < 1 || p > 4) return false;
  let salt: Uint8Array;
  let want: Uint8Array;
  try {
    salt = fromB64u(parts[4]!);
    want = fromB64u(parts[5]!);
  } catch {
    return false;
  }
  if (want.length !== KEY_LEN) return false;
  return timingSafeEqual(await scryptAsync(password, salt, n, r, p), want);
}

function sameFingerprint(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The password of an `Authorization: Basic` header whose user is `stationId`
 * (OCPP fixes the user to the station id). Passwords may hold any bytes,
 * including ':', as the OCPP security whitepaper allows binary keys.
 */
export function basicAuthPassword(header: string | undefined, stationId: string): Buffer | undefined {
  const m = header === undefined ? null : /^ *[Bb][Aa][Ss][Ii][Cc] +([A-Za-z0-9+/]+=*) *$/.exec(header);
  if (!m) return undefined;
  const userPass = Buffer.from(m[1]!, 'base64');
  const prefix = Buffer.from(stationId + ':', 'utf8');
  if (userPass.length < prefix.length || !userPass.subarray(0, prefix.length).equals(prefix)) return undefined;
  return userPass.subarray(prefix.length);
}

export type Refusal = 'bad-request' | 'unknown-station' | 'no-credentials' | 'bad-password' | 'cert-untrusted' | 'cert-mismatch';

export type AuthResult = { ok: true; profile: 1 | 2 | 3 } | { ok: false; reason: Refusal };

/** Burns the time of one password check, so an unknown id answers no faster than a known one. */
let dummyHash: Promise<string> | undefined;

/**
 * Security profiles: 1 = Basic auth over plain WebSocket, 2 = TLS + Basic
 * auth, 3 = mutual TLS. A client certificate, when one is presented, decides
 * on its own: it must have verified against the server's client CA and its
 * fingerprint must be the one registered for this very station, so a valid
 * certificate of another station is refused even with a correct password.
 */
export async function authenticateStation(station: StationRecord | undefined, stationId: string, req: IncomingMessage, tls: boolean): Promise<AuthResult> {
  if (!STATION_ID.test(stationId)) return { ok: false, reason: 'bad-request' };
  const password = basicAuthPassword(req.headers.authorization, stationId);
  if (!station) {
    if (password) await verifyPassword(password, await (dummyHash ??= hashPassword('unknown station')));
    return { ok: false, reason: 'unknown-station' };
  }
  if (tls) {
    const sock = req.socket as TLSSocket;
    const peer = sock.getPeerCertificate?.(false);
    if (peer?.raw) {
      if (!sock.authorized) return { ok: false, reason: 'cert-untrusted' };
      if (!station.certFingerprint || !sameFingerprint(certFingerprint(peer.raw), station.certFingerprint)) return { ok: false, reason: 'cert-mismatch' };
      return { ok: true, profile: 3 };
    }
  }
  if (!password || !station.passwordHash) return { ok: false, reason: 'no-credentials' };
  if (!(await verifyPassword(password, station.passwordHash))) return { ok: false, reason: 'bad-password' };
  return { ok: true, profile: tls ? 2 : 1 };
}
