import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EvsealError } from '../core/errors.js';
import { isRole, isValidId, isValidOperator, type IdentityInfo } from '../core/roles.js';
import { createCrl, createRootCa, loadPrivateKeyPem, pemToDer, readLeafCertificate, signCsr, type SigAlg } from '../core/x509/index.js';
import { verifyData } from '../core/x509/algorithms.js';
import { parseCertDer, canonicalSerialHex } from '../core/x509/cert.js';
import { DerError } from '../core/x509/der.js';
import { writeFileAtomic } from './atomic-file.js';
import { withLockAsync } from './lock.js';

/**
 * A CA directory (the tiny CA behind `evseal pki`):
 *
 *   ca.pem         the root CA certificate (mode 0644)
 *   ca.key         its PKCS#8 PEM private key (mode 0600)
 *   crl.pem        the current CRL (mode 0644)
 *   ca-state.json  bookkeeping (mode 0600):
 *                  {"version":1,"name","alg","crlDays","nextCrlNumber",
 *                   "revoked":[{"serialHex","date"}],
 *                   "issued":[{"serialHex","role","id","operator","notAfter"}]}
 *                  (dates as ISO 8601 strings; nextCrlNumber a JSON number)
 *   ca.lock        present only while an operation runs
 *
 * Every file is written atomically (temp file, fsync, rename, fsync of the
 * directory). Operations on one directory are serialized: within a process
 * by a queue, across processes by ca.lock. ca-state.json is written before
 * crl.pem, so a crash in between can skip a CRL number but never reuse one
 * (relying parties refuse a second, different CRL with a number they hold).
 * Revoked serials stay on the CRL after the certificate expires.
 */

interface Issued extends IdentityInfo {
  serialHex: string;
  notAfter: string;
}

interface CaState {
  version: 1;
  name: string;
  alg: SigAlg;
  crlDays: number;
  nextCrlNumber: number;
  revoked: { serialHex: string; date: string }[];
  issued: Issued[];
}

const DAY_MS = 86_400_000;
const STATE_KEYS = ['version', 'name', 'alg', 'crlDays', 'nextCrlNumber', 'revoked', 'issued'];

