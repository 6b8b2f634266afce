import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EvsealError } from '../../core/errors.js';
import { writeFileAtomic } from '../../keystore/atomic-file.js';
import type { GatewayContext, Principal } from '../context.js';
import { routeAllowed, type RoutePolicy } from '../route-policy.js';
import { isOcppProtocol, type OcppProtocol } from '../ocpp/validators.js';
import { firmwarePath } from './http.js';
import type { PackageStore } from './packages.js';
import { own, putOwn } from '../own-keys.js';
import { STATION_ID } from '../ocpp/auth.js';
import { ID_RE } from '../../core/roles.js';

/**
 * Statuses a station ends a rollout in. Installed is success; the others
 * are (Signed)FirmwareStatusNotification failures (OCPP 2.0.1 L01, 1.6
 * security whitepaper: the same enumeration) or the gateway's own
 * verdicts: NotInPackage (no key slot for it), UnknownStation (not
 * registered), NeverBooted (no OCPP version known, so no call to pick).
 * Rejected, Expired and Undeliverable are seen by the rollout client (the
 * station's answer to the call, the router's expiry and dead-letter notices).
 */
export const INSTALLED = 'Installed';
export const FAILED_STATUSES: ReadonlySet<string> = new Set([
  'DownloadFailed',
  'InstallationFailed',
  'InstallVerificationFailed',
  'InvalidSignature',
  'InvalidCertificate',
  'RevokedCertificate',
  'NotInPackage',
  'UnknownStation',
  'NeverBooted',
  'Rejected',
  'Expired',
  'Undeliverable',
]);
export const isTerminal = (status: string): boolean => status === INSTALLED || FAILED_STATUSES.has(status);

export interface StationProgress {
  status: string;
  /** Unix ms of the last change */
  at: number;
  protocol?: OcppProtocol;
  /** the message id of the UpdateFirmware / SignedUpdateFirmware call (ocpp-result inReplyTo, expiry notices) */
  msgId?: string;
  /** security events the station raised during the rollout (types only) */
  securityEvents?: string[];
}

export interface Rollout {
  id: string;
  owner: string;
  packageId: string;
  requestId: number;
  created: number;
  expires: number;
  stations: Record<string, StationProgress>;
}

