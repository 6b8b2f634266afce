import { createHash, type KeyObject } from 'node:crypto';
import { EvsealError, VerificationFailure } from '../errors.js';
import { equalBytes } from '../bytes.js';
import type { IdentityInfo, Role } from '../roles.js';
import { verifyData, type SigAlg } from './algorithms.js';
import { anchorInfo, type AnchorInfo } from './anchors.js';
import { leafProfile, parseCertOrFail, type ParsedCa, type ParsedLeaf } from './cert.js';
import type { TrustAnchor, TrustPolicy } from './policy.js';
import type { RevocationState } from './revocation.js';
import { certFingerprint } from './pem.js';

export interface ValidatedIdentity extends IdentityInfo {
  certDer: Uint8Array;
  /** SHA-256 of the leaf DER */
  certHash: Uint8Array;
  /** 'sha256:' + hex of certHash */
  fingerprint: string;
  publicKey: KeyObject;
  alg: SigAlg;
  /** name of the trust anchor that vouched for the leaf */
  anchor: string;
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
}

export interface ValidationContext {
  policy: TrustPolicy;
  /** the CRLs to check against, or 'skip' when revocation checking is explicitly waived */
  revocation: RevocationState | 'skip';
  /** verification time; must already be trusted time (TrustedClock.now()) */
  now: Date;
  expectedRole?: Role;
}

/**
 * Bounded caches for the expensive, time-independent part of validation.
 *
 * - leafCache: key = hex SHA-256 over the chain (each DER certificate
 *   prefixed by its u32 big-endian length, in chain order) -> the parsed,
 *   profile-checked leaf. Parsing depends on nothing but these bytes.
 * - sigCache: key = chain hash | anchor name | anchor certificate
 *   fingerprint | CRL number held for that anchor name ('-' if none, 'skip'
 *   when revocation is waived) -> "the leaf signature verified under this
 *   anchor's key". The anchor fingerprint makes a policy that reuses a name
 *   for another certificate miss; the CRL number makes every new CRL start
 *   from a fresh signature check.
 *
 * Only successes are cached. Time (leaf and anchor validity, CRL
 * freshness), role, pin and revocation checks run on every call, so a cache
 * hit can never accept what a cold call would refuse. Each cache holds at
 * most CACHE_LIMIT entries; the least recently used entry is evicted.
 */
export const CACHE_LIMIT = 1024;

