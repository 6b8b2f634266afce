import { DEFAULT_ROLE_POLICY, isAllowed, type RolePolicy } from '../core/role-policy.js';
import type { Role } from '../core/roles.js';

/**
 * Which roles may address which, as the gateway enforces it on clear
 * metadata. It is the endpoints' role policy (the same table endpoints
 * enforce when sealing and opening), plus the clear OCPP certificate flow:
 * a charger's CSR goes to the CA service (a provisioning endpoint) and the
 * signed chain comes back. Session messages after the first flow both ways,
 * so a session kind is allowed in either direction of an allowed rule. An
 * endpoint may have the gateway make an OCPP call to a charger (ocpp-call,
 * e.g. SetNetworkProfile with sealed fields) under the same rule as a sealed
 * message of that kind, and the station's answer (ocpp-result) goes back.
 * The gateway's check is a first line only: endpoints enforce their own
 * policy on what they open.
 */
export interface RoutePolicy {
  roles: RolePolicy;
}

const OCPP_CERT_RULES: RolePolicy = {
  rules: [
    { kind: 'csr', from: ['charger'], to: ['provisioning'] },
    { kind: 'certificate', from: ['provisioning'], to: ['charger'] },
  ],
};

/**
 * Firmware rollouts (docs/firmware.md, "Delivery through OCPP"): the
 * operator's provisioning identity has the gateway send UpdateFirmware /
 * SignedUpdateFirmware (ocpp-call, kind `firmware`) and gets the answers
 * back. Nothing sealed travels under this kind: the package is fetched by
 * the station over HTTP and its key slot opens only on the device.
 */
const OCPP_FIRMWARE_RULES: RolePolicy = { rules: [{ kind: 'firmware', from: ['provisioning'], to: ['charger'] }] };

/**
 * The OCPP actions an `ocpp-call` of each kind may carry. The kind is what
 * the route policy grants, so it also bounds what the call makes the
 * station do: a `command` grant does not let a service tool install a root
 * certificate or repoint the station's network profile. A kind not listed
 * carries no OCPP call. CertificateSigned travels only as `ocpp-cert`.
 */
export const OCPP_CALL_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  credentials: ['SetNetworkProfile', 'ChangeConfiguration', 'SetVariables'],
  config: ['ChangeConfiguration', 'GetConfiguration', 'SetVariables', 'GetVariables', 'GetBaseReport'],
  command: [
    'Reset', 'UnlockConnector', 'TriggerMessage', 'ChangeAvailability', 'ClearCache', 'GetDiagnostics', 'GetLog',
    'RemoteStartTransaction', 'RemoteStopTransaction', 'RequestStartTransaction', 'RequestStopTransaction',
  ],
  firmware: ['UpdateFirmware', 'SignedUpdateFirmware'],
};

export function ocppCallAllowed(kind: string, action: string): boolean {
  return Object.hasOwn(OCPP_CALL_ACTIONS, kind) && OCPP_CALL_ACTIONS[kind]!.includes(action);
}

export function defaultRoutePolicy(roles: RolePolicy = DEFAULT_ROLE_POLICY): RoutePolicy {
  return { roles };
}

export function routeAllowed(p: RoutePolicy, from: Role, kind: string, to: Role, format: string): boolean {
  if (from === 'gateway' || to === 'gateway') return false;
  switch (format) {
    case 'envelope':
      return isAllowed(p.roles, from, kind, to);
    case 'session':
      return isAllowed(p.roles, from, kind, to) || isAllowed(p.roles, to, kind, from);
    case 'ocpp-call':
      return to === 'charger' && (isAllowed(p.roles, from, kind, to) || isAllowed(OCPP_FIRMWARE_RULES, from, kind, to));
    case 'ocpp-result':
      // a station's answer to a call it was allowed to receive
      return from === 'charger' && (isAllowed(p.roles, to, kind, from) || isAllowed(OCPP_FIRMWARE_RULES, to, kind, from));
    case 'ocpp-csr':
    case 'ocpp-cert':
      return isAllowed(OCPP_CERT_RULES, from, kind, to);
    default:
      return false;
  }
}
