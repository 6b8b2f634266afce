/**
 * evseal's public API. Everything a charger, CSMS or backend developer needs
 * to seal and open payloads, and nothing else: HPKE, DER and other building
 * blocks stay internal.
 */

// Errors
export { EvsealError, type ErrorCode, type SecurityReason, type SecuritySink } from './core/errors.js';

// Endpoints (keystore layer): the usual entry point
export { Endpoint, type EndpointOptions } from './keystore/endpoint.js';
export { loadTrust, loadCrls } from './keystore/trust-files.js';
export {
  initIdentity,
  installCert,
  loadIdentity,
  rotatePrekeys,
  renewIdentity,
  DEFAULT_SETTINGS,
  MAX_LIFETIME_CAP_SEC,
  type IdentitySettings,
  type LoadedIdentity,
  type RotationReport,
} from './keystore/identity-dir.js';
export { initCaDir, signCsrWithCaDir, revokeWithCaDir, refreshCrl } from './keystore/ca-dir.js';

// Envelopes and bundles (core, no I/O)
export {
  sealEnvelope,
  openEnvelope,
  inspectEnvelope,
  type EnvelopeHeader,
  type Sender,
  type Recipient,
  type SealOptions,
  type OpenContext,
  type Opened,
} from './core/envelope.js';
export { parseBundle, verifyBundle, type Bundle, type VerifiedBundle } from './core/bundle.js';
export { ReplayWindow } from './core/replay.js';

// Sessions (core, no I/O): handshake and Double Ratchet
export { initiateSession, acceptSession, type InitiateOptions, type AcceptContext, type Initiated, type Accepted, type SessionHeader } from './core/session/handshake.js';
export { Ratchet, type RatchetOptions } from './core/session/ratchet.js';
export { keyStatus, type KeyStatus } from './keystore/status.js';
export { TrustedClock } from './core/trusted-time.js';
export { DEFAULT_SUITES, SUITE_NAMES, type SuiteName } from './core/suites.js';
export { DEFAULT_ROLE_POLICY, parseRolePolicy, isAllowed, type RolePolicy, type RoleRule } from './core/role-policy.js';
export { ROLES, type Role, type IdentityInfo } from './core/roles.js';

// Identities and trust (core, no I/O)
export {
  trustPolicyFromCaPem,
  parseTrustPolicy,
  validateChain,
  RevocationState,
  certFingerprint,
  type TrustPolicy,
  type TrustAnchor,
  type ValidatedIdentity,
} from './core/x509/index.js';

// OCPP selective field sealing (ocpp layer, docs/ocpp.md)
export {
  protect,
  unprotect,
  openFields,
  extractEnvelopes,
  bindingRef,
  isSideDataTransfer,
  parseOcppPolicy,
  loadOcppPolicy,
  ocppPolicyFromJSON,
  OcppPolicy,
  EVSEAL_VENDOR_ID,
  SIDE_MESSAGE_ID,
  FIELDS_CONTENT_TYPE,
  PLACEHOLDER_STRING,
  type OcppMessage,
  type OcppVersion,
  type MessageType,
  type Protected,
  type ProtectOptions,
  type SealFn,
  type ResolveFn,
  type Unprotected,
  type UnprotectOptions,
  type OpenFn,
  type OpenedFields,
  type PolicyRule,
  type RecipientRef,
  type Side,
  type SealedEntry,
  type SideDataTransfer,
} from './ocpp/index.js';
