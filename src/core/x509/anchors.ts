import { DerError } from './der.js';
import { caProfile, parseCertDer, type ParsedCa, type ParsedCert } from './cert.js';
import { equalBytes } from '../bytes.js';
import type { TrustAnchor } from './policy.js';

/**
 * Parsed trust anchors, cached per certDer buffer. A TrustPolicy is
 * long-lived and its anchors' certDer arrays are treated as immutable; a
 * private copy is kept and compared on every hit, so a mutated buffer is
 * simply re-parsed.
 */
export interface AnchorInfo {
  /** parsed certificate, if it decodes */
  cert: ParsedCert | undefined;
  /** the CA profile view, if the certificate satisfies it */
  ca: ParsedCa | undefined;
  /** why it is unusable, if it is */
  problem: string | undefined;
}

const cache = new WeakMap<Uint8Array, { copy: Uint8Array; info: AnchorInfo }>();

export function anchorInfo(a: TrustAnchor): AnchorInfo {
  const hit = cache.get(a.certDer);
  if (hit && equalBytes(hit.copy, a.certDer)) return hit.info;
  let info: AnchorInfo;
  try {
    const cert = parseCertDer(a.certDer);
    const ca = caProfile(cert);
    info = typeof ca === 'string' ? { cert, ca: undefined, problem: ca } : { cert, ca, problem: undefined };
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
    info = { cert: undefined, ca: undefined, problem: `anchor certificate is not well-formed: ${e.message}` };
  }
  cache.set(a.certDer, { copy: new Uint8Array(a.certDer), info });
  return info;
}
