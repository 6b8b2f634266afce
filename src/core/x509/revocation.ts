import { EvsealError, VerificationFailure } from '../errors.js';
import { equalBytes } from '../bytes.js';
import { b64u, fromB64u } from '../base64url.js';
import { verifyData } from './algorithms.js';
import { anchorInfo } from './anchors.js';
import { KU } from './cert.js';
import { parseCrlDer, type ParsedCrl } from './crl.js';
import { DerError } from './der.js';
import { certFingerprint, pemToDer } from './pem.js';
import type { TrustAnchor, TrustPolicy } from './policy.js';

/**
 * Why `anchor` did not issue `crl`, or undefined if it did: the anchor is a
 * usable CA with cRLSign, the CRL issuer equals the anchor subject byte for
 * byte, the CRL's authorityKeyIdentifier (if any) equals the anchor's
 * subjectKeyIdentifier (if any), and the signature over tbsCertList
 * verifies under the anchor key (node:crypto, synchronously).
 */
export function crlIssuedBy(crl: ParsedCrl, anchor: TrustAnchor): string | undefined {
  const info = anchorInfo(anchor);
  const ca = info.ca;
  if (!ca) return `anchor ${anchor.name}: ${info.problem}`;
  if (ca.keyUsage === undefined || !(ca.keyUsage & KU.cRLSign)) return `anchor ${anchor.name} lacks cRLSign`;
  if (!equalBytes(ca.subject, crl.issuer)) return `CRL issuer is not anchor ${anchor.name}`;
  if (crl.aki && ca.ski && !equalBytes(crl.aki, ca.ski)) return `CRL authorityKeyIdentifier does not match anchor ${anchor.name}`;
  if (!verifyData(crl.sigAlg, ca.publicKey, crl.tbs, crl.signature)) return `CRL signature does not verify under anchor ${anchor.name}`;
  return undefined;
}

interface Entry {
  crl: ParsedCrl;
  /** fingerprints of anchor certificates this CRL has been verified against */
  verifiedFor: Set<string>;
}

/**
 * Verified CRLs per trust-anchor name, and the highest CRL number ever
 * accepted per anchor name (the rollback guard). Serializable: the keystore
 * persists toJSON() and restores it with fromJSON().
 *
 * JSON form (version 1):
 *   {"version":1,"anchors":{"<anchor name>":{"highest":"<decimal>","crl":"<base64url DER>"}}}
 * "crl" may be absent (only the rollback guard is kept). A CRL restored from
 * JSON is re-verified against the anchor, lazily, the first time
 * validateChain needs it, so a state file cannot smuggle in a CRL the
 * current policy's anchor did not sign.
 *
 * Numbers are tracked per anchor *name*: if an operator replaces the
 * certificate behind a name with a new CA whose CRL numbers restart, the
 * new CRLs are refused as rollbacks (fail closed) until the anchor is
 * renamed or the state is reset.
 */
export class RevocationState {
  readonly #entries = new Map<string, Entry>();
  readonly #highest = new Map<string, bigint>();

