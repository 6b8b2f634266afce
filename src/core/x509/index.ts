/**
 * X.509 identities for evseal (RFC 5280, narrowed): the certificate and CRL
 * profile, a tiny CA, trust policies and strict leaf -> anchor validation.
 * See docs/protocol.md Appendix A. No I/O here: files are read and written by
 * src/keystore.
 */
export { generateSigningKey, keyAlgOf, isSigAlg, SIG_ALGS, type SigAlg } from './algorithms.js';
export { pemToDer, derToPem, certFingerprint, type PemLabel } from './pem.js';
export {
  createRootCa,
  createCsr,
  parseCsr,
  parseCsrSync,
  signCsr,
  createCrl,
  loadPrivateKeyPem,
  privateKeyToPem,
  randomSerialHex,
} from './ca.js';
export { canonicalSerialHex } from './cert.js';
export { trustPolicyFromCaPem, parseTrustPolicy, isTrustPolicyJson, type TrustAnchor, type TrustPolicy } from './policy.js';
export { RevocationState } from './revocation.js';
export {
  validateChain,
  PreparedChain,
  readLeafCertificate,
  clearValidationCache,
  validationCacheStats,
  CACHE_LIMIT,
  type ValidatedIdentity,
  type ValidationContext,
} from './validate.js';
