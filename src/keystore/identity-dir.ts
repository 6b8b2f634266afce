import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { b64u, fromB64u } from '../core/base64url.js';
import { bundleToJSON, signSuites } from '../core/bundle.js';
import { checkShape } from '../core/canonical-json.js';
import { EvsealError } from '../core/errors.js';
import { generatePrekey, prekeyFromJSON, signPrekey, type PrekeyPrivate, type SignedPrekey } from '../core/prekey.js';
import { isRole, validateIdentityInfo, type IdentityInfo } from '../core/roles.js';
import { DEFAULT_SUITES, kemOfSuite, parseSuiteList, type KemName, type SuiteName } from '../core/suites.js';
import { createCsr, derToPem, generateSigningKey, pemToDer, type SigAlg } from '../core/x509/index.js';
import { writeFileAtomic } from './atomic-file.js';
import { SecretStore } from './secret-store.js';
import { readJsonFile } from './json-file.js';

/**
 * ID_DIR layout (see docs/operations.md):
 *   identity.json   role, id, operator, key algorithm, accepted suites, timing settings
 *   keystore.json   how the secret files below are encrypted (scrypt parameters, wrapped data key)
 *   identity.key    the private signing key, PKCS#8 PEM, encrypted (never leaves the endpoint)
 *   csr.pem         the certification request to hand to a CA
 *   cert.pem        the certificate, after `keys install`
 *   prekeys/KID.key.json private prekeys, encrypted; prekeys/public.json the published ones
 *   bundle.json     the public bundle: chain, signed suite list, signed prekeys
 *   state.json      trusted-time mark, CRL state, replay window (encrypted)
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
  /** One-time prekeys kept in stock for session handshakes (replenished by `pki rotate`). */
  oneTimePrekeys: number;
}

