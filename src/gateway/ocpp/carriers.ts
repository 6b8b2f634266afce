import { envelopeHeader } from '../../core/envelope.js';
import { EvsealError } from '../../core/errors.js';
import type { GatewayContext, Principal } from '../context.js';
import { routeSealedFields } from './sealed-fields.js';

/** The DataTransfer vendorId of every evseal carrier, in every OCPP version (docs/ocpp-carriers.md). */
export const EVSEAL_VENDOR = 'org.evseal';

/** A DataTransfer response body; the same shape is valid in 1.6, 2.0.1 and 2.1. */
export interface CarrierResult {
  status: 'Accepted' | 'Rejected' | 'UnknownMessageId' | 'UnknownVendorId';
  data?: string;
}

export function stationPrincipal(stationId: string): Principal {
  return { id: stationId, role: 'charger', via: 'station' };
}

const rejected = (code: string): CarrierResult => ({ status: 'Rejected', data: code });

/**
 * A charger → gateway DataTransfer with vendorId org.evseal. An envelope is
 * answered Accepted only after the router made it durable, so the charger may
 * drop its copy then. Refusals are Rejected with the stable error code as
 * data (counted here only when refused before reaching the router, which
 * counts its own). Unexpected failures throw, and the caller answers with a CALLERROR:
 * never Accepted for something not stored.
 */
export async function handleCarrier(ctx: GatewayContext, stationId: string, messageId: unknown, data: unknown): Promise<CarrierResult> {
  try {
    switch (messageId) {
      case 'envelope':
        return await submitEnvelope(ctx, stationId, data);
      case 'get-bundle': {
        const bundle = await ctx.store.getBundle(textArg(data));
        return bundle === undefined ? rejected('ERR_NOT_FOUND') : { status: 'Accepted', data: bundle };
      }
      case 'publish-bundle': {
        if (!ctx.directory) return { status: 'UnknownMessageId' };
        await ctx.directory.publishBundle({ id: stationId, role: 'charger' }, textArg(data));
        return { status: 'Accepted' };
      }
      case 'session':
        return await submitSession(ctx, stationId, data);
      case 'sealed-fields':
        // 1.6: the sealed fields of a standard message travel beside it (docs/ocpp.md)
        try {
          await routeSealedFields(ctx, stationId, { vendorId: EVSEAL_VENDOR, messageId, data });
        } catch (e) {
          if (!(e instanceof EvsealError)) throw e;
          // already counted (by routeSealedFields or the router)
          ctx.log.info({ stationId, carrier: messageId, code: e.code }, 'carrier refused');
          return rejected(e.code);
        }
        return { status: 'Accepted' };
      case 'publish-prekeys': {
        if (!ctx.directory) return { status: 'UnknownMessageId' };
        const list = jsonArg(data, 'publish-prekeys');
        if (!Array.isArray(list)) throw new EvsealError('ERR_INVALID_INPUT', 'publish-prekeys carrier: expected a JSON array of signed prekeys');
        const count = await ctx.directory.addStationOneTimePrekeys(stationId, list);
        return { status: 'Accepted', data: JSON.stringify({ count }) };
      }
      case 'claim-prekey': {
        if (!ctx.directory) return { status: 'UnknownMessageId' };
        const { json, outcome } = await ctx.directory.claimOneTimePrekey(stationId, textArg(data));
        ctx.metrics.prekeyClaims.inc({ outcome });
        return json === undefined ? rejected('ERR_NOT_FOUND') : { status: 'Accepted', data: json };
      }
      default:
        return { status: 'UnknownMessageId' };
    }
  } catch (e) {
    if (!(e instanceof EvsealError)) throw e;
    ctx.metrics.refused.inc({ code: e.code });
    ctx.log.info({ stationId, carrier: messageId, code: e.code }, 'carrier refused');
    return rejected(e.code);
  }
}

function textArg(data: unknown): string {
  if (typeof data !== 'string' || data.length === 0) throw new EvsealError('ERR_INVALID_INPUT', 'carrier data must be a non-empty string');
  return data;
}

/** Carrier data that is JSON text, parsed. */
function jsonArg(data: unknown, carrier: string): unknown {
  const text = textArg(data);
  try {
    return JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', `${carrier} carrier data is not JSON`);
  }
}

async function submitEnvelope(ctx: GatewayContext, stationId: string, data: unknown): Promise<CarrierResult> {
  const body = textArg(data);
  const h = envelopeHeader(body);
  // A station authenticated as X may only send as X: the recipient verifies
  // the signature anyway, but the mailbox and the audit log name the sender.
  if (h.from !== stationId) throw new EvsealError('ERR_POLICY_DENIED', 'envelope sender differs from the station id');
  let r;
  try {
    r = await ctx.router.submit(stationPrincipal(stationId), { format: 'envelope', to: h.to, kind: h.kind, msgId: h.id, expires: h.expires * 1000, body });
  } catch (e) {
    if (!(e instanceof EvsealError)) throw e;
    // the router counts and logs its own refusals
    return rejected(e.code);
  }
  ctx.log.info({ stationId, msgId: h.id, to: h.to, kind: h.kind, seq: r.seq, duplicate: r.duplicate }, 'carrier envelope accepted');
  return { status: 'Accepted', data: JSON.stringify({ seq: r.seq, duplicate: r.duplicate, receipt: r.receipt ?? null }) };
}

/** A session message (docs/protocol.md §14): its clear metadata travels beside the opaque body, as JSON text. */
async function submitSession(ctx: GatewayContext, stationId: string, data: unknown): Promise<CarrierResult> {
  const m = jsonArg(data, 'session');
  const o = m as Record<string, unknown>;
  const keys = ['to', 'kind', 'id', 'expires', 'body'];
  if (typeof m !== 'object' || m === null || Array.isArray(m) || Object.keys(o).some((k) => !keys.includes(k))) {
    throw new EvsealError('ERR_INVALID_INPUT', 'session carrier: expected {to, kind, id, expires, body}');
  }
  if (typeof o.to !== 'string' || typeof o.kind !== 'string' || typeof o.id !== 'string' || !Number.isSafeInteger(o.expires) || typeof o.body !== 'string') {
    throw new EvsealError('ERR_INVALID_INPUT', 'session carrier: bad field types');
  }
  let r;
  try {
    r = await ctx.router.submit(stationPrincipal(stationId), { format: 'session', to: o.to, kind: o.kind, msgId: o.id, expires: o.expires as number, body: o.body });
  } catch (e) {
    if (!(e instanceof EvsealError)) throw e;
    return rejected(e.code);
  }
  return { status: 'Accepted', data: JSON.stringify({ seq: r.seq, duplicate: r.duplicate, receipt: r.receipt ?? null }) };
}
