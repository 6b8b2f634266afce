import { createHash, type KeyObject } from 'node:crypto';
import { b64u, fromB64u } from './base64url.js';
import { i2osp, lp, utf8 } from './bytes.js';
import { checkShape } from './canonical-json.js';
import { EvsealError } from './errors.js';
import { KEM_IDS, isKemName, type KemName } from './suites.js';
import { signWith, verifyWith } from './signature.js';
import { kemByName } from './kem-registry.js';

/** A signed, expiring KEM public key that senders encapsulate to. */
export interface SignedPrekey {
  kid: string;
  kem: KemName;
  pub: Uint8Array;
  created: number; // Unix seconds
  expires: number; // Unix seconds
  sig: Uint8Array;
}

/** The private half, kept on the endpoint only. */
export interface PrekeyPrivate {
  kid: string;
  kem: KemName;
  pub: Uint8Array;
  sk: Uint8Array;
  created: number;
  expires: number;
  /** Unix seconds after which the private key is deleted (expiry + longest message lifetime). */
  deleteAfter: number;
}

/** kid = base64url(first 16 bytes of SHA-256(u16 kemId || pub)). */
export function prekeyId(kem: KemName, pub: Uint8Array): string {
  const h = createHash('sha256').update(i2osp(KEM_IDS[kem], 2)).update(pub).digest();
  return b64u(new Uint8Array(h.subarray(0, 16)));
}

function signedBytes(p: Omit<SignedPrekey, 'sig'>, ownerCertHash: Uint8Array): Uint8Array {
  return lp(ownerCertHash, utf8(p.kid), utf8(p.kem), p.pub, i2osp(p.created, 8), i2osp(p.expires, 8));
}

export function generatePrekey(
  kem: KemName,
  o: { now: number; validitySec: number; maxLifetimeSec: number; ownerCertHash: Uint8Array; signingKey: KeyObject },
): { pub: SignedPrekey; priv: PrekeyPrivate } {
  const kp = kemByName(kem).generateKeyPair();
  const base = { kid: prekeyId(kem, kp.publicKey), kem, pub: kp.publicKey, created: o.now, expires: o.now + o.validitySec };
  return {
    pub: signPrekey(base, o.ownerCertHash, o.signingKey),
    priv: { ...base, sk: kp.privateKey, deleteAfter: base.expires + o.maxLifetimeSec },
  };
}

/** Signs (or, after a certificate renewal, re-signs) a prekey for its owner's current certificate. */
export function signPrekey(p: Omit<SignedPrekey, 'sig'>, ownerCertHash: Uint8Array, signingKey: KeyObject): SignedPrekey {
  const base = { kid: p.kid, kem: p.kem, pub: p.pub, created: p.created, expires: p.expires };
  return { ...base, sig: signWith('prekey', signingKey, signedBytes(base, ownerCertHash)) };
}

/** Checks kid derivation and the owner's signature; expiry is the caller's check (it needs trusted time). */
export function verifyPrekey(p: SignedPrekey, ownerKey: KeyObject, ownerCertHash: Uint8Array): boolean {
  if (p.kid !== prekeyId(p.kem, p.pub)) return false;
  if (p.pub.length !== kemByName(p.kem).nPk) return false;
  if (!(p.expires > p.created)) return false;
  return verifyWith('prekey', ownerKey, signedBytes(p, ownerCertHash), p.sig);
}

export function prekeyToJSON(p: SignedPrekey): Record<string, unknown> {
  return { kid: p.kid, kem: p.kem, pub: b64u(p.pub), created: p.created, expires: p.expires, sig: b64u(p.sig) };
}

export function prekeyFromJSON(v: unknown, what: string): SignedPrekey {
  const o = checkShape(
    v,
    [['kid', 'string'], ['kem', 'string'], ['pub', 'string'], ['created', 'int'], ['expires', 'int'], ['sig', 'string']],
    what,
  );
  if (!isKemName(o.kem)) throw new EvsealError('ERR_INVALID_INPUT', `${what}: unknown KEM`);
  return {
    kid: o.kid as string,
    kem: o.kem,
    pub: fromB64u(o.pub, `${what}.pub`),
    created: o.created as number,
    expires: o.expires as number,
    sig: fromB64u(o.sig, `${what}.sig`),
  };
}
