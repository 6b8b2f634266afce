/**
 * One error base class with stable string codes. Callers switch on `code`;
 * messages are for humans and may change.
 *
 * Decryption and verification failures are deliberately opaque: every such
 * failure is `ERR_OPEN_FAILED` (or `ERR_BUNDLE_REJECTED` on the sealing side),
 * and the precise reason goes only to the local security log.
 */
export const ERROR_CODES = [
  'ERR_INVALID_INPUT', // malformed untrusted input rejected at a boundary
  'ERR_USAGE', // a caller or CLI user asked for something impossible
  'ERR_OPEN_FAILED', // an envelope did not open (opaque)
  'ERR_BUNDLE_REJECTED', // a recipient bundle failed validation (opaque)
  'ERR_CERT_REJECTED', // a certificate chain failed validation (opaque)
  'ERR_POLICY_DENIED', // role policy forbids this sender/kind/recipient
  'ERR_CRYPTO', // a primitive refused its input (bad key, limit reached)
  'ERR_NOT_FOUND', // a file, key or record does not exist
  'ERR_LIMIT', // a configured limit was reached (queue depth, rate, size)
  'ERR_UNAUTHENTICATED', // a connection has not (or could not) prove its identity
  'ERR_STATE', // local state is inconsistent or locked
  'ERR_FIRMWARE_REJECTED', // a firmware package failed verification or decryption (opaque)
  'ERR_FIRMWARE_MODEL', // a verified firmware package is for another device model
  'ERR_FIRMWARE_ROLLBACK', // a verified firmware package is not newer than the installed version
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class EvsealError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EvsealError';
    this.code = code;
  }
}

/**
 * The reason a verification failed, kept for the security log only.
 * It is never put into an error message that leaves the endpoint.
 */
export type SecurityReason =
  | 'malformed'
  | 'unsupported-version'
  | 'suite-not-accepted'
  | 'wrong-recipient'
  | 'unknown-prekey'
  | 'chain-invalid'
  | 'cert-expired'
  | 'cert-revoked'
  | 'crl-missing'
  | 'crl-stale'
  | 'crl-rollback'
  | 'crl-invalid'
  | 'anchor-not-allowed'
  | 'pin-mismatch'
  | 'role-mismatch'
  | 'identity-mismatch'
  | 'cert-hash-mismatch'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'lifetime-too-long'
  | 'replay'
  | 'policy-denied'
  | 'decrypt-failed'
  | 'prekey-expired'
  | 'prekey-signature'
  | 'suites-signature'
  | 'proof-invalid'
  | 'digest-mismatch';

/** Thrown inside core verification code; converted to an opaque error at the API edge. */
export class VerificationFailure extends Error {
  readonly reason: SecurityReason;
  readonly detail: string | undefined;
  constructor(reason: SecurityReason, detail?: string) {
    super(reason);
    this.name = 'VerificationFailure';
    this.reason = reason;
    this.detail = detail;
  }
}

/** A sink for security events; the keystore/CLI layer connects it to a pino log. */
export type SecuritySink = (event: { event: string; reason: SecurityReason; detail?: string; [k: string]: unknown }) => void;

export const noSecuritySink: SecuritySink = () => {};
