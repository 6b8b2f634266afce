import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The gateway's Prometheus metrics. Labels carry only kinds and outcomes,
 * never ids or payload bytes, so /metrics leaks no more than counts.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'evseal_process_' });
  const m = {
    registry,
    connections: new Gauge({ name: 'evseal_connections', help: 'open connections by kind (endpoint, station)', labelNames: ['kind'], registers: [registry] }),
    connectionsRefused: new Counter({ name: 'evseal_connections_refused_total', help: 'refused connection attempts by kind and reason', labelNames: ['kind', 'reason'], registers: [registry] }),
    routed: new Counter({ name: 'evseal_messages_routed_total', help: 'messages accepted durably for routing', labelNames: ['format'], registers: [registry] }),
    delivered: new Counter({ name: 'evseal_messages_delivered_total', help: 'messages acknowledged by their recipient', registers: [registry] }),
    queued: new Gauge({ name: 'evseal_messages_queued', help: 'messages held in mailboxes (as of the last change seen by this process)', registers: [registry] }),
    expired: new Counter({ name: 'evseal_messages_expired_total', help: 'messages dropped at their expiry before delivery', registers: [registry] }),
    deadLettered: new Counter({ name: 'evseal_messages_dead_lettered_total', help: 'messages moved to the dead-letter store', registers: [registry] }),
    refused: new Counter({ name: 'evseal_messages_refused_total', help: 'submissions refused, by error code', labelNames: ['code'], registers: [registry] }),
    ocppCalls: new Counter({ name: 'evseal_ocpp_calls_total', help: 'OCPP calls handled, by protocol and action', labelNames: ['protocol', 'action'], registers: [registry] }),
    prekeyClaims: new Counter({ name: 'evseal_prekey_claims_total', help: 'one-time prekey claims, by outcome (claimed, none left, limited: over the per-claimer quota)', labelNames: ['outcome'], registers: [registry] }),
    firmwareDownloads: new Counter({
      name: 'evseal_firmware_requests_total',
      help: 'firmware download requests, by outcome (served, forwarded to the node holding the package, not-found, throttled: too many not-found from one address, busy: too many at once, unreachable: the holding node could not be reached, replica: a whole package sent to another node)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    parkedReports: new Counter({
      name: 'evseal_firmware_reports_parked_total',
      help: "station reports for a rollout another node holds, by outcome (parked: stored for that node, taken: applied here, as the rollout's holder, aged: removed unclaimed)",
      labelNames: ['outcome'],
      registers: [registry],
    }),
    badMessages: new Counter({ name: 'evseal_bad_messages_total', help: 'malformed or oversized frames', labelNames: ['kind'], registers: [registry] }),
    acceptLatency: new Histogram({
      name: 'evseal_accept_latency_seconds',
      help: 'from a submission frame arriving to its durable acknowledgement',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'evseal_delivery_latency_seconds',
      help: 'from durable acceptance to the recipient acknowledgement',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
