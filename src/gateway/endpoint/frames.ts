import { EvsealError } from '../../core/errors.js';

/**
 * Client → gateway frames of the endpoint protocol (docs/gateway-protocol.md
 * §3), checked once here; everything past this point gets typed values.
 * Unknown fields are refused, so a frame has one meaning.
 */
export type ClientFrame =
  | { t: 'auth'; chain: string[]; nonce: string; sig: string }
  | { t: 'send'; ref: number; format: 'envelope' | 'session' | 'ocpp-call' | 'ocpp-cert'; to?: string; kind?: string; id?: string; expires?: number; body: string }
  | { t: 'ack'; seqs: number[] }
  | { t: 'nack'; seq: number; reason: string }
  | { t: 'notice-ack'; seq: number }
  | { t: 'publish-bundle'; ref: number; bundle: string }
  | { t: 'get-bundle'; ref: number; id: string }
  | { t: 'publish-prekeys'; ref: number; prekeys: unknown[] }
  | { t: 'claim-prekey'; ref: number; id: string }
  | { t: 'publish-crl'; ref: number; pem: string }
  | { t: 'get-crls'; ref: number }
  | { t: 'audit-proof'; ref: number; index: number; size: number }
  | { t: 'audit-consistency'; ref: number; from: number; to: number }
  | { t: 'firmware-held'; ref: number; packageId: string }
  | { t: 'firmware-chunk'; ref: number; packageId: string; size: number; offset: number; data: string }
  | { t: 'firmware-commit'; ref: number; packageId: string; sha256: string }
  | { t: 'firmware-delete'; ref: number; packageId: string; force?: boolean }
  | { t: 'rollout'; ref: number; id: string; packageId: string; stations?: string[]; all?: boolean; lifetime: number }
  | { t: 'rollout-status'; ref: number; id: string };

export type FieldKind = 'string' | 'int' | 'string[]' | 'int[]' | 'array' | 'bool';
/** Each frame type's fields and their kinds (`?`: optional). */
export const FRAME_FIELDS: Record<ClientFrame['t'], Record<string, FieldKind | `${FieldKind}?`>> = {
  auth: { chain: 'string[]', nonce: 'string', sig: 'string' },
  send: { ref: 'int', format: 'string', to: 'string?', kind: 'string?', id: 'string?', expires: 'int?', body: 'string' },
  ack: { seqs: 'int[]' },
  nack: { seq: 'int', reason: 'string' },
  'notice-ack': { seq: 'int' },
  'publish-bundle': { ref: 'int', bundle: 'string' },
  'get-bundle': { ref: 'int', id: 'string' },
  'publish-prekeys': { ref: 'int', prekeys: 'array' },
  'claim-prekey': { ref: 'int', id: 'string' },
  'publish-crl': { ref: 'int', pem: 'string' },
  'get-crls': { ref: 'int' },
  'audit-proof': { ref: 'int', index: 'int', size: 'int' },
  'audit-consistency': { ref: 'int', from: 'int', to: 'int' },
  'firmware-held': { ref: 'int', packageId: 'string' },
  'firmware-chunk': { ref: 'int', packageId: 'string', size: 'int', offset: 'int', data: 'string' },
  'firmware-commit': { ref: 'int', packageId: 'string', sha256: 'string' },
  'firmware-delete': { ref: 'int', packageId: 'string', force: 'bool?' },
  rollout: { ref: 'int', id: 'string', packageId: 'string', stations: 'string[]?', all: 'bool?', lifetime: 'int' },
  'rollout-status': { ref: 'int', id: 'string' },
};

function ok(v: unknown, k: FieldKind): boolean {
  switch (k) {
    case 'string':
      return typeof v === 'string';
    case 'int':
      return Number.isSafeInteger(v) && (v as number) >= 0;
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'int[]':
      return Array.isArray(v) && v.length <= 4096 && v.every((x) => Number.isSafeInteger(x) && x > 0);
    case 'array':
      return Array.isArray(v);
    case 'bool':
      return typeof v === 'boolean';
  }
}

/** The `ref` of a frame that failed validation, if one can be read, so the error can be correlated. */
export function refOf(v: unknown): number | undefined {
  const r = (v as { ref?: unknown } | null)?.ref;
  return Number.isSafeInteger(r) ? (r as number) : undefined;
}

export function parseClientFrame(text: string): ClientFrame {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'frame is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EvsealError('ERR_INVALID_INPUT', 'frame is not an object');
  const o = v as Record<string, unknown>;
  const t = o.t;
  if (typeof t !== 'string' || !Object.hasOwn(FRAME_FIELDS, t)) throw new EvsealError('ERR_INVALID_INPUT', 'unknown frame type');
  const spec = FRAME_FIELDS[t as ClientFrame['t']];
  for (const k of Object.keys(o)) {
    if (k !== 't' && !Object.hasOwn(spec, k)) throw new EvsealError('ERR_INVALID_INPUT', `${t}: unknown field ${k}`);
  }
  for (const [k, want] of Object.entries(spec)) {
    const optional = want.endsWith('?');
    const kind = (optional ? want.slice(0, -1) : want) as FieldKind;
    if (o[k] === undefined) {
      if (!optional) throw new EvsealError('ERR_INVALID_INPUT', `${t}: missing ${k}`);
      continue;
    }
    if (!ok(o[k], kind)) throw new EvsealError('ERR_INVALID_INPUT', `${t}: ${k} must be ${kind}`);
  }
  if (t === 'nack' && (o.reason as string).length > 200) throw new EvsealError('ERR_INVALID_INPUT', 'nack: reason too long');
  if (t === 'send' && !['envelope', 'session', 'ocpp-call', 'ocpp-cert'].includes(o.format as string)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'send: format must be envelope, session, ocpp-call or ocpp-cert');
  }
  if (t === 'rollout' && (o.all === true) === (o.stations !== undefined)) throw new EvsealError('ERR_INVALID_INPUT', 'rollout: give either stations or all: true');
  return o as unknown as ClientFrame;
}
