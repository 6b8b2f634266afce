import { envelopeHeader } from '../../core/envelope.js';
import { EvsealError } from '../../core/errors.js';
import { extractEnvelopes } from '../../ocpp/carrier.js';
import type { GatewayContext } from '../context.js';
import { stationPrincipal } from './carriers.js';

/**
 * Routes the sealed fields a station put into a standard OCPP message
 * (2.0.1/2.1 customData carriers, or the 1.6 side DataTransfer): each
 * envelope goes to the recipient its clear header names, and is durable
 * before the call is answered, so the station's CALLRESULT covers the sealed
 * parts too. The clear rest of the message is the CSMS's business.
 * Returns how many envelopes were routed; a refused one throws EvsealError,
 * counted once (here, or by the router). Every header is checked before any
 * envelope is routed.
 */
export async function routeSealedFields(ctx: GatewayContext, stationId: string, payload: unknown): Promise<number> {
  let envs: { h: ReturnType<typeof envelopeHeader>; body: string }[];
  try {
    envs = extractEnvelopes(payload).map((body) => {
      const h = envelopeHeader(body);
      if (h.from !== stationId) throw new EvsealError('ERR_POLICY_DENIED', 'a sealed field names another sender than the station');
      return { h, body };
    });
  } catch (e) {
    // refused before the router, which counts its own refusals
    if (e instanceof EvsealError) ctx.metrics.refused.inc({ code: e.code });
    throw e;
  }
  for (const { h, body } of envs) {
    await ctx.router.submit(stationPrincipal(stationId), { format: 'envelope', to: h.to, kind: h.kind, msgId: h.id, expires: h.expires * 1000, body });
  }
  return envs.length;
}

/** A cheap pre-check on a raw frame (proxy mode), so frames without carriers are forwarded at once. */
export const mayCarrySealedFields = (raw: string): boolean => raw.includes('org.evseal');
