import { EvsealError } from '../errors.js';
import { isRole, isValidOperator, ROLES, type Role } from '../roles.js';
import { anchorInfo } from './anchors.js';
import { certFingerprint, FINGERPRINT_RE, pemToDer } from './pem.js';
import { parseStrictJson } from './strict-json.js';

/**
 * A trust anchor: a CA certificate that may directly certify leaves, scoped
 * to the roles it may certify, optionally with pinned leaf fingerprints.
 *
 * `roles: '*'` means every role. `pins`, when present, lists the only leaf
 * certificates ('sha256:' + hex of SHA-256 over the DER) this anchor may
 * vouch for; an empty list therefore admits nothing (fail closed; the JSON
 * parser refuses an empty list as a likely mistake).
 */
export interface TrustAnchor {
  name: string;
  certDer: Uint8Array;
  roles: Role[] | '*';
  pins?: string[];
}

export interface TrustPolicy {
  anchors: TrustAnchor[];
}

function checkAnchorCert(der: Uint8Array, what: string): void {
  const info = anchorInfo({ name: what, certDer: der, roles: '*' });
  if (info.problem) throw new EvsealError('ERR_INVALID_INPUT', `${what}: ${info.problem}`);
}

/**
 * The simple default: one CA certificate trusted for every role. The anchor
 * is named after the CA's subject CN (an evseal CA always has exactly one),
 * or its fingerprint if it has none. The certificate must satisfy the CA
 * profile (ERR_INVALID_INPUT otherwise).
 */
export function trustPolicyFromCaPem(pem: string): TrustPolicy {
  const certDer = pemToDer(pem, 'CERTIFICATE');
  checkAnchorCert(certDer, 'trust anchor');
  const name = anchorInfo({ name: '', certDer, roles: '*' }).ca?.cn ?? certFingerprint(certDer);
  return { anchors: [{ name, certDer, roles: '*' }] };
}

/** `--trust` auto-detection: a policy file is a JSON object, a CA file is PEM. */
export function isTrustPolicyJson(text: string): boolean {
  return typeof text === 'string' && text.trimStart().startsWith('{');
}

const POLICY_KEYS = new Set(['version', 'anchors']);
const ANCHOR_KEYS = new Set(['name', 'cert', 'roles', 'pins']);
const MAX_ANCHORS = 64;
const MAX_PINS = 1024;

/**
 * Trust policy JSON (docs/protocol.md Appendix A §"Trust policy"):
 *
 *   {"version":1,"anchors":[
 *     {"name":"psp-ca","cert":"psp-ca.pem","roles":["psp"],"pins":["sha256:…"]},
 *     {"name":"ops","cert":"-----BEGIN CERTIFICATE-----\n…","roles":"*"}]}
 *
 * - exactly the keys shown (version and anchors required; per anchor name,
 *   cert and roles required, pins optional); unknown or duplicate keys, at
 *   any level, are refused;
 * - version: the number 1;
 * - anchors: 1..64 entries, names unique, each 1..64 printable characters;
 * - cert: an inline PEM certificate (the string contains
 *   "-----BEGIN CERTIFICATE-----") or a reference that `readPem` turns into
 *   PEM text (a path, resolved by the caller: core does no I/O); the
 *   certificate must satisfy the CA profile;
 * - roles: "*" or a non-empty array of distinct roles;
 * - pins: a non-empty array of distinct 'sha256:' + 64 lowercase hex.
 *
 * The same certificate may appear under several anchors (for example with
 * different roles and pins); validation then uses the first anchor, in file
 * order, that accepts the leaf.
 */
export function parseTrustPolicy(json: string, readPem: (ref: string) => string): TrustPolicy {
  const bad = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `trust policy: ${why}`);
  };
  const v = parseStrictJson(json, 'trust policy');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('not a JSON object');
  const top = v as Record<string, unknown>;
  for (const k of Object.keys(top)) if (!POLICY_KEYS.has(k)) bad(`unknown key ${JSON.stringify(k)}`);
  if (top.version !== 1) bad('version must be 1');
  if (!Array.isArray(top.anchors) || top.anchors.length === 0) bad('anchors must be a non-empty array');
  const list = top.anchors as unknown[];
  if (list.length > MAX_ANCHORS) bad(`at most ${MAX_ANCHORS} anchors`);
  const names = new Set<string>();
  const anchors: TrustAnchor[] = [];
  list.forEach((raw, i) => {
    const at = `anchors[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(`${at} is not an object`);
    const a = raw as Record<string, unknown>;
    for (const k of Object.keys(a)) if (!ANCHOR_KEYS.has(k)) bad(`${at}: unknown key ${JSON.stringify(k)}`);
    if (!isValidOperator(a.name)) bad(`${at}.name must be 1..64 printable characters`);
    const name = a.name as string;
    if (names.has(name)) bad(`duplicate anchor name ${JSON.stringify(name)}`);
    names.add(name);

    if (typeof a.cert !== 'string' || a.cert.length === 0) bad(`${at}.cert must be a path or an inline PEM certificate`);
    const ref = a.cert as string;
    const pem = ref.includes('-----BEGIN CERTIFICATE-----') ? ref : readPem(ref);
    const certDer = pemToDer(pem, 'CERTIFICATE');
    checkAnchorCert(certDer, `${at} (${name})`);

    let roles: Role[] | '*';
    if (a.roles === '*') roles = '*';
    else if (Array.isArray(a.roles) && a.roles.length > 0) {
      const rs = a.roles as unknown[];
      for (const r of rs) if (!isRole(r)) bad(`${at}.roles: ${JSON.stringify(r)} is not a role (${ROLES.join(', ')})`);
      if (new Set(rs).size !== rs.length) bad(`${at}.roles has duplicates`);
      roles = [...(rs as Role[])];
    } else {
      return bad(`${at}.roles must be "*" or a non-empty array of roles`);
    }

    const anchor: TrustAnchor = { name, certDer, roles };
    if ('pins' in a) {
      if (!Array.isArray(a.pins) || a.pins.length === 0 || a.pins.length > MAX_PINS) bad(`${at}.pins must be a non-empty array of fingerprints`);
      const ps = a.pins as unknown[];
      for (const p of ps) if (typeof p !== 'string' || !FINGERPRINT_RE.test(p)) bad(`${at}.pins: ${JSON.stringify(p)} is not 'sha256:' + 64 lowercase hex`);
      if (new Set(ps).size !== ps.length) bad(`${at}.pins has duplicates`);
      anchor.pins = [...(ps as string[])];
    }
    anchors.push(anchor);
  });
  return { anchors };
}
