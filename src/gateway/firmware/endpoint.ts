import { fromB64u } from '../../core/base64url.js';
import { EvsealError } from '../../core/errors.js';
import type { Principal } from '../context.js';
import type { ClientFrame } from '../endpoint/frames.js';
import type { PackageIndex } from '../../firmware/package.js';
import type { PackageStore } from './packages.js';
import type { Rollout, RolloutEvent, RolloutManager } from './rollouts.js';
import { putOwn } from '../own-keys.js';

export type FirmwareFrame = Extract<ClientFrame, { t: 'firmware-held' | 'firmware-chunk' | 'firmware-commit' | 'firmware-delete' | 'rollout' | 'rollout-status' }>;

/** Largest chunk of package bytes in one frame (its base64url text stays under the default frame limit). */
export const MAX_CHUNK_BYTES = 512 * 1024;
/** Longest a rollout's calls wait for offline stations (the router's own lifetime cap applies too). */
const MAX_LIFETIME_SEC = 30 * 24 * 3600;

export interface EndpointFirmware {
  /** Answers one firmware frame of an authenticated endpoint (docs/gateway-protocol.md §3.5). */
  handle(p: Principal, f: FirmwareFrame): Promise<Record<string, unknown>>;
  subscribe(owner: string, fn: (e: RolloutEvent) => void): () => void;
}

/** The wire form of a rollout: every station's status. */
function rolloutJson(r: Rollout): Record<string, unknown> {
  const stations: Record<string, unknown> = {};
  for (const [id, s] of Object.entries(r.stations)) {
    putOwn(stations, id, { status: s.status, at: s.at, ...(s.msgId ? { msgId: s.msgId } : {}), ...(s.securityEvents ? { securityEvents: s.securityEvents } : {}) });
  }
  return { id: r.id, packageId: r.packageId, requestId: r.requestId, created: r.created, expires: r.expires, stations };
}

/**
 * What the other nodes of a cluster learn of this node's packages
 * (./replication.ts); on a single node, its own record (./holders.ts).
 */
export interface PackagePeers {
  /** Commits an upload here (`commit`), its bytes hashing to `sha256`, and records it. */
  commit(packageId: string, sha256: Uint8Array, commit: () => Promise<PackageIndex>): Promise<PackageIndex>;
  /** The package was deleted through this node; whether another node held it. */
  deleted(packageId: string): Promise<boolean>;
}

/**
 * The endpoint-protocol side of firmware delivery: package upload in
 * chunks (resumable, idempotent by package id), deletion, and rollouts. Both are for
 * identities the route policy lets make `firmware` calls to chargers.
 */
export function endpointFirmware(packages: PackageStore, rollouts: RolloutManager, peers: PackagePeers): EndpointFirmware {
  return {
    subscribe: (owner, fn) => rollouts.subscribe(owner, fn),
    async handle(p, f) {
      switch (f.t) {
        case 'firmware-held':
          rollouts.checkRole(p);
          return { t: 'firmware', ref: f.ref, ...(await packages.held(f.packageId)) };
        case 'firmware-chunk': {
          rollouts.checkRole(p);
          const data = fromB64u(f.data, 'data');
          if (data.length === 0 || data.length > MAX_CHUNK_BYTES) throw new EvsealError('ERR_INVALID_INPUT', `a chunk holds 1..${MAX_CHUNK_BYTES} bytes`);
          return { t: 'firmware', ref: f.ref, ...(await packages.write(f.packageId, f.size, f.offset, data)) };
        }
        case 'firmware-commit': {
          rollouts.checkRole(p);
          const sha256 = fromB64u(f.sha256, 'sha256');
          const index = await peers.commit(f.packageId, sha256, () => packages.commit(f.packageId, sha256));
          const held = await packages.held(f.packageId);
          return { t: 'firmware', ref: f.ref, ...held, version: index.version, model: index.model, publisher: index.publisher, devices: index.deviceIds.length };
        }
        case 'firmware-delete': {
          const here = await rollouts.deletePackage(p, f.packageId, f.force === true);
          const elsewhere = await peers.deleted(f.packageId);
          return { t: 'firmware', ref: f.ref, packageId: f.packageId, held: 0, complete: false, deleted: here || elsewhere };
        }
        case 'rollout': {
          if (f.lifetime < 1 || f.lifetime > MAX_LIFETIME_SEC) throw new EvsealError('ERR_INVALID_INPUT', `rollout lifetime must be 1..${MAX_LIFETIME_SEC} seconds`);
          const r = await rollouts.start(p, { id: f.id, packageId: f.packageId, stations: f.stations, all: f.all === true, lifetimeMs: f.lifetime * 1000 });
          return { t: 'rollout', ref: f.ref, rollout: rolloutJson(r) };
        }
        case 'rollout-status':
          return { t: 'rollout', ref: f.ref, rollout: rolloutJson(await rollouts.get(p, f.id)) };
      }
    },
  };
}