  static fromJSON(j: unknown): RevocationState {
    const s = new RevocationState();
    if (j === null || j === undefined) return s;
    const bad = (why: string): never => {
      throw new EvsealError('ERR_STATE', `revocation state: ${why}`);
    };
    if (typeof j !== 'object' || Array.isArray(j)) bad('not an object');
    const o = j as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'version' && k !== 'anchors') bad(`unknown key ${k}`);
    if (o.version !== 1) bad('version must be 1');
    if (typeof o.anchors !== 'object' || o.anchors === null || Array.isArray(o.anchors)) bad('anchors must be an object');
    for (const [name, raw] of Object.entries(o.anchors as Record<string, unknown>)) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(`${name}: not an object`);
      const e = raw as Record<string, unknown>;
      for (const k of Object.keys(e)) if (k !== 'highest' && k !== 'crl') bad(`${name}: unknown key ${k}`);
      if (typeof e.highest !== 'string' || !/^(0|[1-9][0-9]{0,47})$/.test(e.highest)) bad(`${name}: highest must be a decimal string`);
      let highest = BigInt(e.highest as string);
      if (e.crl !== undefined) {
        let crl: ParsedCrl;
        try {
          crl = parseCrlDer(fromB64u(e.crl, `${name}.crl`));
        } catch (x) {
          return bad(`${name}: stored CRL is invalid (${x instanceof VerificationFailure ? x.detail : (x as Error).message})`);
        }
        if (crl.crlNumber > highest) highest = crl.crlNumber;
        s.#entries.set(name, { crl, verifiedFor: new Set() });
      }
      s.#highest.set(name, highest);
    }
    return s;
  }

  toJSON(): unknown {
    const names = [...new Set([...this.#highest.keys(), ...this.#entries.keys()])].sort();
    return {
      version: 1,
      anchors: Object.fromEntries(
        names.map((n) => {
          const e = this.#entries.get(n);
          const h = this.#highest.get(n) ?? e?.crl.crlNumber ?? 0n;
          return [n, e ? { highest: h.toString(), crl: b64u(e.crl.der) } : { highest: h.toString() }];
        }),
      ),
    };
  }

  /**
   * Verifies a CRL against the policy's anchors and keeps it. The CRL is
   * stored under every anchor that issued it (the same CA may be listed
   * under several names). Throws VerificationFailure:
   *   crl-invalid  - not PEM/DER, outside the CRL profile, issued by no
   *                  anchor, or a different CRL with the same number as the
   *                  one held (a CA never reuses a number);
   *   crl-rollback - its number is lower than the highest seen for an anchor.
   * Re-adding the CRL already held is a no-op. A CRL whose number is
   * higher replaces the held one. Returns the CRL's dates so the caller can
   * raise its trusted-time mark with thisUpdate.
   */
  addCrl(crlPem: string, policy: TrustPolicy): { anchor: string; crlNumber: bigint; thisUpdate: Date; nextUpdate: Date } {
    let der: Uint8Array;
    try {
      der = pemToDer(crlPem, 'X509 CRL');
    } catch (e) {
      if (e instanceof EvsealError || e instanceof DerError) throw new VerificationFailure('crl-invalid', e.message);
      throw e;
    }
    const crl = parseCrlDer(der);
    const reasons: string[] = [];
    const issuers: TrustAnchor[] = [];
    for (const a of policy.anchors) {
      const why = crlIssuedBy(crl, a);
      if (why) reasons.push(why);
      else issuers.push(a);
    }
    if (issuers.length === 0) throw new VerificationFailure('crl-invalid', `CRL not issued by any trust anchor (${reasons.join('; ')})`);
    for (const a of issuers) {
      const highest = this.#highest.get(a.name);
      if (highest !== undefined && crl.crlNumber < highest) {
        throw new VerificationFailure('crl-rollback', `anchor ${a.name}: CRL number ${crl.crlNumber} < highest seen ${highest}`);
      }
      const held = this.#entries.get(a.name);
      if (held && held.crl.crlNumber === crl.crlNumber && !equalBytes(held.crl.der, crl.der)) {
        throw new VerificationFailure('crl-invalid', `anchor ${a.name}: a different CRL with number ${crl.crlNumber} is already held`);
      }
    }
    for (const a of issuers) {
      const fp = certFingerprint(a.certDer);
      const held = this.#entries.get(a.name);
      if (!held || crl.crlNumber > held.crl.crlNumber) {
        this.#entries.set(a.name, { crl, verifiedFor: new Set([fp]) });
      } else {
        held.verifiedFor.add(fp); // same CRL (bytes equal): now also verified for this anchor certificate
      }
      const highest = this.#highest.get(a.name);
      if (highest === undefined || crl.crlNumber > highest) this.#highest.set(a.name, crl.crlNumber);
    }
    return { anchor: issuers[0]!.name, crlNumber: crl.crlNumber, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate };
  }

  /** The highest CRL number accepted for this anchor name (the number of the CRL held). */
  crlNumberFor(anchorName: string): bigint | undefined {
    return this.#highest.get(anchorName);
  }

  /** The CRL held for an anchor name, for status displays. */
  crlInfo(anchorName: string): { crlNumber: bigint; thisUpdate: Date; nextUpdate: Date; revokedCount: number } | undefined {
    const e = this.#entries.get(anchorName);
    return e && { crlNumber: e.crl.crlNumber, thisUpdate: e.crl.thisUpdate, nextUpdate: e.crl.nextUpdate, revokedCount: e.crl.revoked.size };
  }

  /**
   * The CRL held for `anchor`, verified against that anchor certificate
   * (lazily for CRLs restored from JSON or added under the same name for a
   * different certificate). Internal to validateChain.
   * @internal
   */
  verifiedCrlFor(anchor: TrustAnchor, fingerprint: string): ParsedCrl | undefined {
    const e = this.#entries.get(anchor.name);
    if (!e) return undefined;
    if (!e.verifiedFor.has(fingerprint)) {
      const why = crlIssuedBy(e.crl, anchor);
      if (why) throw new VerificationFailure('crl-invalid', `held CRL for ${anchor.name}: ${why}`);
      e.verifiedFor.add(fingerprint);
    }
    return e.crl;
  }
}
