import type { KeyObject } from 'node:crypto';
import { lp, utf8 } from './bytes.js';
import { signWith, verifyWith } from './signature.js';

/**
 * The gateway challenge an endpoint signs to authenticate a connection
 * (docs/gateway-protocol.md §2). Both nonces make a signature good for one
 * connection only; the gateway id stops a signature made for one gateway
 * being relayed to another; the TLS exporter value (RFC 5705, empty without
 * TLS) binds it to this TLS session, so a man in the middle that terminates
 * TLS cannot forward it. The 'challenge' signature context keeps it from
 * being taken for any other evseal signature.
 */
export const CHALLENGE_LABEL = 'endpoint-auth';
export const EXPORTER_LABEL = 'EXPORTER-evseal-endpoint-auth';
export const NONCE_BYTES = 32;

export function challengeInput(clientNonce: Uint8Array, gatewayNonce: Uint8Array, gatewayId: string, exporter: Uint8Array): Uint8Array {
  return lp(utf8(CHALLENGE_LABEL), clientNonce, gatewayNonce, utf8(gatewayId), exporter);
}

export function signChallenge(key: KeyObject, clientNonce: Uint8Array, gatewayNonce: Uint8Array, gatewayId: string, exporter: Uint8Array): Uint8Array {
  return signWith('challenge', key, challengeInput(clientNonce, gatewayNonce, gatewayId, exporter));
}

export function verifyChallenge(
  key: KeyObject,
  sig: Uint8Array,
  clientNonce: Uint8Array,
  gatewayNonce: Uint8Array,
  gatewayId: string,
  exporter: Uint8Array,
): boolean {
  return verifyWith('challenge', key, challengeInput(clientNonce, gatewayNonce, gatewayId, exporter), sig);
}
