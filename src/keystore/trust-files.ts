import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { EvsealError, VerificationFailure } from '../core/errors.js';
import type { TrustedClock } from '../core/trusted-time.js';
import { isTrustPolicyJson, parseTrustPolicy, trustPolicyFromCaPem, type RevocationState, type TrustPolicy } from '../core/x509/index.js';

function readText(path: string, what: string): string {
  if (!existsSync(path)) throw new EvsealError('ERR_NOT_FOUND', `${what} not found: ${path}`);
  return readFileSync(path, 'utf8');
}

/**
 * `--trust` is either a CA certificate (trusted for every role) or a
 * trust-policy JSON file whose relative "cert" paths resolve against the
 * policy file's own directory.
 */
export function loadTrust(ref: string): TrustPolicy {
  const text = readText(ref, 'trust anchor or policy');
  if (isTrustPolicyJson(text)) {
    const base = dirname(resolve(ref));
    return parseTrustPolicy(text, (r) => readText(isAbsolute(r) ? r : resolve(base, r), 'anchor certificate'));
  }
  return trustPolicyFromCaPem(text);
}

/**
 * Feeds CRL files into the revocation state. Each verified CRL's thisUpdate
 * is a CA-signed timestamp and raises the trusted-time mark.
 */
export function loadCrls(paths: string[], policy: TrustPolicy, revocation: RevocationState, clock: TrustedClock): void {
  for (const path of paths) {
    let r;
    try {
      r = revocation.addCrl(readText(path, 'CRL'), policy);
    } catch (e) {
      // A CRL is operator-supplied input, so its refusal is reported precisely.
      if (e instanceof VerificationFailure) throw new EvsealError('ERR_CERT_REJECTED', `CRL ${path} refused: ${e.reason}${e.detail ? ` (${e.detail})` : ''}`);
      throw e;
    }
    clock.observe(r.thisUpdate);
  }
}
