import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { b64u, fromB64u } from '../core/base64url.js';
import { bundleToJSON, signSuites } from '../core/bundle.js';
import { checkShape } from '../core/canonical-json.js';
import { EvsealError } from '../core/errors.js';
import { generatePrekey, type PrekeyPrivate, type SignedPrekey } from '../core/prekey.js';
import { isRole, validateIdentityInfo, type IdentityInfo } from '../core/roles.js';
import { DEFAULT_SUITES, kemOfSuite, parseSuiteList, type KemName, type SuiteName } from '../core/suites.js';
import { createCsr, derToPem, generateSigningKey, pemToDer, type SigAlg } from '../core/x509/index.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * ID_DIR layout (see docs/operations.md):
 *   identity.json   role, id, operator, key algorithm, accepted suites, timing settings
 *   identity.key    PKCS#8 PEM private signing key (mode 0600; never leaves the endpoint)
 *   csr.pem         the certification request to hand to a CA
 *   cert.pem        the certificate, after `keys install`
 *   prekeys/KID.key.json private prekeys (mode 0600); prekeys/public.json the published ones
 *   bundle.json     the public bundle: chain, signed suite list, signed prekeys
 *   state.json      trusted-time mark, CRL state, replay window
 *   security.log    JSON lines: the precise reason for every refused input
 */
export interface IdentitySettings {
  /** Seconds a prekey is the newest one before `pki rotate` replaces it. */
  prekeyRotationSec: number;
  /** Seconds a superseded prekey stays in the bundle for senders with an old copy. */
  prekeyGraceSec: number;
  /** Longest envelope lifetime accepted (and used as the prekey deletion delay). */
  maxLifetimeSec: number;
  /** Default envelope lifetime when sealing. */
  defaultLifetimeSec: number;
  /** Tolerated clock skew between endpoints. */
  skewSec: number;
}

export const DEFAULT_SETTINGS: IdentitySettings = {
  prekeyRotationSec: 7 * 86400,
  prekeyGraceSec: 2 * 86400,
  maxLifetimeSec: 3 * 86400,
  defaultLifetimeSec: 86400,
  skewSec: 300,
};
/** The cap on any configured message lifetime: the forward-secrecy bound of one-shot envelopes. */
export const MAX_LIFETIME_CAP_SEC = 14 * 86400;

export interface IdentityFile extends IdentityInfo {
  v: 1;
  alg: SigAlg;
  suites: SuiteName[];
  settings: IdentitySettings;
}

export interface LoadedIdentity {
  dir: string;
  file: IdentityFile;
  privateKey: KeyObject;
  certDer: Uint8Array;
  certHash: Uint8Array;
  chain: Uint8Array[];
  prekeys: Map<string, PrekeyPrivate>;
}

const p = (dir: string, name: string) => join(dir, name);

