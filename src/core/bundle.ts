import type { KeyObject } from 'node:crypto';
import { b64u, fromB64u } from './base64url.js';
import { i2osp, lp, utf8 } from './bytes.js';
import { checkShape } from './canonical-json.js';
import { EvsealError, VerificationFailure } from './errors.js';
import { prekeyFromJSON, prekeyToJSON, verifyPrekey, type SignedPrekey } from './prekey.js';
import type { Role } from './roles.js';
import { signWith, verifyWith } from './signature.js';
import { kemOfSuite, parseSuiteList, type SuiteName } from './suites.js';
import { validateChain, type RevocationState, type TrustPolicy, type ValidatedIdentity } from './x509/index.js';

/**
 * The public bundle an endpoint publishes (ID_DIR/bundle.json): its
 * certificate chain, the signed list of suites it accepts (preference
 * order) and its signed prekeys. Every field is authenticated by the
 * identity key in the chain, so a swapped prekey or a trimmed suite list
 * (a downgrade) is detected.
 */
export interface Bundle {
  v: 1;
  chain: Uint8Array[];
  suites: SuiteName[];
  suitesIssued: number;
  suitesSig: Uint8Array;
  prekeys: SignedPrekey[];
}

function suitesSignedBytes(certHash: Uint8Array, issued: number, suites: readonly SuiteName[]): Uint8Array {
  return lp(certHash, i2osp(issued, 8), utf8(suites.join(',')));
}

export function signSuites(suites: readonly SuiteName[], issued: number, certHash: Uint8Array, key: KeyObject): Uint8Array {
  return signWith('suites', key, suitesSignedBytes(certHash, issued, suites));
}

export function bundleToJSON(b: Bundle): string {
  return (
    JSON.stringify(
      {
        v: 1,
        chain: b.chain.map(b64u),
        suites: b.suites,
        suitesIssued: b.suitesIssued,
        suitesSig: b64u(b.suitesSig),
        prekeys: b.prekeys.map(prekeyToJSON),
      },
      null,
      2,
    ) + '\n'
  );
}

export function parseBundle(text: string): Bundle {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'bundle: not JSON');
  }
  const o = checkShape(
    v,
    [['v', 'int'], ['chain', 'string[]'], ['suites', 'string[]'], ['suitesIssued', 'int'], ['suitesSig', 'string'], ['prekeys', 'object[]']],
    'bundle',
  );
  if (o.v !== 1) throw new EvsealError('ERR_INVALID_INPUT', 'bundle: unsupported version');
  const chain = (o.chain as string[]).map((c, i) => fromB64u(c, `bundle.chain[${i}]`));
  if (chain.length < 1 || chain.length > 2) throw new EvsealError('ERR_INVALID_INPUT', 'bundle: chain length');
  const prekeys = (o.prekeys as unknown[]).map((p, i) => prekeyFromJSON(p, `bundle.prekeys[${i}]`));
  if (prekeys.length > 64) throw new EvsealError('ERR_INVALID_INPUT', 'bundle: too many prekeys');
  return {
    v: 1,
    chain,
    suites: parseSuiteList(o.suites as string[], 'bundle.suites'),
    suitesIssued: o.suitesIssued as number,
    suitesSig: fromB64u(o.suitesSig, 'bundle.suitesSig'),
    prekeys,
  };
}

export interface VerifiedBundle {
  identity: ValidatedIdentity;
  suites: SuiteName[];
  /** Only prekeys that are signed and unexpired at `now`. */
  prekeys: SignedPrekey[];
}

export interface BundleCheck {
  policy: TrustPolicy;
  revocation: RevocationState | 'skip';
  now: Date;
  expectedRole?: Role;
}

/**
 * Validates chain, trust policy, CRL and role, then the suite list and every
 * prekey signature. Any bad signature refuses the whole bundle: a bundle
 * with one swapped prekey is not trusted for the others either.
 */
export function verifyBundle(b: Bundle, c: BundleCheck): VerifiedBundle {
  const identity = validateChain(b.chain, { policy: c.policy, revocation: c.revocation, now: c.now, expectedRole: c.expectedRole });
  if (!verifyWith('suites', identity.publicKey, suitesSignedBytes(identity.certHash, b.suitesIssued, b.suites), b.suitesSig)) {
    throw new VerificationFailure('suites-signature');
  }
  const nowSec = Math.floor(c.now.getTime() / 1000);
  for (const p of b.prekeys) {
    if (!verifyPrekey(p, identity.publicKey, identity.certHash)) throw new VerificationFailure('prekey-signature', p.kid);
  }
  const live = b.prekeys.filter((p) => p.created <= nowSec + 300 && p.expires > nowSec);
  return { identity, suites: b.suites, prekeys: live };
}

/**
 * The sender's choice: the recipient's most preferred suite that the sender
 * also accepts and for which a live prekey exists (newest prekey first).
 */
export function choosePrekey(vb: VerifiedBundle, senderSuites: readonly SuiteName[]): { suite: SuiteName; prekey: SignedPrekey } {
  for (const s of vb.suites) {
    if (!senderSuites.includes(s)) continue;
    const kem = kemOfSuite(s);
    const candidates = vb.prekeys.filter((p) => p.kem === kem).sort((a, b) => b.created - a.created);
    if (candidates[0]) return { suite: s, prekey: candidates[0] };
  }
  throw new VerificationFailure('prekey-expired', 'no live prekey for a mutually accepted suite');
}