const ROLLOUT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** What a station reported that concerns its rollout: a firmware status (with the call's requestId when the notification carries it) or a security event type. */
export type StationReport = { station: string; status: string; requestId?: number } | { station: string; security: string };

/**
 * A station's report that matched no rollout on the node it reached (a
 * cluster): kept in the store under `rollout-report.<time>.<n>.<random>`
 * until the node holding its rollout takes it, so that a report reaching a
 * cluster while its rollout's node is gone (before another takes the rollout
 * over) is applied by the node that takes it over. `at`: Unix ms, the time
 * it reached the cluster.
 */
export interface ParkedReport {
  key: string;
  report: StationReport;
  at: number;
}
const PARKED_PREFIX = 'rollout-report.';
const PARKED_KEY = /^rollout-report\.[0-9]{15}\.[0-9]{9}\.[0-9a-f]{12}$/;

/** A parked report as the node that parked it published it (cluster/bus.ts), or undefined if it is not one. */
export function parseParkedReport(text: string): ParkedReport | undefined {
  const v = parseObject(text);
  return v && parkedFrom(v);
}

/** Exactly {key, report, at}. */
function parkedFrom(v: Record<string, unknown>): ParkedReport | undefined {
  if (Object.keys(v).length !== 3 || typeof v.key !== 'string' || !PARKED_KEY.test(v.key) || !Number.isSafeInteger(v.at)) return undefined;
  const report = typeof v.report === 'object' && v.report !== null && !Array.isArray(v.report) ? reportFrom(v.report as Record<string, unknown>) : undefined;
  return report && { key: v.key, report, at: v.at as number };
}

/** A rollout event as the node holding the rollout published it for the owner's connection (cluster/bus.ts), or undefined if it is not one. */
export function parseOwnerEvent(text: string): { owner: string; event: RolloutEvent } | undefined {
  const v = parseObject(text);
  if (!v || Object.keys(v).length !== 2 || typeof v.owner !== 'string' || !ID_RE.test(v.owner) || typeof v.event !== 'object' || v.event === null) return undefined;
  const { t, id, at, ...rest } = v.event as Record<string, unknown>;
  if (t !== 'rollout-event' || typeof id !== 'string' || !ROLLOUT_ID.test(id) || !Number.isSafeInteger(at)) return undefined;
  const r = reportFrom(rest);
  if (!r || 'requestId' in r) return undefined;
  return { owner: v.owner, event: { t, id, at: at as number, ...r } };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Exactly {station, status}, {station, status, requestId} or {station, security}. */
function reportFrom(o: Record<string, unknown>): StationReport | undefined {
  // the CSMS validated these against the OCPP schemas (a status is an enumeration, a security event type a string of up to 50)
  const ok = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 64;
  const keys = Object.keys(o).sort().join(',');
  if (typeof o.station !== 'string' || !STATION_ID.test(o.station)) return undefined;
  if (keys === 'security,station') return ok(o.security) ? { station: o.station, security: o.security } : undefined;
  if (keys === 'station,status') return ok(o.status) ? { station: o.station, status: o.status } : undefined;
  if (keys === 'requestId,station,status') return ok(o.status) && Number.isSafeInteger(o.requestId) ? { station: o.station, status: o.status, requestId: o.requestId as number } : undefined;
  return undefined;
}

/** What a rollout client is told as it happens (docs/gateway-protocol.md §3.5). */
export type RolloutEvent =
  | { t: 'rollout-event'; id: string; station: string; status: string; at: number }
  | { t: 'rollout-event'; id: string; station: string; security: string; at: number };

export interface OcppFirmwareFields {
  /** 1.6 SignedUpdateFirmware requires both; 2.0.1/2.1 UpdateFirmware takes them when given */
  signingCertificate: string;
  signature: string;
}

export interface RolloutOptions {
  packages: PackageStore;
  policy: RoutePolicy;
  /** http(s)://host:port the stations download from */
  baseUrl: () => string;
  /** the publisher certificate and manifest signature of a package, for the OCPP firmware fields */
  fields: (packageId: string) => Promise<OcppFirmwareFields>;
  dataDir: string;
  maxStations?: number;
  /** this gateway node's address (GatewayOptions.nodeUrl), recorded in the store with each rollout it holds */
  node: () => string;
  /** in a cluster: copies a package another node holds, before a rollout of it starts here (./replication.ts) */
  ensurePackage?: (packageId: string) => Promise<unknown>;
  /**
   * The store is shared with other nodes (a cluster): the store's copy of a
   * rollout then decides which node holds it (compare-and-set writes,
   * syncHolders). On one node every copy is its own, whatever address it
   * was written under.
   */
  shared: boolean;
}

/**
 * The store's copy of a rollout, with the node that holds it: in a cluster
 * one node (the one that started it) holds each rollout and applies its
 * stations' reports; the others answer from this copy.
 */
const copyKey = (id: string): string => `rollout.${id}`;
/** The copy's text, {node, rollout}, around the rollout's JSON as encoded once for the file and the copy. */
const copyText = (node: string, rolloutJson: string): string => `{"node":${JSON.stringify(node)},"rollout":${rolloutJson}}`;
/** A stored copy as read from the store; absent or cleared (empty) is none. */
const parseCopy = (text: string | undefined): StoredRollout | undefined => (text ? (JSON.parse(text) as StoredRollout) : undefined);
interface StoredRollout {
  node: string;
  rollout: Rollout;
}
/** A stored copy as read, with its stations that have no final status yet. */
interface StoredCopy {
  key: string;
  text: string;
  version: string;
  stored: StoredRollout;
  open: string[];
}
const copyEntry = (key: string, text: string, version: string): StoredCopy | undefined => {
  const stored = parseCopy(text);
  return stored && { key, text, version, stored, open: openStations(stored.rollout) };
};
/** The stations of a rollout without a final status. */
const openStations = (r: Rollout): string[] => Object.keys(r.stations).filter((s) => !isTerminal(r.stations[s]!.status));
/** Whether a rollout may still send one of its stations (`open`: those without a final status) to its package: its call is still deliverable or the station has started. */
function mayStillUse(r: Rollout, now: number, open = openStations(r)): boolean {
  return open.some((s) => now < r.expires || r.stations[s]!.status !== 'Queued');
}

/** The longest a changed rollout waits to be written (#save): the most a crash can lose of a large one's statuses. */
const MAX_FLUSH_GAP_MS = 2000;

/** Rollouts are forgotten this long after they expire. */
const KEEP_AFTER_EXPIRY_MS = 7 * 24 * 3600_000;

/**
 * Firmware rollouts: for each station, the gateway queues an
 * UpdateFirmware (2.0.1, 2.1) or SignedUpdateFirmware (1.6) call through
 * the router, as an ocpp-call from the rollout's owner of kind `firmware`
 * (so the route policy decides who may roll out, the call is audited, waits
 * in the mailbox of an offline station until the rollout expires, and the
 * station's answer goes back to the owner as an ocpp-result). The station's
 * (Signed)FirmwareStatusNotifications and SecurityEventNotifications reach
 * the built-in CSMS, which hands them here: the per-station status is kept
 * in DATA/firmware/rollouts/<id>.json and pushed to the owner while it is
 * connected.
 */
export class RolloutManager {
  readonly #ctx: GatewayContext;
  readonly #o: RolloutOptions;
  readonly #dir: string;
  readonly #rollouts = new Map<string, Rollout>();
  /** `${station}\0${requestId}` → rollout id */
  readonly #byRequest = new Map<string, string>();
  readonly #listeners = new Map<string, Set<(e: RolloutEvent) => void>>();
  readonly #dirty = new Set<string>();
  readonly #starting = new Map<string, { packageId: string; run: Promise<Rollout> }>();
  /** The store's copy of each rollout held here, as last written or read: the next write replaces exactly it. */
  readonly #written = new Map<string, string>();
  /** Per rollout, the copy write under way: the next waits for it, so the store never ends with an older state. */
  readonly #copying = new Map<string, Promise<void>>();
  #flushing = false;
  /** The paced write #save scheduled, cancelled by a write made before it */
  #scheduled: { cancel(): void } | undefined;
  /** performance.now() before which the next paced write waits (#save) */
  #nextFlushAt = 0;
  /** Parked reports applied here, by rollout: their records go once the rollout's copy with them is written (flush). */
  readonly #takenParked = new Map<string, Set<string>>();
  /** The store's rollout copies as last read, by key, with the version they were read at (#storedCopies). */
  readonly #copies = new Map<string, StoredCopy>();
  /** Parked reports are stored one after another, and taken one after another, so that a station's reports keep their order. */
  #parking: Promise<void> = Promise.resolve();
  #taking: Promise<unknown> = Promise.resolve();
  #parkedCount = 0;
  /**
   * Stations with an open place in a rollout another node holds: from the
   * store's copies at the last syncHolders, and those whose status was
   * parked since. Only their security events are parked; most security
   * events (every boot raises some) concern no rollout.
   */
  #openElsewhere = new Set<string>();

  constructor(ctx: GatewayContext, o: RolloutOptions) {
    this.#ctx = ctx;
    this.#o = o;
    this.#dir = join(o.dataDir, 'firmware', 'rollouts');
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const now = ctx.now();
    for (const f of readdirSync(this.#dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const r = JSON.parse(readFileSync(join(this.#dir, f), 'utf8')) as Rollout;
        this.#index(r);
      } catch (e) {
        ctx.log.warn({ file: f, err: (e as Error).message }, 'rollout state unreadable');
      }
    }
    this.#prune(now);
  }

  #index(r: Rollout): void {
    this.#rollouts.set(r.id, r);
    for (const s of Object.keys(r.stations)) this.#byRequest.set(`${s}\0${r.requestId}`, r.id);
  }

  /** Refuses a principal that may not upload packages or roll them out: the route policy's `firmware` rule to chargers decides. */
  checkRole(p: Principal): void {
    if (!routeAllowed(this.#o.policy, p.role, 'firmware', 'charger', 'ocpp-call')) throw new EvsealError('ERR_POLICY_DENIED', `route policy forbids firmware rollouts from role ${p.role}`);
  }

  /** Stops holding a rollout here: memory and data directory (the store's copy is another node's now, or cleared). */
  #drop(id: string): void {
    const r = this.#rollouts.get(id);
    if (!r) return;
    this.#rollouts.delete(id);
    for (const s of Object.keys(r.stations)) if (this.#byRequest.get(`${s}\0${r.requestId}`) === id) this.#byRequest.delete(`${s}\0${r.requestId}`);
    this.#written.delete(id);
    this.#dirty.delete(id);
    this.#takenParked.delete(id); // their records stay, for the node that holds the rollout now
    rmSync(join(this.#dir, `${id}.json`), { force: true });
  }

  /**
   * In a cluster, at start and then every third of the node timeout:
   * - a rollout held here whose store copy names another node is dropped
   *   here (that node took it over while this one was silent for longer
   *   than the node timeout); reports for it are then parked for that node;
   * - an open rollout held by a node that is gone (`gone`: their
   *   addresses) is taken over: claimed in the store by replacing exactly
   *   the copy read, so of several nodes trying at once one wins, and held
   *   here as if started here (its stations' reports applied, its owner
   *   told). A rollout with nothing left to change stays where it is;
   * - another node's copy of a rollout long past its expiry is removed (as
   *   its holder does with its own, which a node gone for good never does);
   * - the stations with an open place in another node's rollout are noted
   *   (their security events are parked).
   * Returns the ids taken over.
   */
  async syncHolders(gone: ReadonlySet<string>): Promise<string[]> {
    const taken: string[] = [];
    const now = this.#ctx.now();
    const self = this.#o.node();
    const openElsewhere = new Set<string>();
    for (const { key, text, stored, open } of await this.#storedCopies()) {
      const r = stored.rollout;
      if (stored.node === self) continue;
      // long past its expiry: forgotten by any node (its holder, gone for good, never will)
      if (r.expires + KEEP_AFTER_EXPIRY_MS < now && !this.#rollouts.has(r.id)) {
        await this.#ctx.store.deleteSetting(key, text);
        continue;
      }
      if (this.#rollouts.has(r.id)) {
        this.#lost(stored);
        continue;
      }
      if (!mayStillUse(r, now, open)) continue;
      for (const station of open) openElsewhere.add(station);
      if (!gone.has(stored.node)) continue;
      const json = JSON.stringify(r);
      const mine = copyText(self, json);
      if (!(await this.#ctx.store.replaceSetting(key, text, mine))) continue;
      // held here from now on: no longer the copy as read (the next read fetches it again)
      this.#copies.delete(key);
      this.#index(r);
      this.#written.set(r.id, mine);
      writeFileAtomic(join(this.#dir, `${r.id}.json`), json + '\n', 0o600);
      this.#ctx.log.warn({ rollout: r.id, from: stored.node }, 'rollout taken over from a node that is gone');
      taken.push(r.id);
    }
    this.#openElsewhere = openElsewhere;
    return taken;
  }

  /** Forgets rollouts long past their expiry, in memory and on disk. */
  #prune(now: number): void {
    for (const r of [...this.#rollouts.values()]) {
      if (r.expires + KEEP_AFTER_EXPIRY_MS >= now) continue;
      this.#drop(r.id);
      this.#ctx.store.deleteSetting(copyKey(r.id)).catch((e: unknown) => this.#ctx.log.warn({ rollout: r.id, err: (e as Error).message }, 'stored rollout not removed'));
    }
  }

  /** Receives events for the rollouts `owner` started; returns the unsubscribe function. */
  subscribe(owner: string, fn: (e: RolloutEvent) => void): () => void {
    let set = this.#listeners.get(owner);
    if (!set) this.#listeners.set(owner, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.#listeners.get(owner) === set) this.#listeners.delete(owner);
    };
  }

  /**
   * Rollouts that may still send a station to this package: one of its
   * stations has no final status, and either its call can still be
   * delivered (the rollout has not expired) or it has started on it.
   */
  usersOf(packageId: string): string[] {
    const now = this.#ctx.now();
    const ids = new Set<string>();
    for (const r of this.#rollouts.values()) if (r.packageId === packageId && mayStillUse(r, now)) ids.add(r.id);
    for (const [id, s] of this.#starting) if (s.packageId === packageId) ids.add(id);
    return [...ids];
  }

  /**
   * Every rollout copy in the store (a cluster's: each names the node
   * holding it), not to be modified. A copy holds every station of its
   * rollout (megabytes for a large one, kept a week past its expiry), and
   * each node reads them all at every cluster tick: where the store
   * versions its settings, only the copies written since the last read are
   * fetched and parsed again.
   */
  async #storedCopies(): Promise<StoredCopy[]> {
    const store = this.#ctx.store;
    if (!store.settingVersions) return (await store.settingsWithPrefix('rollout.')).flatMap(([key, text]) => copyEntry(key, text, '') ?? []);
    const versions = new Map(await store.settingVersions('rollout.'));
    for (const key of this.#copies.keys()) if (!versions.has(key)) this.#copies.delete(key);
    const changed = [...versions].filter(([key, v]) => this.#copies.get(key)?.version !== v).map(([key]) => key);
    // a copy written again between the two reads is recorded under the older version, and so read again next time
    for (const [key, text] of changed.length > 0 ? await store.getSettings(changed) : []) {
      const entry = copyEntry(key, text, versions.get(key)!);
      if (entry) this.#copies.set(key, entry);
      else this.#copies.delete(key);
    }
    return [...this.#copies.values()];
  }

  /**
   * Another node took over this rollout while this one was silent: it is
   * that node's. The statuses this node recorded that the other's copy
   * lacks (this node went on applying reports until it noticed) are parked
   * for it.
   */
  #lost(theirs: StoredRollout): void {
    const mine = this.#rollouts.get(theirs.rollout.id);
    if (!mine) return;
    this.#drop(mine.id);
    this.#ctx.log.warn({ rollout: mine.id, holder: theirs.node }, 'rollout taken over by another node: dropped here');
    for (const [station, p] of Object.entries(mine.stations)) {
      const t = own(theirs.rollout.stations, station);
      if (t && p.at > t.at && p.status !== t.status) this.#parkLater({ station, status: p.status, requestId: mine.requestId }, p.at);
    }
  }

  /** usersOf, and in a cluster the rollouts other nodes hold (from the store's copies). */
  async #usersInCluster(packageId: string): Promise<string[]> {
    const now = this.#ctx.now();
    const ids = new Set(this.usersOf(packageId));
    for (const { stored: { node, rollout: r } } of await this.#storedCopies()) {
      if (node !== this.#o.node() && r.packageId === packageId && mayStillUse(r, now)) ids.add(r.id);
    }
    return [...ids];
  }

  /**
   * Deletes a package (docs/firmware.md): refused with ERR_STATE while a
   * rollout may still need it, unless `force`. Any identity that may roll
   * out firmware may delete any package.
   */
  async deletePackage(p: Principal, packageId: string, force: boolean): Promise<boolean> {
    this.checkRole(p);
    const users = await this.#usersInCluster(packageId);
    if (users.length > 0 && !force) throw new EvsealError('ERR_STATE', `package ${packageId} is in use by rollout ${users.join(', ')}; it can be deleted once every station is done or the rollout has expired, or with force`);
    const deleted = await this.#o.packages.delete(packageId);
    this.#ctx.log.info({ packageId, by: p.id, forced: users.length > 0, rollouts: users }, deleted ? 'firmware package deleted' : 'firmware package to delete was not held');
    return deleted;
  }

  /** A rollout of `owner`'s: the one this node holds, or in a cluster the store's copy of one another node holds. */
  async get(owner: Principal, id: string): Promise<Rollout> {
    const r = this.#rollouts.get(id) ?? (await this.#heldElsewhere(id))?.rollout;
    if (!r || r.owner !== owner.id) throw new EvsealError('ERR_NOT_FOUND', `no rollout ${id}`);
    return r;
  }

  /** The store's copy of a rollout another node holds (stored when it started, updated as its stations report). */
  async #heldElsewhere(id: string): Promise<StoredRollout | undefined> {
    const stored = parseCopy(await this.#ctx.store.getSetting(copyKey(id)));
    return stored?.node === this.#o.node() ? undefined : stored;
  }

  /**
   * Starts a rollout (idempotent by id: the same request again answers the
   * rollout as it stands, in a cluster also on another node than the one
   * holding it). Stations that cannot be reached by any call get
   * a terminal status at once; the others are Queued until they answer.
   */
  async start(owner: Principal, req: { id: string; packageId: string; stations?: string[]; all?: boolean; lifetimeMs: number }): Promise<Rollout> {
    this.checkRole(owner);
    if (!ROLLOUT_ID.test(req.id)) throw new EvsealError('ERR_INVALID_INPUT', 'malformed rollout id');
    const elsewhere = this.#rollouts.has(req.id) ? undefined : await this.#heldElsewhere(req.id);
    const existing = this.#rollouts.get(req.id) ?? elsewhere?.rollout;
    if (existing) {
      if (existing.owner !== owner.id || existing.packageId !== req.packageId) throw new EvsealError('ERR_INVALID_INPUT', `rollout id ${req.id} is taken`);
      return existing;
    }
    // the same request twice at once: the second waits for the first, then answers from it
    const pending = this.#starting.get(req.id);
    if (pending) return pending.run.then(() => this.start(owner, req));
    const run = this.#start(owner, req).finally(() => this.#starting.delete(req.id));
    this.#starting.set(req.id, { packageId: req.packageId, run });
    return run;
  }

  async #start(owner: Principal, req: { id: string; packageId: string; stations?: string[]; all?: boolean; lifetimeMs: number }): Promise<Rollout> {
    await this.#o.ensurePackage?.(req.packageId);
    const index = await this.#o.packages.index(req.packageId);
    const targets = [...new Set(req.all ? index.deviceIds : (req.stations ?? []))];
    if (targets.length === 0) throw new EvsealError('ERR_INVALID_INPUT', 'a rollout needs at least one station');
    if (targets.length > (this.#o.maxStations ?? 100_000)) throw new EvsealError('ERR_LIMIT', 'too many stations in one rollout');
    const now = this.#ctx.now();
    this.#prune(now);
    const inPackage = new Set(index.deviceIds);
    const fields = await this.#o.fields(req.packageId);
    // derived from the rollout id, so a rollout restarted after a failure sends the same requestId
    const requestId = (createHash('sha256').update(`evseal firmware request\0${req.id}`).digest().readUInt32BE(0) >>> 1) || 1;
    const r: Rollout = { id: req.id, owner: owner.id, packageId: req.packageId, requestId, created: now, expires: now + req.lifetimeMs, stations: {} };
    const retrieveDateTime = new Date(now).toISOString();
    const calls: { station: string; msgId: string; body: string }[] = [];
    // one lookup for all of them: a cluster's store answers over the network
    const known = await this.#ctx.store.stationStates(targets.filter((s) => inPackage.has(s)));
    for (const station of targets) {
      const set = (status: string, extra: Partial<StationProgress> = {}) => putOwn(r.stations, station, { status, at: now, ...extra });
      if (!inPackage.has(station)) {
        set('NotInPackage');
        continue;
      }
      if (!known.has(station)) {
        set('UnknownStation');
        continue;
      }
      const protocol = known.get(station)?.protocol;
      if (!isOcppProtocol(protocol)) {
        set('NeverBooted');
        continue;
      }
      const firmware = { location: this.#o.baseUrl() + firmwarePath(this.#o.packages, req.packageId, station), retrieveDateTime, ...fields };
      const call = protocol === 'ocpp1.6' ? { action: 'SignedUpdateFirmware', payload: { requestId, firmware } } : { action: 'UpdateFirmware', payload: { requestId, firmware } };
      const msgId = createHash('sha256').update(`evseal firmware rollout\0${req.id}\0${station}`).digest('base64url').slice(0, 22);
      set('Queued', { protocol, msgId });
      calls.push({ station, msgId, body: JSON.stringify(call) });
    }
    // stored before the first call goes out: the other nodes of a cluster find it held here; of two
    // nodes starting the same id at once, the one whose copy is stored first goes on
    if (!(await this.#claim(r))) {
      const theirs = await this.#heldElsewhere(r.id);
      if (!theirs || theirs.rollout.owner !== owner.id || theirs.rollout.packageId !== req.packageId) throw new EvsealError('ERR_INVALID_INPUT', `rollout id ${req.id} is taken`);
      return theirs.rollout;
    }
    // known before the first call goes out: a station may answer and report at once
    this.#index(r);
    // submitted together, so the router commits them in shared transactions
    await Promise.all(
      calls.map(async (c) => {
        try {
          await this.#ctx.router.submit(owner, { format: 'ocpp-call', to: c.station, kind: 'firmware', msgId: c.msgId, expires: r.expires, body: c.body });
        } catch (e) {
          if (!(e instanceof EvsealError)) throw e;
          this.#ctx.log.warn({ rollout: r.id, stationId: c.station, code: e.code }, 'firmware call not queued');
          putOwn(r.stations, c.station, { status: 'Undeliverable', at: now });
        }
      }),
    );
    this.#save(r.id);
    this.#ctx.log.info({ rollout: r.id, owner: owner.id, packageId: r.packageId, stations: targets.length, queued: calls.length }, 'firmware rollout started');
    return r;
  }

  /**
   * Called with each report parked here (one that matched no rollout this
   * node holds): in a cluster, the bus passes it to the other nodes, and the
   * one holding its rollout takes it at once (a rollout's state lives on one
   * node, its stations report to the node they are connected to).
   */
  onParked: ((p: ParkedReport) => void) | undefined;

  /** A (Signed)FirmwareStatusNotification from a station (built-in CSMS). */
  firmwareStatus(station: string, status: string, requestId: number | undefined): void {
    this.#report(requestId === undefined ? { station, status } : { station, status, requestId });
  }

  /** A SecurityEventNotification from a station: noted on its open rollout (the type only; techInfo stays in the station state). */
  securityEvent(station: string, type: string): void {
    this.#report({ station, security: type });
  }

  /** A report no rollout held here matches is, in a cluster, parked in the store for the node holding its rollout; on one node it concerns no rollout. */
  #report(r: StationReport): void {
    if (this.apply(r) || !this.#o.shared) return;
    if ('status' in r) this.#openElsewhere.add(r.station);
    else if (!this.#openElsewhere.has(r.station)) return;
    this.#parkLater(r, this.#ctx.now());
  }

  #parkLater(r: StationReport, at: number): void {
    this.#parking = this.#parking
      .then(() => this.#park(r, at))
      .catch((e: unknown) => this.#ctx.log.warn({ stationId: r.station, err: (e as Error).message }, 'station report for a rollout held elsewhere not parked: lost'));
  }

  async #park(report: StationReport, at: number): Promise<void> {
    const key = `${PARKED_PREFIX}${String(at).padStart(15, '0')}.${String(++this.#parkedCount % 1e9).padStart(9, '0')}.${randomBytes(6).toString('hex')}`;
    await this.#ctx.store.putSetting(key, JSON.stringify({ report, at }));
    this.#ctx.metrics.parkedReports.inc({ outcome: 'parked' });
    this.onParked?.({ key, report, at });
  }

  /**
   * Applies a parked report if this node holds its rollout; its record is
   * removed once the rollout's store copy with it is written (flush; a
   * crash in between applies it again: a status then changes nothing, see
   * apply; a security event is listed twice), and left for the new holder
   * if the rollout turns out to be another node's by then. Taken one at a
   * time, in the order given; whether it was applied here.
   */
  takeParked(p: ParkedReport): Promise<boolean> {
    const run = this.#taking.then(() => this.#take(p));
    this.#taking = run.catch(() => undefined);
    return run;
  }

  async #take({ key, report, at }: ParkedReport): Promise<boolean> {
    const held = this.#rolloutOf(report);
    if (!held) return false; // most nodes hold none: no store read
    if (this.#takenParked.get(held.id)?.has(key)) return true; // applied here, its record not yet removed
    if ((await this.#ctx.store.getSetting(key)) === undefined) return false; // taken already
    const r = this.#rolloutOf(report);
    if (!r || !this.apply(report, at)) return false;
    const taken = this.#takenParked.get(r.id) ?? new Set<string>();
    this.#takenParked.set(r.id, taken.add(key));
    this.#save(r.id); // also when it changed nothing: its record goes with the next write
    return true;
  }

  /**
   * In a cluster, at start and then with each syncHolders: takes the parked
   * reports for rollouts held here (those whose announcement was missed,
   * and those parked while their rollout's node was gone, once this node
   * has taken the rollout over), oldest first; removes those older than
   * `maxAgeMs`, which by then concern no rollout any live node holds.
   */
  async takeAllParked(maxAgeMs: number): Promise<void> {
    const now = this.#ctx.now();
    for (const [key, text] of await this.#ctx.store.settingsWithPrefix(PARKED_PREFIX)) {
      const v = parseObject(text);
      const p = v && parkedFrom({ key, ...v });
      if (p && (await this.takeParked(p))) continue;
      if ((!p || now - p.at > maxAgeMs) && (await this.#ctx.store.deleteSetting(key, text))) this.#ctx.metrics.parkedReports.inc({ outcome: 'aged' });
    }
  }

  /** The rollout held here that a report concerns. */
  #rolloutOf(report: StationReport): Rollout | undefined {
    const r = this.#find(report.station, 'status' in report ? report.requestId : undefined);
    return r && own(r.stations, report.station) ? r : undefined;
  }

  /**
   * Applies a station's report to the rollout it belongs to; false if this
   * node holds none. `parkedAt`: a parked report's time (another node's
   * clock), when a status older than the one recorded, or the very one
   * recorded, changes nothing; a report arriving here is applied as it comes.
   */
  apply(report: StationReport, parkedAt?: number): boolean {
    const { station } = report;
    const r = this.#rolloutOf(report);
    if (!r) return false;
    const p = own(r.stations, station)!;
    const at = parkedAt ?? this.#ctx.now();
    if ('status' in report) {
      if (isTerminal(p.status)) return true; // a rollout's verdict is final; later notifications (Idle) do not reopen it
      if (parkedAt !== undefined && (at < p.at || (at === p.at && p.status === report.status))) return true; // overtaken by a later report, or applied already
      p.status = report.status;
      p.at = at;
      this.#emit(r.owner, { t: 'rollout-event', id: r.id, station, status: report.status, at });
    } else {
      (p.securityEvents ??= []).push(report.security);
      p.securityEvents.splice(0, Math.max(0, p.securityEvents.length - 20));
      this.#emit(r.owner, { t: 'rollout-event', id: r.id, station, security: report.security, at });
    }
    this.#save(r.id);
    return true;
  }

  /** The rollout a notification belongs to: by requestId, or else the station's newest rollout still open. */
  #find(station: string, requestId: number | undefined): Rollout | undefined {
    if (requestId !== undefined) {
      const id = this.#byRequest.get(`${station}\0${requestId}`);
      return id === undefined ? undefined : this.#rollouts.get(id);
    }
    let best: Rollout | undefined;
    for (const r of this.#rollouts.values()) {
      const p = own(r.stations, station);
      if (p && p.msgId !== undefined && (!best || r.created > best.created)) best = r;
    }
    return best;
  }

  /**
   * Called with each event of a rollout this node holds: in a cluster, the
   * bus passes it to the other nodes, one of which may hold the owner's
   * connection.
   */
  onEvent: ((owner: string, e: RolloutEvent) => void) | undefined;

  #emit(owner: string, e: RolloutEvent): void {
    this.emitLocal(owner, e);
    this.onEvent?.(owner, e);
  }

  /** Tells the owner's clients connected to this node. */
  emitLocal(owner: string, e: RolloutEvent): void {
    for (const fn of this.#listeners.get(owner) ?? []) fn(e);
  }

  /** Stores the first copy of a rollout started here, unless another node's copy by that id is there; whether it did. */
  async #claim(r: Rollout): Promise<boolean> {
    if (!this.#o.shared) {
      await this.#ctx.store.putSetting(copyKey(r.id), copyText(this.#o.node(), JSON.stringify(r)));
      return true;
    }
    const text = await this.#ctx.store.getSetting(copyKey(r.id));
    const holder = parseCopy(text)?.node;
    if (holder !== undefined && holder !== this.#o.node()) return false;
    const mine = copyText(this.#o.node(), JSON.stringify(r));
    if (!(await this.#ctx.store.replaceSetting(copyKey(r.id), text, mine))) return false;
    this.#written.set(r.id, mine);
    return true;
  }

  /**
   * Writes the store's copy of a rollout held here, as it is now (one write
   * per rollout at a time: flush), replacing exactly the copy last written: if another node has taken the rollout over
   * meanwhile (this node was silent past the node timeout), the rollout is
   * that node's and is dropped here.
   */
  async #writeCopy(r: Rollout, json: string): Promise<void> {
    const key = copyKey(r.id);
    const mine = copyText(this.#o.node(), json);
    if (!this.#o.shared) return this.#ctx.store.putSetting(key, mine);
    if (await this.#ctx.store.replaceSetting(key, this.#written.get(r.id), mine)) {
      this.#written.set(r.id, mine);
      return;
    }
    const text = await this.#ctx.store.getSetting(key);
    const stored = parseCopy(text);
    if (stored !== undefined && stored.node !== this.#o.node()) return this.#lost(stored);
    // cleared, or written by this node before a restart: still this node's
    if (await this.#ctx.store.replaceSetting(key, text, mine)) this.#written.set(r.id, mine);
  }

  /**
   * Writes changed rollouts, to the data directory (temp file + rename) and
   * the store's copy: each write is the whole rollout (about 110 bytes a
   * station; for 100,000, 11 MB encoded once and some 100 ms of event
   * loop), so writes are paced to take at most a tenth of the time: a small rollout is written
   * in the next turn of the event loop, a large one at most every ~2 s, its
   * changes meanwhile together.
   */
  #save(id: string): void {
    this.#dirty.add(id);
    if (this.#flushing) return;
    this.#flushing = true;
    const wait = this.#nextFlushAt - performance.now();
    if (wait <= 0) {
      const i = setImmediate(() => void this.flush());
      this.#scheduled = { cancel: () => clearImmediate(i) };
    } else {
      const t = setTimeout(() => void this.flush(), wait).unref();
      this.#scheduled = { cancel: () => clearTimeout(t) };
    }
  }

  /**
   * Writes the changed rollouts now. Resolves once the store's copies are
   * written, those an earlier flush started included (never rejects: a copy
   * not written is logged, and the next change writes it); then the parked
   * reports they took in are removed from the store.
   */
  flush(): Promise<void> {
    this.#flushing = false;
    this.#scheduled?.cancel();
    this.#scheduled = undefined;
    const start = performance.now();
    const written = this.#dirty.size > 0;
    for (const id of this.#dirty) {
      const r = this.#rollouts.get(id);
      if (!r) continue;
      // encoded once, for the file and the store's copy (the copy is the state as of this write; a later change writes again)
      const json = JSON.stringify(r);
      writeFileAtomic(join(this.#dir, `${id}.json`), json + '\n', 0o600);
      const taken = [...(this.#takenParked.get(id) ?? [])];
      const write = (this.#copying.get(id) ?? Promise.resolve())
        .then(() => (this.#rollouts.get(id) === r ? this.#writeCopy(r, json) : undefined))
        // still this node's with them written: the records go (otherwise the node that took the rollout over takes them)
        .then(() => (this.#rollouts.get(id) === r ? this.#removeTaken(id, taken) : undefined))
        .catch((e: unknown) => this.#ctx.log.warn({ rollout: id, err: (e as Error).message }, 'stored rollout not updated'));
      this.#copying.set(id, write);
      void write.then(() => this.#copying.get(id) === write && this.#copying.delete(id));
    }
    this.#dirty.clear();
    if (written) this.#nextFlushAt = performance.now() + Math.min(MAX_FLUSH_GAP_MS, 9 * (performance.now() - start));
    // and those an earlier flush started (each the last of its rollout's chain)
    return Promise.all(this.#copying.values()).then(() => undefined);
  }

  async #removeTaken(id: string, keys: string[]): Promise<void> {
    for (const key of keys) {
      if (await this.#ctx.store.deleteSetting(key)) this.#ctx.metrics.parkedReports.inc({ outcome: 'taken' });
      this.#takenParked.get(id)?.delete(key);
    }
  }
}
