import type { Logger } from 'pino';
import type { Role } from '../core/roles.js';
import type { GatewayStore, QueuedMessage } from './store/store.js';
import type { Metrics } from './metrics.js';
import type { Directory } from './directory.js';

/** A signed statement that the audit log holds an entry at `index` (docs/gateway-protocol.md, "Receipts"). */
export interface Receipt {
  index: number;
  size: number;
  root: string;
  time: number;
  sig: string;
}

/** Who sent a message, as authenticated at connect time. */
export interface Principal {
  id: string;
  role: Role;
  /** 'endpoint' (WebSocket /endpoint) or 'station' (OCPP charger) */
  via: 'endpoint' | 'station';
}

/** A message as submitted: the clear metadata the gateway routes on, and the sealed body. */
export interface Submission {
  format: 'envelope' | 'session' | 'ocpp-call' | 'ocpp-result' | 'ocpp-csr' | 'ocpp-cert';
  to: string;
  kind: string;
  msgId: string;
  /** Unix ms */
  expires: number;
  body: string;
}

/**
 * A live connection that can take deliveries for one recipient. The router
 * pushes messages in seq order; the connection reports a durable
 * acknowledgement with router.ack(recipient, seq) (cumulative) or a failed
 * attempt with router.failed(recipient, seq, reason).
 */
export interface DeliverySink {
  /** Max messages in flight (pushed, not yet acknowledged). */
  readonly window: number;
  push(m: QueuedMessage): void;
  /** A notice for this principal about one of its own messages (dead-lettered, expired). */
  notice?(n: { seq: number; type: string; msgId: string; peer: string; reason: string }): void;
  /** A newer connection of the same principal is on another cluster node: close this one. */
  evict?(): void;
}

export interface Router {
  /** Makes one message durable (and audited) and returns the receipt of its audit entry. Throws EvsealError on refusal. */
  submit(from: Principal, s: Submission): Promise<{ seq: number; duplicate: boolean; receipt: Receipt | undefined }>;
  /** Registers a connection as the delivery sink of `recipient`; returns the function that detaches it. */
  attach(recipient: string, sink: DeliverySink): () => void;
  /** Durable acknowledgement of exactly one delivered message; returns its delivery receipt (none if already gone). */
  ack(recipient: string, seq: number): Promise<Receipt[]>;
  /** Batched acknowledgement of several delivered messages, in one transaction. */
  ackMany(recipient: string, seqs: number[]): Promise<Receipt[]>;
  /**
   * A delivery attempt failed (rejected, did not open, timed out): the
   * message is pushed again alone after a pause, and dead-lettered (its
   * sender notified) after the configured number of attempts. Later
   * messages are not held back by a poison one.
   */
  failed(recipient: string, seq: number, reason: string): Promise<void>;
}

/** Everything a gateway module gets; nothing in it holds a content key or a CA key. */
export interface GatewayContext {
  store: GatewayStore;
  log: Logger;
  metrics: Metrics;
  router: Router;
  /** Bundle publication; absent in component tests that do not need it. */
  directory?: Directory;
  /** Firmware rollouts, told of stations' firmware statuses and security events by the built-in CSMS; absent when not needed. */
  firmware?: {
    firmwareStatus(stationId: string, status: string, requestId: number | undefined): void;
    securityEvent(stationId: string, type: string): void;
  };
  now: () => number;
}
