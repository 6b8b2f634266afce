import ocpp from 'ocpp-rpc';
import { ocppActions, ocppValidators, type OcppProtocol } from './validators.js';

/** OCPP-J message type numbers. */
export const CALL = 2;
export const CALLRESULT = 3;
export const CALLERROR = 4;

export type Frame =
  | { type: typeof CALL; id: string; action: string; params: unknown }
  | { type: typeof CALLRESULT; id: string; result: unknown }
  | { type: typeof CALLERROR; id: string; code: unknown; description: unknown; details: unknown };

/**
 * Classifies one OCPP-J frame the way ocpp-rpc's receiver does (JSON array,
 * numeric type 2/3/4, string id; a CALL has a string action). Returns the
 * OCPP-J error to answer with instead when the frame is not one.
 */
export function parseFrame(text: string): Frame | { error: 'RpcFrameworkError' | 'MessageTypeNotSupported'; id: string; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: 'RpcFrameworkError', id: '-1', message: 'Message must be a JSON structure' };
  }
  if (!Array.isArray(v)) return { error: 'RpcFrameworkError', id: '-1', message: 'Message must be an array' };
  const [type, id] = v as unknown[];
  if (typeof type !== 'number') return { error: 'RpcFrameworkError', id: '-1', message: 'Message type must be a number' };
  if (type !== CALL && type !== CALLRESULT && type !== CALLERROR) return { error: 'MessageTypeNotSupported', id: typeof id === 'string' ? id : '-1', message: 'Unrecognised message type' };
  if (typeof id !== 'string') return { error: 'RpcFrameworkError', id: '-1', message: 'Message ID must be a string' };
  if (type === CALL) {
    if (typeof v[2] !== 'string') return { error: 'RpcFrameworkError', id, message: 'Method must be a string' };
    return { type, id, action: v[2], params: v[3] };
  }
  if (type === CALLRESULT) return { type, id, result: v[2] };
  return { type, id, code: v[2], description: v[3], details: v[4] };
}

export function callErrorFrame(id: string, code: string, description: string): string {
  return JSON.stringify([CALLERROR, id, code, description, {}]);
}

const validatorByProtocol = () => new Map(ocppValidators().map((v) => [v.subprotocol as OcppProtocol, v]));
let validators: ReturnType<typeof validatorByProtocol> | undefined;

/** Strict schema check of a request (`.req`) or response (`.conf`); throws the ocpp-rpc error for the violation. */
export function validatePayload(protocol: OcppProtocol, action: string, which: 'req' | 'conf', payload: unknown): void {
  validators ??= validatorByProtocol();
  validators.get(protocol)!.validate(`urn:${action}.${which}`, payload);
}

/** The OCPP-J error code an ocpp-rpc error stands for (1.6 spells two of them differently). */
export function rpcErrorCode(e: unknown, protocol: OcppProtocol): string {
  const code = e instanceof ocpp.RPCError ? e.rpcErrorCode : 'InternalError';
  if (protocol !== 'ocpp1.6') return code;
  return code === 'FormatViolation' ? 'FormationViolation' : code === 'OccurenceConstraintViolation' ? 'OccurrenceConstraintViolation' : code;
}

/** The action as a metric label: unknown names collapse to "other", so labels stay bounded whatever a peer sends. */
export function actionLabel(protocol: OcppProtocol, action: string): string {
  return ocppActions(protocol).has(action) ? action : 'other';
}
