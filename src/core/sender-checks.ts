import { createHash } from 'node:crypto';
import { EvsealError, VerificationFailure } from './errors.js';
import { equalBytes } from './bytes.js';
import { choosePrekey, type VerifiedBundle } from './bundle.js';
import { isAllowed, type RolePolicy } from './role-policy.js';
import type { Role } from './roles.js';
import { validateChain, type PreparedChain, type RevocationState, type TrustPolicy, type ValidatedIdentity } from './x509/index.js';

/**
 * Checks shared by everything that opens a signed message (envelopes and
 * session first messages), so both follow one documented order.
 */

export function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

/** The sender's certificate hash: the one the caller already holds, or computed from the leaf. */
export function senderCertHash(chain: readonly Uint8Array[], known?: Uint8Array): Uint8Array {
  if (known) return known;
  const leaf = chain[0];
  if (!leaf) throw new EvsealError('ERR_USAGE', 'sender chain is empty');
  return sha256(leaf);
}

/** Sealing side: the recipient's most preferred live prekey both sides accept, or an opaque bundle refusal. */
export function choosePrekeyOrRefuse(peer: VerifiedBundle, suites: Parameters<typeof choosePrekey>[1]): ReturnType<typeof choosePrekey> {
  try {
    return choosePrekey(peer, suites);
  } catch {
    throw new EvsealError('ERR_BUNDLE_REJECTED', 'peer bundle has no live prekey for a suite both sides accept');
  }
}

export interface SenderContext {
  policy: TrustPolicy;
  revocation: RevocationState | 'skip';
  now: Date;
  rolePolicy: RolePolicy;
}

/**
 * Opening side, in order: chain, trust policy, CRL and role; the expected
 * roles, if any; the header's certificate hash and id against the chain;
 * the role policy for (sender role, kind, my role).
 */
export function verifySender(
  chain: Uint8Array[] | PreparedChain,
  claimed: { fromCert: Uint8Array; from: string; kind: string },
  myRole: Role,
  ctx: SenderContext,
  expectedRoles?: readonly Role[],
): ValidatedIdentity {
  const sender = validateChain(chain, { policy: ctx.policy, revocation: ctx.revocation, now: ctx.now });
  if (expectedRoles && !expectedRoles.includes(sender.role)) throw new VerificationFailure('role-mismatch', sender.role);
  if (!equalBytes(sender.certHash, claimed.fromCert)) throw new VerificationFailure('cert-hash-mismatch');
  if (sender.id !== claimed.from) throw new VerificationFailure('identity-mismatch');
  if (!isAllowed(ctx.rolePolicy, sender.role, claimed.kind, myRole)) {
    throw new VerificationFailure('policy-denied', `${sender.role} -> ${myRole} ${claimed.kind}`);
  }
  return sender;
}

/** Header times against trusted time: ordered, within the maximum lifetime, not in the future, not expired. */
export function checkTimes(h: { created: number; expires: number }, now: Date, maxLifetimeSec: number, skewSec: number): void {
  const nowSec = Math.floor(now.getTime() / 1000);
  if (h.expires <= h.created) throw new VerificationFailure('malformed', 'expires <= created');
  if (h.expires - h.created > maxLifetimeSec) throw new VerificationFailure('lifetime-too-long');
  if (h.created > nowSec + skewSec) throw new VerificationFailure('not-yet-valid');
  if (nowSec > h.expires + skewSec) throw new VerificationFailure('expired');
}
