import { pino } from 'pino';
import { EvsealError } from '../../core/errors.js';
import { SIGNER_SETTINGS } from '../audit/log.js';
import { DEFAULT_GATEWAY_ID, loadOrCreateGatewayKey } from '../identity.js';
import { PostgresStore } from '../store/postgres.js';
import { JetStreamBus } from './bus.js';

const STREAM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const PREFIX_RE = /^[A-Za-z0-9_-]{1,32}(\.[A-Za-z0-9_-]{1,32}){0,3}$/;

/**
 * What a cluster node shares with the others: the PostgreSQL store and,
 * with a bus, NATS JetStream. Everything else a node holds is its
 * connections (docs/cluster.md).
 */
export async function openClusterParts(o: {
  store: string;
  bus?: string;
  stream?: string;
  prefix?: string;
  /** holds the gateway key shared by every node */
  dataDir: string;
  id?: string;
}): Promise<{ store: PostgresStore; bus: JetStreamBus | undefined }> {
  if (o.stream !== undefined && !STREAM_RE.test(o.stream)) throw new EvsealError('ERR_USAGE', '--bus-stream must be 1 to 64 of A-Z a-z 0-9 _ -');
  if (o.prefix !== undefined && !PREFIX_RE.test(o.prefix)) throw new EvsealError('ERR_USAGE', '--bus-prefix must be 1 to 4 dot-separated tokens of A-Z a-z 0-9 _ -');
  if (o.bus !== undefined && !/^nats:\/\/[^/]+$/.test(o.bus)) throw new EvsealError('ERR_USAGE', '--bus must be nats://host:port');
  const store = await PostgresStore.open({ url: o.store, outbox: o.bus !== undefined, poolSize: 6 });
  try {
    // The first node records the cluster's signer in one statement, so nodes starting together never see half of it;
    // a node with another key is then refused when its audit log opens.
    const key = loadOrCreateGatewayKey(o.dataDir, o.id ?? DEFAULT_GATEWAY_ID);
    await store.putSettingsIfAbsent([
      [SIGNER_SETTINGS.gateway, key.id],
      [SIGNER_SETTINGS.publicKey, key.publicKeyB64u],
    ]);
    if (o.bus === undefined) return { store, bus: undefined };
    const log = pino({ base: { component: 'evseal-bus' }, timestamp: pino.stdTimeFunctions.isoTime });
    const bus = await JetStreamBus.connect({ url: o.bus, store, log, stream: o.stream, prefix: o.prefix, node: o.id });
    return { store, bus };
  } catch (e) {
    await store.close();
    throw e;
  }
}