export async function initIdentity(
  dir: string,
  o: IdentityInfo & { alg?: SigAlg; suites?: SuiteName[]; settings?: Partial<IdentitySettings> },
): Promise<{ csrPem: string }> {
  validateIdentityInfo(o);
  if (existsSync(p(dir, 'identity.key'))) throw new EvsealError('ERR_USAGE', `${dir} already holds an identity`);
  const settings = { ...DEFAULT_SETTINGS, ...o.settings };
  if (settings.maxLifetimeSec > MAX_LIFETIME_CAP_SEC) throw new EvsealError('ERR_USAGE', 'maxLifetimeSec exceeds the 14-day cap');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const alg = o.alg ?? 'ecdsa-p256';
  const { privateKey, publicKey } = generateSigningKey(alg);
  const info: IdentityInfo = { role: o.role, id: o.id, operator: o.operator };
  const csrPem = await createCsr({ ...info, privateKey, publicKey });
  const file: IdentityFile = { v: 1, ...info, alg, suites: [...(o.suites ?? DEFAULT_SUITES)], settings };
  writeFileAtomic(p(dir, 'identity.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeFileAtomic(p(dir, 'identity.json'), JSON.stringify(file, null, 2) + '\n', 0o644);
  writeFileAtomic(p(dir, 'csr.pem'), csrPem, 0o644);
  return { csrPem };
}

function readIdentityFile(dir: string): IdentityFile {
  const path = p(dir, 'identity.json');
  if (!existsSync(path)) throw new EvsealError('ERR_NOT_FOUND', `${dir} is not an identity directory (no identity.json)`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new EvsealError('ERR_STATE', `${path} is not valid JSON`);
  }
  const o = checkShape(
    v,
    [['v', 'int'], ['role', 'string'], ['id', 'string'], ['operator', 'string'], ['alg', 'string'], ['suites', 'string[]'], ['settings', 'object']],
    'identity.json',
  );
  if (!isRole(o.role) || (o.alg !== 'ecdsa-p256' && o.alg !== 'ed25519')) throw new EvsealError('ERR_STATE', 'identity.json: bad role or alg');
  const s = checkShape(
    o.settings,
    [['prekeyRotationSec', 'int'], ['prekeyGraceSec', 'int'], ['maxLifetimeSec', 'int'], ['defaultLifetimeSec', 'int'], ['skewSec', 'int']],
    'identity.json settings',
  ) as unknown as IdentitySettings;
  return { ...(o as unknown as IdentityFile), suites: parseSuiteList(o.suites as string[], 'identity.json suites'), settings: s };
}

/**
 * Completes an identity with its certificate: checks it certifies this
 * endpoint's key and names, then makes the first prekeys and the bundle.
 */
export function installCert(dir: string, certPem: string, now: number): { bundlePath: string } {
  const file = readIdentityFile(dir);
  const privateKey = readPrivateKey(dir);
  const certDer = pemToDer(certPem, 'CERTIFICATE');
  const cert = new X509Certificate(certDer);
  const mine = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(mine)) {
    throw new EvsealError('ERR_USAGE', 'certificate does not certify this identity key');
  }
  const subject = parseSubject(cert.subject);
  if (subject.CN !== file.id || subject.OU !== file.role || subject.O !== file.operator) {
    throw new EvsealError('ERR_USAGE', 'certificate subject does not match identity.json (role, id, operator)');
  }
  writeFileAtomic(p(dir, 'cert.pem'), derToPem(certDer, 'CERTIFICATE'), 0o644);
  rotatePrekeys(dir, now, { force: true });
  return { bundlePath: p(dir, 'bundle.json') };
}

function parseSubject(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of s.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function readPrivateKey(dir: string): KeyObject {
  const path = p(dir, 'identity.key');
  if (!existsSync(path)) throw new EvsealError('ERR_NOT_FOUND', `${dir} has no identity.key`);
  return createPrivateKey(readFileSync(path, 'utf8'));
}

export function loadIdentity(dir: string): LoadedIdentity {
  const file = readIdentityFile(dir);
  const privateKey = readPrivateKey(dir);
  const certPath = p(dir, 'cert.pem');
  if (!existsSync(certPath)) throw new EvsealError('ERR_NOT_FOUND', `${dir} has no certificate yet: run 'evseal keys install'`);
  const certDer = pemToDer(readFileSync(certPath, 'utf8'), 'CERTIFICATE');
  return {
    dir,
    file,
    privateKey,
    certDer,
    certHash: new Uint8Array(createHash('sha256').update(certDer).digest()),
    chain: [certDer],
    prekeys: readPrivatePrekeys(dir),
  };
}

function readPrivatePrekeys(dir: string): Map<string, PrekeyPrivate> {
  const out = new Map<string, PrekeyPrivate>();
  const pdir = p(dir, 'prekeys');
  if (!existsSync(pdir)) return out;
  for (const name of readdirSync(pdir)) {
    if (!name.endsWith('.key.json')) continue;
    const o = checkShape(
      JSON.parse(readFileSync(join(pdir, name), 'utf8')),
      [['kid', 'string'], ['kem', 'string'], ['pub', 'string'], ['sk', 'string'], ['created', 'int'], ['expires', 'int'], ['deleteAfter', 'int']],
      `prekey ${name}`,
    );
    out.set(o.kid as string, {
      kid: o.kid as string,
      kem: o.kem as KemName,
      pub: fromB64u(o.pub),
      sk: fromB64u(o.sk),
      created: o.created as number,
      expires: o.expires as number,
      deleteAfter: o.deleteAfter as number,
    });
  }
  return out;
}

function readPublicPrekeys(dir: string): SignedPrekey[] {
  const path = join(dir, 'prekeys', 'public.json');
  if (!existsSync(path)) return [];
  const arr = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string | number>[];
  return arr.map((o) => ({
    kid: o.kid as string,
    kem: o.kem as KemName,
    pub: fromB64u(o.pub),
    created: o.created as number,
    expires: o.expires as number,
    sig: fromB64u(o.sig),
  }));
}

export interface RotationReport {
  created: string[];
  deleted: string[];
  published: string[];
}

/**
 * Makes a new prekey for each KEM the identity's suites need, when the newest
 * is older than the rotation period (or always, with force), republishes the
 * bundle, and deletes private prekeys only when all of these hold: a newer
 * prekey of the same KEM is published, the old one has expired (rotation +
 * grace), and the longest permitted message lifetime has passed since.
 */
export function rotatePrekeys(dir: string, now: number, o: { force?: boolean } = {}): RotationReport {
  const id = loadIdentity(dir);
  const s = id.file.settings;
  const pdir = p(dir, 'prekeys');
  mkdirSync(pdir, { recursive: true, mode: 0o700 });
  const pub = readPublicPrekeys(dir);
  const report: RotationReport = { created: [], deleted: [], published: [] };
  const kems = [...new Set(id.file.suites.map(kemOfSuite))];
  for (const kem of kems) {
    const newest = pub.filter((k) => k.kem === kem).sort((a, b) => b.created - a.created)[0];
    if (!o.force && newest && now - newest.created < s.prekeyRotationSec) continue;
    const g = generatePrekey(kem, {
      now,
      validitySec: s.prekeyRotationSec + s.prekeyGraceSec,
      maxLifetimeSec: s.maxLifetimeSec,
      ownerCertHash: id.certHash,
      signingKey: id.privateKey,
    });
    writeFileAtomic(
      join(pdir, `${g.priv.kid}.key.json`),
      JSON.stringify({
        kid: g.priv.kid,
        kem: g.priv.kem,
        pub: b64u(g.priv.pub),
        sk: b64u(g.priv.sk),
        created: g.priv.created,
        expires: g.priv.expires,
        deleteAfter: g.priv.deleteAfter,
      }) + '\n',
      0o600,
    );
    pub.push(g.pub);
    id.prekeys.set(g.priv.kid, g.priv);
    report.created.push(g.priv.kid);
  }
  // Delete private halves that are past their deletion time and superseded.
  for (const [kid, k] of id.prekeys) {
    const successor = [...id.prekeys.values()].some((n) => n.kem === k.kem && n.created > k.created);
    if (successor && now >= k.deleteAfter) {
      unlinkSync(join(pdir, `${kid}.key.json`));
      id.prekeys.delete(kid);
      report.deleted.push(kid);
    }
  }
  const live = pub.filter((k) => k.expires > now && id.prekeys.has(k.kid));
  writeFileAtomic(
    join(pdir, 'public.json'),
    JSON.stringify(live.map((k) => ({ ...k, pub: b64u(k.pub), sig: b64u(k.sig) }))) + '\n',
    0o644,
  );
  const suitesIssued = now;
  const bundle = bundleToJSON({
    v: 1,
    chain: id.chain,
    suites: id.file.suites,
    suitesIssued,
    suitesSig: signSuites(id.file.suites, suitesIssued, id.certHash, id.privateKey),
    prekeys: live.sort((a, b) => b.created - a.created),
  });
  writeFileAtomic(p(dir, 'bundle.json'), bundle, 0o644);
  report.published = live.map((k) => k.kid);
  return report;
}

export { readIdentityFile };
