import { parseBundle, verifyBundle } from '../core/bundle.js';
import { EvsealError, VerificationFailure } from '../core/errors.js';
import type { Role } from '../core/roles.js';
import type { GatewayStore } from './store/store.js';
import type { GatewayTrust } from './trust.js';

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

  constructor(store: GatewayStore, trust: GatewayTrust, now: () => number) {
    this.#store = store;
    this.#trust = trust;
    this.#now = now;
  }

  /**
   * Stores `text` as the bundle of `owner`. An endpoint is bound by its
   * certificate fingerprint; a station (authenticated by password or TLS
   * certificate) by its id and the charger role.
   */
  async publishBundle(owner: { id: string; role: Role; fingerprint?: string }, text: string): Promise<void> {
    let b;
    try {
      b = verifyBundle(parseBundle(text), { policy: this.#trust.policy, revocation: this.#trust.revocation, now: new Date(this.#now()) });
    } catch (e) {
      if (e instanceof VerificationFailure) throw new EvsealError('ERR_BUNDLE_REJECTED', 'bundle rejected');
      throw e;
    }
    const mine = owner.fingerprint !== undefined ? b.identity.fingerprint === owner.fingerprint : b.identity.id === owner.id && b.identity.role === owner.role;
    if (!mine) throw new EvsealError('ERR_POLICY_DENIED', 'a connection may only publish its own bundle');
    await this.#store.putBundle(b.identity.id, b.identity.role, text, this.#now());
  }
}
