import { EvsealError } from '../core/errors.js';
import { isJson, isObject, type Json, type JsonObject } from './json.js';
import { expandPattern, formatPointer, getAt } from './pointer.js';
import type { CompiledField, Side } from './policy.js';
import { isOcppVersion, normaliseVersion, type MessageType, type OcppVersion } from './schemas.js';
import { EVSEAL_VENDOR_ID } from './carrier.js';

/** One OCPP message as the library sees it: enough to pick the policy rules that apply. */
export interface OcppMessage {
  /** "1.6", "2.0.1", "2.1" (or the OCPP-J subprotocol name, "ocpp2.0.1"). */
  version: OcppVersion | `ocpp${OcppVersion}`;
  /** The OCPP action, e.g. "SetNetworkProfile". */
  action: string;
  /** A CALL payload ("request") or a CALLRESULT payload ("response"). */
  message: MessageType;
  /** The side that sends this message. */
  from: Side;
  payload: Record<string, unknown>;
}

export interface CheckedMessage {
  version: OcppVersion;
  action: string;
  message: MessageType;
  from: Side;
  payload: JsonObject;
}

export function checkMessage(msg: OcppMessage): CheckedMessage {
  if (typeof msg !== 'object' || msg === null) throw new EvsealError('ERR_USAGE', 'ocpp message: not an object');
  const version = isOcppVersion(msg.version) ? msg.version : normaliseVersion(msg.version);
  if (typeof msg.action !== 'string' || !/^[A-Za-z0-9]{1,64}$/.test(msg.action)) throw new EvsealError('ERR_USAGE', 'ocpp message: action must be an OCPP action name');
  if (msg.message !== 'request' && msg.message !== 'response') throw new EvsealError('ERR_USAGE', 'ocpp message: message must be "request" or "response"');
  if (msg.from !== 'csms' && msg.from !== 'station') throw new EvsealError('ERR_USAGE', 'ocpp message: from must be "csms" or "station"');
  if (!isObject(msg.payload as Json) || !isJson(msg.payload)) throw new EvsealError('ERR_INVALID_INPUT', 'ocpp message: payload must be a JSON object');
  return { version, action: msg.action, message: msg.message, from: msg.from, payload: msg.payload as JsonObject };
}

/** A DataTransfer that is itself an evseal carrier is never subject to field sealing. */
export function isEvsealDataTransfer(m: CheckedMessage): boolean {
  return m.action === 'DataTransfer' && m.payload.vendorId === EVSEAL_VENDOR_ID;
}

export interface Match {
  field: CompiledField;
  tokens: string[];
  pointer: string;
}

/**
 * True when the object holding a field carries a signed meter value: a 2.x
 * sampled value with `signedMeterValue`, or a 1.6 sampled value whose
 * `format` is `SignedData`. Such a field is never sealed.
 */
function signedContainer(version: OcppVersion, container: JsonObject): boolean {
  return Object.hasOwn(container, 'signedMeterValue') || (version === '1.6' && container.format === 'SignedData');
}

/** The concrete fields of `payload` that the compiled rules seal, and those left clear because they belong to a signed meter value. */
export function matchFields(fields: readonly CompiledField[], payload: Json, version: OcppVersion): { matches: Match[]; skipped: string[] } {
  const matches: Match[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const field of fields) {
    for (const tokens of expandPattern(payload, field.tokens)) {
      const container = getAt(payload, tokens.slice(0, -1));
      if (!isObject(container)) continue;
      if (field.where && !Object.entries(field.where).every(([k, v]) => Object.hasOwn(container, k) && container[k] === v)) continue;
      const pointer = formatPointer(tokens);
      if (signedContainer(version, container)) {
        skipped.push(pointer);
        continue;
      }
      if (seen.has(pointer)) throw new EvsealError('ERR_USAGE', `ocpp policy: two rules seal ${pointer}`);
      seen.add(pointer);
      matches.push({ field, tokens, pointer });
    }
  }
  return { matches, skipped };
}
