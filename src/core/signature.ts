import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { concat, prefixedLp, utf8 } from './bytes.js';

/**
 * Every signed structure starts with its own context string and a zero byte,
 * so a signature made for one purpose can never verify as another.
 */
export const SIG_CONTEXT = {
  prekey: 'evseal/v1 prekey',
  suites: 'evseal/v1 suites',
  envelope: 'evseal/v1 envelope',
  session: 'evseal/v1 session transcript',
  challenge: 'evseal/v1 gateway challenge',
  receipt: 'evseal/v1 audit receipt',
  manifest: 'evseal/v1 firmware manifest',
} as const;
export type SigContext = keyof typeof SIG_CONTEXT;

/** utf8(CONTEXT) || 0x00 for each context, encoded once. */
const PREFIX = Object.fromEntries(Object.entries(SIG_CONTEXT).map(([k, v]) => [k, concat(utf8(v), new Uint8Array([0]))])) as Record<SigContext, Uint8Array>;

function framed(ctx: SigContext, msg: Uint8Array): Uint8Array {
  return concat(PREFIX[ctx], msg);
}

/** Ed25519 (pure) or ECDSA P-256 with SHA-256, fixed-size r||s (IEEE P1363) encoding. */
function algFor(key: KeyObject): string | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  if (key.asymmetricKeyType === 'ec') return 'sha256';
  throw new TypeError(`unsupported signing key type ${key.asymmetricKeyType}`);
}

export function signWith(ctx: SigContext, privateKey: KeyObject, msg: Uint8Array): Uint8Array {
  return signFramed(privateKey, framed(ctx, msg));
}

export function verifyWith(ctx: SigContext, publicKey: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  return verifyFramed(publicKey, framed(ctx, msg), sig);
}

/** signWith(ctx, key, lp(...parts)), framing the message in a single allocation. */
export function signLp(ctx: SigContext, privateKey: KeyObject, parts: readonly Uint8Array[]): Uint8Array {
  return signFramed(privateKey, prefixedLp(PREFIX[ctx], parts));
}

/** verifyWith(ctx, key, lp(...parts), sig), framing the message in a single allocation. */
export function verifyLp(ctx: SigContext, publicKey: KeyObject, parts: readonly Uint8Array[], sig: Uint8Array): boolean {
  return verifyFramed(publicKey, prefixedLp(PREFIX[ctx], parts), sig);
}

function signFramed(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(algFor(privateKey), data, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
}

function verifyFramed(publicKey: KeyObject, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    return nodeVerify(algFor(publicKey), data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}
