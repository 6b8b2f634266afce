import type { KeyObject } from 'node:crypto';
import { parseBundle, verifyBundle, type VerifiedBundle } from '../core/bundle.js';
import { EvsealError, VerificationFailure } from '../core/errors.js';
import { prekeyFromJSON, prekeyToJSON, verifyPrekey } from '../core/prekey.js';
import type { Role } from '../core/roles.js';
import type { GatewayStore } from './store/store.js';
import type { Budgets } from './token-buckets.js';
import type { GatewayTrust } from './trust.js';

/** One-time prekeys held per identity at most (and accepted in one publication). */
export const MAX_ONE_TIME_PREKEYS = 200;

/**
 * The directory's write side. A bundle is accepted only if it verifies under
 * the gateway's trust policy (chain, role scope, CRL, signed suites and
 * prekeys) and belongs to whoever publishes it, so the directory never hands
 * out a bundle its owner did not make. Readers verify bundles themselves all
 * the same: the gateway is not trusted for them.
 */
export class Directory {
  readonly #store: GatewayStore;
  readonly #trust: GatewayTrust;
  readonly #now: () => number;

  /** One-time prekeys claimed per (claimer, owner): a burst, refilled per minute (in a cluster, the cluster's). */
  readonly #claims: Budgets;

  constructor(store: GatewayStore, trust: GatewayTrust, now: () => number, claims: Budgets) {
    this.#store = store;
    this.#trust = trust;
    this.#now = now;
    this.#claims = claims;
  }

  /**
   * Hands out one of `owner`'s one-time prekeys to `claimer`, each at most
   * once. A claimer past its quota for this owner gets none (undefined, as
   * when the owner has none left): its session then runs without one, which
   * X3DH allows, and no single identity can drain an owner's prekeys.
   */
  async claimOneTimePrekey(claimer: string, owner: string): Promise<{ json: string | undefined; outcome: 'claimed' | 'none' | 'limited' }> {
    const key = `${claimer}\n${owner}`;
    if ((await this.#claims.wait(key)) > 0) return { json: undefined, outcome: 'limited' };
    await this.#claims.spend(key);
    const json = await this.#store.claimOneTimePrekey(owner);
    return { json, outcome: json === undefined ? 'none' : 'claimed' };
  }

  /** A bundle verified under the gateway's trust policy and CRLs now, or ERR_BUNDLE_REJECTED with `refusal`. */
  #verify(text: string, refusal: string): VerifiedBundle {
    try {
      return verifyBundle(parseBundle(text), { policy: this.#trust.policy, revocation: this.#trust.revocation, now: new Date(this.#now()) });
    } catch (e) {
      if (e instanceof VerificationFailure) throw new EvsealError('ERR_BUNDLE_REJECTED', refusal);
      throw e;
    }
  }

  /**
   * Stores `text` as the bundle of `owner`. An endpoint is bound by its
   * certificate fingerprint; a station (authenticated by password or TLS
   * certificate) by its id and the charger role.
   */
  async publishBundle(owner: { id: string; role: Role; fingerprint?: string }, text: string): Promise<void> {
    const b = this.#verify(text, 'bundle rejected');
    const mine = owner.fingerprint !== undefined ? b.identity.fingerprint === owner.fingerprint : b.identity.id === owner.id && b.identity.role === owner.role;
    if (!mine) throw new EvsealError('ERR_POLICY_DENIED', 'a connection may only publish its own bundle');
    await this.#store.putBundle(b.identity.id, b.identity.role, text, this.#now());
  }

  /**
   * Adds one-time prekeys of `owner`, each of which must be signed by
   * `signer` (the key and certificate the owner authenticated with, or its
   * verified bundle's). Keys already held are kept once. Returns how many the
   * owner now holds.
   */
  async addOneTimePrekeys(owner: string, signer: { publicKey: KeyObject; certHash: Uint8Array }, prekeys: readonly unknown[]): Promise<number> {
    const max = MAX_ONE_TIME_PREKEYS;
    if (prekeys.length > max) throw new EvsealError('ERR_LIMIT', `at most ${max} one-time prekeys per publication`);
    const keys = prekeys.map((p, i) => prekeyFromJSON(p, `prekeys[${i}]`));
    for (const p of keys) {
      if (!verifyPrekey(p, signer.publicKey, signer.certHash)) throw new EvsealError('ERR_INVALID_INPUT', `one-time prekey ${p.kid} is not signed by its publisher`);
    }
    const held = await this.#store.countOneTimePrekeys(owner);
    if (held + keys.length > max) throw new EvsealError('ERR_LIMIT', `at most ${max} one-time prekeys are held per identity`);
    return this.#store.addOneTimePrekeys(
      owner,
      keys.map((p) => ({ kid: p.kid, json: JSON.stringify(prekeyToJSON(p)) })),
    );
  }

  /**
   * One-time prekeys of a station (OCPP carrier `publish-prekeys`): signed by
   * the identity of the bundle the station published, which must still verify.
   */
  async addStationOneTimePrekeys(stationId: string, prekeys: readonly unknown[]): Promise<number> {
    const text = await this.#store.getBundle(stationId);
    if (text === undefined) throw new EvsealError('ERR_NOT_FOUND', 'publish the bundle before one-time prekeys');
    const b = this.#verify(text, 'the published bundle no longer verifies');
    if (b.identity.id !== stationId || b.identity.role !== 'charger') throw new EvsealError('ERR_POLICY_DENIED', 'a station may only publish its own one-time prekeys');
    return this.addOneTimePrekeys(stationId, b.identity, prekeys);
  }
}