class Lru<V> {
  readonly #m = new Map<string, V>();
  get(k: string): V | undefined {
    const v = this.#m.get(k);
    if (v !== undefined) {
      this.#m.delete(k);
      this.#m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.#m.delete(k);
    this.#m.set(k, v);
    if (this.#m.size > CACHE_LIMIT) this.#m.delete(this.#m.keys().next().value as string);
  }
  clear(): void {
    this.#m.clear();
  }
  get size(): number {
    return this.#m.size;
  }
}

/** hex SHA-256 over u32be(len) || DER for each certificate, in order (the same bytes as lp(...chain)). */
function chainDigest(chain: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chain) {
    lenScratch.writeUInt32BE(c.length);
    h.update(lenScratch).update(c);
  }
  return h.digest('hex');
}
/** Reused by chainDigest (synchronous; update copies it into the hash state). */
const lenScratch = Buffer.alloc(4);

const leafCache = new Lru<ParsedLeaf>();
const sigCache = new Lru<true>();
const stats = { leafHits: 0, sigHits: 0, sigChecks: 0 };

/** Empties the validation caches (tests, or after a key compromise drill). */
export function clearValidationCache(): void {
  leafCache.clear();
  sigCache.clear();
  stats.leafHits = stats.sigHits = stats.sigChecks = 0;
}

/** Cache counters, for tests and metrics. */
export function validationCacheStats(): { leafEntries: number; sigEntries: number; leafHits: number; sigHits: number; sigChecks: number } {
  return { leafEntries: leafCache.size, sigEntries: sigCache.size, ...stats };
}

interface Candidate {
  anchor: TrustAnchor;
  ca: ParsedCa;
}

const fail = (reason: ConstructorParameters<typeof VerificationFailure>[0], detail: string): never => {
  throw new VerificationFailure(reason, detail);
};

/** Step 1: a leaf, optionally followed by its trust anchor's certificate. */
function chainShape(chain: unknown): readonly Uint8Array[] {
  if (!Array.isArray(chain) || chain.length === 0 || !chain.every((c) => c instanceof Uint8Array)) {
    fail('malformed', 'chain must hold 1 or 2 DER certificates');
  }
  if ((chain as Uint8Array[]).length > 2) fail('chain-invalid', 'intermediate certificates are not supported (leaf, optionally followed by its trust anchor)');
  return chain as Uint8Array[];
}

/**
 * A certificate chain checked for shape and hashed once, holding its own
 * copies of the bytes: validating it again skips the copy, the hash and the
 * leaf parse. Envelopes from one sender carry the same chain text, so
 * parseEnvelope keeps one of these per chain it has seen.
 */
export class PreparedChain {
  readonly der: readonly Uint8Array[];
  readonly digest: string;
  /** The parsed leaf, once a validation got that far (it depends on the bytes alone). */
  leaf: ParsedLeaf | undefined;
  /**
   * Anchors found to issue this chain (steps 4-5 passed, signature
   * verified), each with `name|CRL number` as when it was checked: the
   * sigCache rule, held here so a repeat validation needs no key built from
   * the chain hash and no byte comparisons. An AnchorInfo stands for one
   * anchor certificate's exact bytes (anchorInfo re-checks them).
   */
  readonly issuers = new WeakMap<AnchorInfo, string>();
  constructor(chainDer: readonly Uint8Array[]) {
    this.der = Object.freeze(chainShape(chainDer).map((c) => new Uint8Array(c)));
    this.digest = chainDigest(this.der);
  }
}

/**
 * Validates a leaf certificate (optionally followed by its trust anchor's
 * certificate) against a trust policy. Only leaf -> anchor paths exist:
 * there are no intermediates. The checks run in this order; the first
 * failure throws VerificationFailure(reason, detail):
 *
 *  1. shape: 1 or 2 DER certificates                         malformed / chain-invalid (more than 2)
 *  2. leaf decodes and names a valid identity                malformed
 *  3. leaf end-entity profile (v3, extensions, algorithms)   chain-invalid
 *  4. a second certificate, if sent, is byte-identical to
 *     an anchor's certificate (only such anchors are then
 *     considered)                                            chain-invalid
 *  5. issuing anchor: anchors that are CA certificates, whose
 *     subject equals the leaf issuer byte for byte, whose
 *     subjectKeyIdentifier equals the leaf's
 *     authorityKeyIdentifier (when both present), and whose
 *     key verifies the leaf signature                        chain-invalid
 *  6. at least one such anchor within its own validity       cert-expired / not-yet-valid
 *  7. leaf validity: notBefore <= now <= notAfter            not-yet-valid / cert-expired
 *  8. an issuing anchor allows the leaf's role               anchor-not-allowed
 *  9. that anchor has no pins, or pins the leaf fingerprint  pin-mismatch
 *     (the first anchor, in policy order, passing 8 and 9 is the one used)
 * 10. expectedRole, if given, equals the leaf role           role-mismatch
 * 11. unless revocation is 'skip': a CRL is held for the
 *     anchor                                                 crl-missing
 *     and verifies against it (CRLs restored from JSON)      crl-invalid
 *     now <= its nextUpdate                                  crl-stale
 *     the leaf serial is not listed                          cert-revoked
 */
export function validateChain(chain: Uint8Array[] | PreparedChain, ctx: ValidationContext): ValidatedIdentity {
  const now = ctx.now;
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new EvsealError('ERR_USAGE', 'validateChain: ctx.now must be a valid Date');
  const prepared = chain instanceof PreparedChain ? chain : undefined;
  let chainDer: readonly Uint8Array[];
  let chainHash: string;
  if (prepared) {
    chainDer = prepared.der;
    chainHash = prepared.digest;
  } else {
    chainDer = chainShape(chain);
    chainHash = chainDigest(chainDer);
  }

  // 1-3: parse the leaf (cached by chain hash).
  let leaf = prepared?.leaf ?? leafCache.get(chainHash);
  if (leaf) stats.leafHits++;
  else {
    leaf = leafProfile(parseCertOrFail(chainDer[0]!, 'leaf'));
    leafCache.set(chainHash, leaf);
  }
  if (prepared) prepared.leaf = leaf;

  // 4-5: find the issuing anchors.
  const presented = chainDer[1];
  let presentedIsAnchor = presented === undefined;
  const notes: string[] = [];
  const issuing: Candidate[] = [];
  for (const anchor of ctx.policy.anchors) {
    const crlNumber = ctx.revocation === 'skip' ? 'skip' : (ctx.revocation.crlNumberFor(anchor.name)?.toString() ?? '-');
    if (prepared) {
      const info = anchorInfo(anchor);
      if (info.ca && prepared.issuers.get(info) === `${anchor.name}|${crlNumber}`) {
        stats.sigHits++;
        presentedIsAnchor = true;
        issuing.push({ anchor, ca: info.ca });
        continue;
      }
    }
    if (presented) {
      if (!equalBytes(anchor.certDer, presented)) continue;
      presentedIsAnchor = true;
    }
    const info = anchorInfo(anchor);
    if (!info.cert || !equalBytes(info.cert.subject, leaf.issuer)) continue;
    if (!info.ca) {
      notes.push(`anchor ${anchor.name}: ${info.problem}`);
      continue;
    }
    const ca = info.ca;
    if (leaf.aki && ca.ski && !equalBytes(leaf.aki, ca.ski)) {
      notes.push(`anchor ${anchor.name}: authorityKeyIdentifier mismatch`);
      continue;
    }
    const key = `${chainHash}|${anchor.name}|${ca.fingerprint}|${crlNumber}`;
    if (sigCache.get(key)) stats.sigHits++;
    else {
      stats.sigChecks++;
      if (!verifyData(leaf.sigAlg, ca.publicKey, leaf.tbs, leaf.signature)) {
        notes.push(`anchor ${anchor.name}: signature does not verify`);
        continue;
      }
      sigCache.set(key, true);
    }
    prepared?.issuers.set(info, `${anchor.name}|${crlNumber}`);
    issuing.push({ anchor, ca });
  }
  if (!presentedIsAnchor) fail('chain-invalid', 'the certificate sent after the leaf is not a trust anchor');
  if (issuing.length === 0) fail('chain-invalid', `no trust anchor issued this certificate${notes.length ? ` (${notes.join('; ')})` : ''}`);

  // 6: the anchor itself must be within its validity.
  const t = now.getTime();
  const timely = issuing.filter((c) => c.ca.notBefore.getTime() <= t && t <= c.ca.notAfter.getTime());
  if (timely.length === 0) {
    const early = issuing.every((c) => t < c.ca.notBefore.getTime());
    fail(early ? 'not-yet-valid' : 'cert-expired', `trust anchor ${issuing[0]!.anchor.name} is outside its validity period`);
  }

  // 7: leaf validity.
  if (t < leaf.notBefore.getTime()) fail('not-yet-valid', `leaf valid from ${leaf.notBefore.toISOString()}`);
  if (t > leaf.notAfter.getTime()) fail('cert-expired', `leaf expired at ${leaf.notAfter.toISOString()}`);

  // 8-9: role scope and pins.
  const role = leaf.info.role;
  const allowed = timely.filter((c) => c.anchor.roles === '*' || c.anchor.roles.includes(role));
  if (allowed.length === 0) fail('anchor-not-allowed', `anchor ${timely.map((c) => c.anchor.name).join(', ')} may not certify role ${role}`);
  const chosen = allowed.find((c) => c.anchor.pins === undefined || c.anchor.pins.includes(leaf.fingerprint));
  if (!chosen) fail('pin-mismatch', `leaf ${leaf.fingerprint} is not pinned by anchor ${allowed.map((c) => c.anchor.name).join(', ')}`);
  const { anchor, ca } = chosen!;

  // 10: expected role.
  if (ctx.expectedRole !== undefined && role !== ctx.expectedRole) fail('role-mismatch', `expected ${ctx.expectedRole}, certificate is ${role}`);

  // 11: revocation.
  if (ctx.revocation !== 'skip') {
    const crl = ctx.revocation.verifiedCrlFor(anchor, ca.fingerprint);
    if (!crl) fail('crl-missing', `no CRL held for anchor ${anchor.name}`);
    if (t > crl!.nextUpdate.getTime()) fail('crl-stale', `CRL ${crl!.crlNumber} for ${anchor.name} was due at ${crl!.nextUpdate.toISOString()}`);
    if (crl!.revoked.has(leaf.serialHex)) fail('cert-revoked', `serial ${leaf.serialHex} revoked by CRL ${crl!.crlNumber} of ${anchor.name}`);
  }

  return {
    role,
    id: leaf.info.id,
    operator: leaf.info.operator,
    certDer: new Uint8Array(leaf.der),
    certHash: new Uint8Array(leaf.certHash),
    fingerprint: leaf.fingerprint,
    publicKey: leaf.publicKey,
    alg: leaf.keyAlg,
    anchor: anchor.name,
    notBefore: new Date(leaf.notBefore),
    notAfter: new Date(leaf.notAfter),
    serialHex: leaf.serialHex,
  };
}

/**
 * Reads the identity from a certificate without validating it against any
 * trust policy (for display, `keys install` consistency checks, and CA
 * bookkeeping). Throws VerificationFailure like steps 2-3 above.
 */
export function readLeafCertificate(der: Uint8Array): IdentityInfo & {
  serialHex: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  alg: SigAlg;
  issuerDer: Uint8Array;
} {
  const leaf = leafProfile(parseCertOrFail(der, 'leaf'));
  return {
    ...leaf.info,
    serialHex: leaf.serialHex,
    fingerprint: certFingerprint(leaf.der),
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    publicKey: leaf.publicKey,
    alg: leaf.keyAlg,
    issuerDer: new Uint8Array(leaf.issuer),
  };
}
