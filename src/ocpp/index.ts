/**
 * Selective field sealing for OCPP 1.6, 2.0.1 and 2.1 (docs/ocpp.md).
 * Pure message transformations: the crypto is the caller's (an evseal
 * Endpoint's seal/open), so this works inside any OCPP stack.
 */
export { protect, type Protected, type ProtectOptions, type SealFn, type ResolveFn } from './protect.js';
export { unprotect, openFields, type Unprotected, type UnprotectOptions, type OpenFn, type OpenedFields } from './unprotect.js';
export {
  OcppPolicy,
  parseOcppPolicy,
  loadOcppPolicy,
  ocppPolicyFromJSON,
  SIGNED_METER_REFUSAL,
  type PolicyRule,
  type RecipientRef,
  type Side,
  type WhereValue,
  type CompiledField,
} from './policy.js';
export {
  extractEnvelopes,
  bindingRef,
  isSideDataTransfer,
  parseSideDataTransfer,
  EVSEAL_VENDOR_ID,
  SIDE_MESSAGE_ID,
  FIELDS_CONTENT_TYPE,
  type SealedEntry,
  type SideDataTransfer,
  type SideData,
} from './carrier.js';
export { type OcppMessage } from './match.js';
export { PLACEHOLDER_STRING, placeholderFor } from './placeholders.js';
export { OCPP_VERSIONS, type OcppVersion, type MessageType } from './schemas.js';
export { parsePointer, formatPointer } from './pointer.js';
export { canonicalJson } from './json.js';
