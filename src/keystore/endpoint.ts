import { EvsealError, VerificationFailure } from '../core/errors.js';
import { parseBundle, verifyBundle } from '../core/bundle.js';
import { openEnvelope, sealEnvelope, type Opened } from '../core/envelope.js';
import { DEFAULT_ROLE_POLICY, defaultKind, type RolePolicy } from '../core/role-policy.js';
import type { TrustPolicy } from '../core/x509/index.js';
import { loadIdentity, type LoadedIdentity } from './identity-dir.js';
import { withState } from './endpoint-state.js';
import { securityLog } from './security-log.js';
import { loadCrls } from './trust-files.js';

export interface EndpointOptions {
  trust: TrustPolicy;
  /** CRL files to feed into the persisted revocation state before each operation. */
  crls?: string[];
  /** false only when the operator explicitly waived revocation checking. */
  revocationCheck?: boolean;
  rolePolicy?: RolePolicy;
  wall?: () => number;
  /** Passphrase of an encrypted keystore (see EVSEAL_PASSPHRASE). */
  passphrase?: string;
}

/**
 * An endpoint's identity directory plus its trust configuration: the unit
 * that seals and opens. Each call takes the state lock, so the replay window
 * and trusted-time mark survive concurrent processes.
 */
export class Endpoint {
  readonly id: LoadedIdentity;
  readonly #o: Required<Omit<EndpointOptions, 'passphrase'>>;
  readonly #log: ReturnType<typeof securityLog>;

  private constructor(id: LoadedIdentity, o: EndpointOptions) {
    this.id = id;
    this.#o = {
      trust: o.trust,
      crls: o.crls ?? [],
      revocationCheck: o.revocationCheck ?? true,
      rolePolicy: o.rolePolicy ?? DEFAULT_ROLE_POLICY,
      wall: o.wall ?? (() => Date.now()),
    };
    this.#log = securityLog(id.dir);
  }

  static load(dir: string, o: EndpointOptions): Endpoint {
    return new Endpoint(loadIdentity(dir, o.passphrase), o);
  }

  seal(bundleText: string, plaintext: Uint8Array, o: { kind?: string; contentType?: string; lifetimeSec?: number } = {}): string {
    const s = this.id.file.settings;
    const lifetimeSec = o.lifetimeSec ?? s.defaultLifetimeSec;
    if (lifetimeSec > s.maxLifetimeSec) throw new EvsealError('ERR_USAGE', `lifetime exceeds the maximum of ${s.maxLifetimeSec} s`);
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const now = st.clock.now();
      const bundle = parseBundle(bundleText);
      let vb;
      try {
        vb = verifyBundle(bundle, { policy: this.#o.trust, revocation: this.#o.revocationCheck ? st.revocation : 'skip', now });
      } catch (e) {
        if (!(e instanceof VerificationFailure)) throw e;
        this.#log.sink({ event: 'bundle-refused', reason: e.reason, ...(e.detail ? { detail: e.detail } : {}) });
        throw new EvsealError('ERR_BUNDLE_REJECTED', 'recipient bundle rejected');
      }
      const me = this.id.file;
      const kind = o.kind ?? defaultKind(this.#o.rolePolicy, me.role, vb.identity.role);
      if (kind === undefined) {
        throw new EvsealError('ERR_POLICY_DENIED', `role policy allows nothing from ${me.role} to ${vb.identity.role}`);
      }
      return sealEnvelope(
        { chain: this.id.chain, info: me, privateKey: this.id.privateKey, suites: me.suites },
        vb,
        plaintext,
        { kind, contentType: o.contentType, now, lifetimeSec, rolePolicy: this.#o.rolePolicy },
      );
    });
  }

  /** Opens and commits the replay record before returning the plaintext. */
  open(text: string, o: { replayCheck?: boolean } = {}): Opened {
    const s = this.id.file.settings;
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const opened = openEnvelope(
        text,
        { info: this.id.file, prekeys: this.id.prekeys, suites: this.id.file.suites },
        {
          policy: this.#o.trust,
          revocation: this.#o.revocationCheck ? st.revocation : 'skip',
          now: st.clock.now(),
          replay: o.replayCheck === false ? 'skip' : st.replay,
          rolePolicy: this.#o.rolePolicy,
          maxLifetimeSec: s.maxLifetimeSec,
          skewSec: s.skewSec,
          security: this.#log.sink,
        },
      );
      // A verified sender timestamp is a signed time source. It is taken as
      // created - skew, which step 4 bounds by the current trusted time, so a
      // sender can keep the mark following real time but never push it ahead.
      st.clock.observe((opened.header.created - s.skewSec) * 1000);
      return opened;
    });
  }
}
