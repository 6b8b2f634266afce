import { EvsealError } from './errors.js';

/**
 * The roles an identity certificate can carry (in the subject OU, see
 * docs/protocol.md Appendix A). The list is closed: a certificate whose OU is not
 * one of these strings is malformed for evseal.
 */
export const ROLES = [
  'charger',
  'service-tool',
  'psp',
  'emsp',
  'fleet',
  'provisioning',
  'firmware-publisher',
  'gateway',
] as const;

export type Role = (typeof ROLES)[number];

const ROLE_SET: ReadonlySet<string> = new Set(ROLES);

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && ROLE_SET.has(x);
}

/** Who an identity certificate names: subject CN = id, OU = role, O = operator. */
export interface IdentityInfo {
  role: Role;
  id: string;
  operator: string;
}

/** id: 1..64 characters from [A-Za-z0-9._:-] (ASCII only, so it is also a safe file and log token). */
export const ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

/** A message id as the gateway routes it: 1..64 of [A-Za-z0-9_-] (no dots, no separators: safe as a file name). */
export const MSG_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * operator: 1..64 Unicode code points, none of them a control character
 * (C0, DEL, C1), a line/paragraph separator, a lone surrogate or a
 * non-character. Leading/trailing spaces are refused so that two operators
 * never differ only by invisible padding.
 */
export function isValidOperator(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const cps = [...s];
  if (cps.length < 1 || cps.length > 64) return false;
  if (s.trim() !== s) return false;
  for (const c of cps) {
    const cp = c.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return false;
    if (cp === 0x2028 || cp === 0x2029) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false; // lone surrogate
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  }
  return true;
}

export function isValidId(s: unknown): s is string {
  return typeof s === 'string' && ID_RE.test(s);
}

/** Throws ERR_INVALID_INPUT unless `info` is a well-formed IdentityInfo (extra properties are ignored). */
export function validateIdentityInfo(info: unknown): asserts info is IdentityInfo {
  if (typeof info !== 'object' || info === null) throw new EvsealError('ERR_INVALID_INPUT', 'identity: not an object');
  const o = info as Record<string, unknown>;
  if (!isRole(o.role)) throw new EvsealError('ERR_INVALID_INPUT', `identity: unknown role (expected one of ${ROLES.join(', ')})`);
  if (!isValidId(o.id)) throw new EvsealError('ERR_INVALID_INPUT', 'identity: id must be 1..64 characters of [A-Za-z0-9._:-]');
  if (!isValidOperator(o.operator)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'identity: operator must be 1..64 printable characters, no control characters, no leading/trailing space');
  }
}

export function sameIdentity(a: IdentityInfo, b: IdentityInfo): boolean {
  return a.role === b.role && a.id === b.id && a.operator === b.operator;
}