export const DEFAULT_SETTINGS: IdentitySettings = {
  prekeyRotationSec: 7 * 86400,
  prekeyGraceSec: 2 * 86400,
  maxLifetimeSec: 3 * 86400,
  defaultLifetimeSec: 86400,
  skewSec: 300,
  oneTimePrekeys: 20,
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
  store: SecretStore;
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
  o: IdentityInfo & {
    alg?: SigAlg;
    suites?: SuiteName[];
    settings?: Partial<IdentitySettings>;
    /** Encrypts the keystore; required unless `plaintext` is explicitly set. */
    passphrase?: string;
    plaintext?: boolean;
  },
): Promise<{ csrPem: string }> {
  validateIdentityInfo(o);
  if (existsSync(p(dir, 'identity.key')) || existsSync(p(dir, 'keystore.json'))) throw new EvsealError('ERR_USAGE', `${dir} already holds an identity`);
  const settings = { ...DEFAULT_SETTINGS, ...o.settings };
  if (settings.maxLifetimeSec > MAX_LIFETIME_CAP_SEC) throw new EvsealError('ERR_USAGE', 'maxLifetimeSec exceeds the 14-day cap');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const store = SecretStore.create(dir, { passphrase: o.passphrase, plaintext: o.plaintext });
  const alg = o.alg ?? 'ecdsa-p256';
  const { privateKey, publicKey } = generateSigningKey(alg);
  const info: IdentityInfo = { role: o.role, id: o.id, operator: o.operator };
  const csrPem = await createCsr({ ...info, privateKey, publicKey });
  const file: IdentityFile = { v: 1, ...info, alg, suites: [...(o.suites ?? DEFAULT_SUITES)], settings };
  store.write('identity.key', privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileAtomic(p(dir, 'identity.json'), JSON.stringify(file, null, 2) + '\n', 0o644);
  writeFileAtomic(p(dir, 'csr.pem'), csrPem, 0o644);
  return { csrPem };
}

function readIdentityFile(dir: string): IdentityFile {
  const o = checkShape(
    readJsonFile(p(dir, 'identity.json'), `${dir} is not an identity directory (no identity.json)`),
    [['v', 'int'], ['role', 'string'], ['id', 'string'], ['operator', 'string'], ['alg', 'string'], ['suites', 'string[]'], ['settings', 'object']],
    'identity.json',
  );
  if (!isRole(o.role) || (o.alg !== 'ecdsa-p256' && o.alg !== 'ed25519')) throw new EvsealError('ERR_STATE', 'identity.json: bad role or alg');
  const s = checkShape(
    o.settings,
    [['prekeyRotationSec', 'int'], ['prekeyGraceSec', 'int'], ['maxLifetimeSec', 'int'], ['defaultLifetimeSec', 'int'], ['skewSec', 'int'], ['oneTimePrekeys', 'int']],
    'identity.json settings',
  ) as unknown as IdentitySettings;
  return { ...(o as unknown as IdentityFile), suites: parseSuiteList(o.suites as string[], 'identity.json suites'), settings: s };
}

/**
 * Completes an identity with its certificate: checks it certifies this
 * endpoint's key and names, then makes the first prekeys and the bundle.
 */
export function installCert(dir: string, certPem: string, now: number, passphrase?: string): { bundlePath: string; renewed: boolean } {
  const file = readIdentityFile(dir);
  const store = SecretStore.open(dir, passphrase);
  const certDer = pemToDer(certPem, 'CERTIFICATE');
  const cert = new X509Certificate(certDer);
  const certifies = (k: KeyObject) => cert.publicKey.export({ type: 'spki', format: 'der' }).equals(createPublicKey(k).export({ type: 'spki', format: 'der' }));
  // Either the current key's certificate, or the one a pending renewal asked for.
  const pendingPem = store.readText(RENEW_KEY);
  const renewed = pendingPem !== undefined && certifies(createPrivateKey(pendingPem));
  if (!renewed && !certifies(readPrivateKey(store))) {
    throw new EvsealError('ERR_USAGE', 'certificate does not certify this identity key');
  }
  const subject = parseSubject(cert.subject);
  if (subject.CN !== file.id || subject.OU !== file.role || subject.O !== file.operator) {
    throw new EvsealError('ERR_USAGE', 'certificate subject does not match identity.json (role, id, operator)');
  }
  if (renewed) {
    // The new key replaces the old one; published prekeys are re-signed under it by rotatePrekeys.
    store.write('identity.key', pendingPem as string);
    store.delete(RENEW_KEY);
  }
  writeFileAtomic(p(dir, 'cert.pem'), derToPem(certDer, 'CERTIFICATE'), 0o644);
  rotatePrekeys(dir, now, { passphrase });
  return { bundlePath: p(dir, 'bundle.json'), renewed };
}

const RENEW_KEY = 'renew.key';

/**
 * Starts a certificate renewal: a new identity key (same algorithm) and a CSR
 * that keeps role, id and operator, written to ID_DIR/renew.csr.pem. The old
 * key stays in use until `installCert` receives the new certificate.
 */
export async function renewIdentity(dir: string, passphrase?: string): Promise<{ csrPem: string; csrPath: string }> {
  const file = readIdentityFile(dir);
  const store = SecretStore.open(dir, passphrase);
  const { privateKey, publicKey } = generateSigningKey(file.alg);
  const csrPem = await createCsr({ role: file.role, id: file.id, operator: file.operator, privateKey, publicKey });
  store.write(RENEW_KEY, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const csrPath = p(dir, 'renew.csr.pem');
  writeFileAtomic(csrPath, csrPem, 0o644);
  return { csrPem, csrPath };
}

export function renewalPending(dir: string): boolean {
  return existsSync(p(dir, RENEW_KEY));
}

function parseSubject(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of s.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function readPrivateKey(store: SecretStore): KeyObject {
  const pem = store.readText('identity.key');
  if (pem === undefined) throw new EvsealError('ERR_NOT_FOUND', `${store.dir} has no identity.key`);
  return createPrivateKey(pem);
}

export function loadIdentity(dir: string, passphrase?: string): LoadedIdentity {
  const file = readIdentityFile(dir);
  const store = SecretStore.open(dir, passphrase);
  const privateKey = readPrivateKey(store);
  const certPath = p(dir, 'cert.pem');
  if (!existsSync(certPath)) throw new EvsealError('ERR_NOT_FOUND', `${dir} has no certificate yet: run 'evseal keys install'`);
  const certDer = pemToDer(readFileSync(certPath, 'utf8'), 'CERTIFICATE');
  return {
    dir,
    store,
    file,
    privateKey,
    certDer,
    certHash: new Uint8Array(createHash('sha256').update(certDer).digest()),
    chain: [certDer],
    prekeys: readPrivatePrekeys(store),
  };
}

function readPrivatePrekeys(store: SecretStore, sub = 'prekeys'): Map<string, PrekeyPrivate> {
  const out = new Map<string, PrekeyPrivate>();
  const pdir = p(store.dir, sub);
  if (!existsSync(pdir)) return out;
  for (const name of readdirSync(pdir)) {
    if (!name.endsWith('.key.json')) continue;
    const o = checkShape(
      JSON.parse(store.readText(`${sub}/${name}`) as string),
      [['kid', 'string'], ['kem', 'string'], ['pub', 'string'], ['sk', 'string'], ['created', 'int'], ['expires', 'int'], ['deleteAfter', 'int']],
      `${sub}/${name}`,
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
  return (JSON.parse(readFileSync(path, 'utf8')) as unknown[]).map((o, i) => prekeyFromJSON(o, `prekeys/public.json[${i}]`));
}

export interface RotationReport {
  created: string[];
  deleted: string[];
  published: string[];
  /** One-time prekeys made to bring the stock back to its target. */
  oneTimeCreated: string[];
}

function prekeyPrivateJSON(k: PrekeyPrivate): string {
  return (
    JSON.stringify({
      kid: k.kid,
      kem: k.kem,
      pub: b64u(k.pub),
      sk: b64u(k.sk),
      created: k.created,
      expires: k.expires,
      deleteAfter: k.deleteAfter,
    }) + '\n'
  );
}

const prekeyPublicJSON = (k: SignedPrekey) => ({ kid: k.kid, kem: k.kem, pub: b64u(k.pub), created: k.created, expires: k.expires, sig: b64u(k.sig) });

/**
 * Makes a new prekey for each KEM the identity's suites need, when the newest
 * is older than the rotation period (or always, with force), republishes the
 * bundle, and deletes private prekeys only when all of these hold: a newer
 * prekey of the same KEM is published, the old one has expired (rotation +
 * grace), and the longest permitted message lifetime has passed since.
 */
export function rotatePrekeys(dir: string, now: number, o: { force?: boolean; passphrase?: string } = {}): RotationReport {
  const id = loadIdentity(dir, o.passphrase);
  const s = id.file.settings;
  const pdir = p(dir, 'prekeys');
  mkdirSync(pdir, { recursive: true, mode: 0o700 });
  const pub = readPublicPrekeys(dir);
  const report: RotationReport = { created: [], deleted: [], published: [], oneTimeCreated: [] };
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
    id.store.write(`prekeys/${g.priv.kid}.key.json`, prekeyPrivateJSON(g.priv));
    pub.push(g.pub);
    id.prekeys.set(g.priv.kid, g.priv);
    report.created.push(g.priv.kid);
  }
  // Delete private halves that are past their deletion time and superseded.
  for (const [kid, k] of id.prekeys) {
    const successor = [...id.prekeys.values()].some((n) => n.kem === k.kem && n.created > k.created);
    if (successor && now >= k.deleteAfter) {
      id.store.delete(`prekeys/${kid}.key.json`);
      id.prekeys.delete(kid);
      report.deleted.push(kid);
    }
  }
  // Published prekeys are (re-)signed for the current certificate, so they
  // stay valid across a certificate renewal.
  const live = pub.filter((k) => k.expires > now && id.prekeys.has(k.kid)).map((k) => signPrekey(k, id.certHash, id.privateKey));
  writeFileAtomic(join(pdir, 'public.json'), JSON.stringify(live.map(prekeyPublicJSON)) + '\n', 0o644);
  report.oneTimeCreated = replenishOneTimePrekeys(id, now);
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


/**
 * One-time prekeys for session handshakes: each is claimed once (from the
 * gateway directory) and never published in bundle.json. Their private halves
 * live in otk/KID.key.json; otk/public.json lists the signed public halves not
 * yet handed out. They use the KEM of the identity's preferred suite.
 */
function replenishOneTimePrekeys(id: LoadedIdentity, now: number): string[] {
  const s = id.file.settings;
  const odir = p(id.dir, 'otk');
  mkdirSync(odir, { recursive: true, mode: 0o700 });
  const stock = readdirSync(odir).filter((n) => n.endsWith('.key.json')).length;
  const kem = kemOfSuite(id.file.suites[0] as SuiteName);
  const published = readPublicOneTime(id.dir);
  const created: string[] = [];
  for (let i = stock; i < s.oneTimePrekeys; i++) {
    const g = generatePrekey(kem, {
      now,
      validitySec: 4 * s.prekeyRotationSec,
      maxLifetimeSec: s.maxLifetimeSec,
      ownerCertHash: id.certHash,
      signingKey: id.privateKey,
    });
    id.store.write(`otk/${g.priv.kid}.key.json`, prekeyPrivateJSON(g.priv));
    published.push(g.pub);
    created.push(g.priv.kid);
  }
  const live = published.filter((k) => existsSync(join(odir, `${k.kid}.key.json`))).map((k) => signPrekey(k, id.certHash, id.privateKey));
  writeFileAtomic(join(odir, 'public.json'), JSON.stringify(live.map(prekeyPublicJSON)) + '\n', 0o644);
  return created;
}

/** The signed public one-time prekeys not yet handed out, for publishing to the gateway directory. */
export function readPublicOneTime(dir: string): SignedPrekey[] {
  const path = join(dir, 'otk', 'public.json');
  if (!existsSync(path)) return [];
  return (JSON.parse(readFileSync(path, 'utf8')) as unknown[]).map((o, i) => prekeyFromJSON(o, `otk/public.json[${i}]`));
}

/** Private one-time prekeys by kid (for accepting handshakes). */
export function readOneTimePrekeys(store: SecretStore): Map<string, PrekeyPrivate> {
  return readPrivatePrekeys(store, 'otk');
}

/** Consumes a one-time prekey: its private half is deleted at once. */
export function consumeOneTimePrekey(store: SecretStore, kid: string): void {
  store.delete(`otk/${kid}.key.json`);
}