const path = (dir: string, f: string): string => join(dir, f);

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` under the directory's in-process queue and its ca.lock file. */
async function exclusive<T>(dir: string, fn: () => Promise<T>, o: { init?: boolean } = {}): Promise<T> {
  if (!o.init && !existsSync(path(dir, 'ca-state.json'))) throw new EvsealError('ERR_NOT_FOUND', `${dir} is not a CA directory (no ca-state.json)`);
  const key = resolve(dir);
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.catch(() => undefined).then(() => withLockAsync(path(dir, 'ca.lock'), fn));
  queues.set(key, run);
  try {
    return await run;
  } finally {
    if (queues.get(key) === run) queues.delete(key);
  }
}

function isoDate(v: unknown): v is string {
  return typeof v === 'string' && Number.isFinite(Date.parse(v));
}

function readState(dir: string): CaState {
  const p = path(dir, 'ca-state.json');
  if (!existsSync(p)) throw new EvsealError('ERR_NOT_FOUND', `${dir} is not a CA directory (no ca-state.json)`);
  const bad = (why: string): never => {
    throw new EvsealError('ERR_STATE', `${p}: ${why}`);
  };
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return bad('not valid JSON');
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) bad('not an object');
  const s = j as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!STATE_KEYS.includes(k)) bad(`unknown key ${k}`);
  if (s.version !== 1) bad('version must be 1');
  if (!isValidOperator(s.name)) bad('bad name');
  if (s.alg !== 'ecdsa-p256' && s.alg !== 'ed25519') bad('bad alg');
  if (typeof s.crlDays !== 'number' || !(s.crlDays > 0)) bad('bad crlDays');
  if (!Number.isSafeInteger(s.nextCrlNumber) || (s.nextCrlNumber as number) < 1) bad('bad nextCrlNumber');
  if (!Array.isArray(s.revoked) || !Array.isArray(s.issued)) bad('revoked and issued must be arrays');
  for (const r of s.revoked as unknown[]) {
    const o = r as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.serialHex !== 'string' || !isoDate(o.date)) bad('bad revoked entry');
  }
  for (const r of s.issued as unknown[]) {
    const o = r as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.serialHex !== 'string' || !isRole(o.role) || !isValidId(o.id) || !isValidOperator(o.operator) || !isoDate(o.notAfter)) {
      bad('bad issued entry');
    }
  }
  return s as unknown as CaState;
}

function writeState(dir: string, s: CaState): void {
  writeFileAtomic(path(dir, 'ca-state.json'), JSON.stringify(s, null, 2) + '\n', 0o600);
}

function readCa(dir: string): { certPem: string; keyPem: string; state: CaState } {
  const state = readState(dir);
  for (const f of ['ca.pem', 'ca.key']) if (!existsSync(path(dir, f))) throw new EvsealError('ERR_NOT_FOUND', `${dir}: ${f} is missing`);
  return { certPem: readFileSync(path(dir, 'ca.pem'), 'utf8'), keyPem: readFileSync(path(dir, 'ca.key'), 'utf8'), state };
}

async function issueCrl(dir: string, ca: { certPem: string; keyPem: string; state: CaState }, now: Date, crlDays: number): Promise<{ crlPem: string; crlNumber: bigint }> {
  if (!(crlDays > 0)) throw new EvsealError('ERR_USAGE', 'crlDays must be positive');
  const crlNumber = BigInt(ca.state.nextCrlNumber);
  const crlPem = await createCrl({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    crlNumber,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + crlDays * DAY_MS),
    revoked: ca.state.revoked.map((r) => ({ serialHex: r.serialHex, date: new Date(r.date) })),
  });
  ca.state.nextCrlNumber += 1;
  writeState(dir, ca.state); // the number is spent before the CRL exists
  writeFileAtomic(path(dir, 'crl.pem'), crlPem, 0o644);
  return { crlPem, crlNumber };
}

function nowOf(o?: { now?: Date }): Date {
  const now = o?.now ?? new Date();
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new EvsealError('ERR_USAGE', 'now must be a valid Date');
  return now;
}

/**
 * Creates a CA in `dir` (created with mode 0700 if missing): a self-signed
 * root (validity 3650 days from `now`), its key, CRL number 1 (empty, next
 * update after `crlDays`, default 7) and ca-state.json. Refuses a directory
 * that exists and is not empty (ERR_USAGE).
 */
export async function initCaDir(dir: string, o: { name: string; alg?: SigAlg; now?: Date; crlDays?: number }): Promise<void> {
  const now = nowOf(o);
  const crlDays = o.crlDays ?? 7;
  if (!Number.isFinite(crlDays) || crlDays <= 0) throw new EvsealError('ERR_USAGE', 'crlDays must be a positive number');
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new EvsealError('ERR_USAGE', `${dir} exists and is not a directory`);
    if (readdirSync(dir).length > 0) throw new EvsealError('ERR_USAGE', `${dir} is not empty; refusing to create a CA there`);
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  await exclusive(dir, async () => {
    if (readdirSync(dir).some((f) => f !== 'ca.lock')) throw new EvsealError('ERR_USAGE', `${dir} is not empty; refusing to create a CA there`);
    const alg = o.alg ?? 'ecdsa-p256';
    const root = await createRootCa({ name: o.name, alg, notBefore: now });
    const state: CaState = { version: 1, name: o.name, alg, crlDays, nextCrlNumber: 1, revoked: [], issued: [] };
    writeFileAtomic(path(dir, 'ca.key'), root.privateKeyPem, 0o600);
    writeFileAtomic(path(dir, 'ca.pem'), root.certPem, 0o644);
    await issueCrl(dir, { certPem: root.certPem, keyPem: root.privateKeyPem, state }, now, crlDays);
  }, { init: true });
}

/** Certifies a CSR with the CA in `dir` (notBefore = now, default validity 365 days) and records the issuance. */
export async function signCsrWithCaDir(
  dir: string,
  csrPem: string,
  o?: { now?: Date; validityDays?: number; keepIdentity?: IdentityInfo },
): Promise<{ certPem: string; serialHex: string }> {
  const now = nowOf(o);
  return exclusive(dir, async () => {
    const ca = readCa(dir);
    const r = await signCsr({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem,
      notBefore: now,
      ...(o?.validityDays !== undefined ? { validityDays: o.validityDays } : {}),
      ...(o?.keepIdentity ? { keepIdentity: o.keepIdentity } : {}),
    });
    const leaf = readLeafCertificate(pemToDer(r.certPem, 'CERTIFICATE'));
    ca.state.issued.push({ serialHex: r.serialHex, role: leaf.role, id: leaf.id, operator: leaf.operator, notAfter: leaf.notAfter.toISOString() });
    writeState(dir, ca.state);
    return r;
  });
}

/**
 * Revokes a certificate issued by the CA in `dir` and publishes a new
 * crl.pem with the next CRL number. The certificate must name this CA as
 * issuer and carry its signature (ERR_USAGE otherwise). Revoking an
 * already revoked certificate only re-issues the CRL.
 */
export async function revokeWithCaDir(dir: string, certPem: string, o?: { now?: Date }): Promise<{ crlPem: string; crlNumber: bigint }> {
  const now = nowOf(o);
  const der = pemToDer(certPem, 'CERTIFICATE');
  return exclusive(dir, async () => {
    const ca = readCa(dir);
    let cert, caCert;
    try {
      cert = parseCertDer(der);
      caCert = parseCertDer(pemToDer(ca.certPem, 'CERTIFICATE'));
    } catch (e) {
      if (e instanceof DerError) throw new EvsealError('ERR_INVALID_INPUT', `certificate: ${e.message}`);
      throw e;
    }
    const { alg } = loadPrivateKeyPem(ca.keyPem);
    if (Buffer.compare(cert.issuer, caCert.subject) !== 0 || cert.sigAlg !== alg || !verifyData(alg, caCert.publicKey, cert.tbs, cert.signature)) {
      throw new EvsealError('ERR_USAGE', 'this certificate was not issued by this CA');
    }
    let serialHex: string;
    try {
      serialHex = canonicalSerialHex(cert.serialHex);
    } catch {
      throw new EvsealError('ERR_INVALID_INPUT', 'certificate serial number is not a positive integer');
    }
    if (!ca.state.revoked.some((r) => r.serialHex === serialHex)) {
      ca.state.revoked.push({ serialHex, date: new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString() });
    }
    return issueCrl(dir, ca, now, ca.state.crlDays);
  });
}

/** Re-issues crl.pem with the next number, thisUpdate = now and nextUpdate = now + crlDays (default: the CA's setting). */
export async function refreshCrl(dir: string, o?: { now?: Date; crlDays?: number }): Promise<{ crlPem: string; crlNumber: bigint }> {
  const now = nowOf(o);
  return exclusive(dir, async () => {
    const ca = readCa(dir);
    return issueCrl(dir, ca, now, o?.crlDays ?? ca.state.crlDays);
  });
}

/** The CA directory's bookkeeping, for status displays. */
export function readCaDirState(dir: string): Readonly<CaState> {
  return readState(dir);
}
