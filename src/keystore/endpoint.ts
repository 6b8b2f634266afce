import { EvsealError, VerificationFailure } from '../core/errors.js';
import type { Role } from '../core/roles.js';
import type { ValidatedIdentity } from '../core/x509/index.js';
import { faultPoint } from './fault.js';
import { parseBundle, verifyBundle } from '../core/bundle.js';
import { openEnvelope, sealEnvelope, type Opened } from '../core/envelope.js';
import { DEFAULT_ROLE_POLICY, defaultKind, type RolePolicy } from '../core/role-policy.js';
import type { TrustPolicy } from '../core/x509/index.js';
import type { VerifiedBundle } from '../core/bundle.js';
import { consumeOneTimePrekey, loadIdentity, readOneTimePrekeys, type LoadedIdentity } from './identity-dir.js';
import { acceptSession, initiateSession } from '../core/session/handshake.js';
import { prekeyFromJSON } from '../core/prekey.js';
import { b64u, fromB64u } from '../core/base64url.js';
import { loadSession, saveSession, sessionExists, sessionHandle, type SessionRecord } from './sessions.js';
import { withState, withStateRead, type EndpointState } from './endpoint-state.js';
import { securityLog } from './security-log.js';
import { loadCrls } from './trust-files.js';
import { validateChain } from '../core/x509/index.js';
import { open as hpkeOpen, suite as hpkeSuite } from '../core/hpke/index.js';

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

  /** Parses and verifies a peer bundle; a refusal is opaque outward, precise in the security log. */
  #verifiedBundle(bundleText: string, st: EndpointState): VerifiedBundle {
    try {
      return verifyBundle(parseBundle(bundleText), { policy: this.#o.trust, revocation: this.#o.revocationCheck ? st.revocation : 'skip', now: st.clock.now() });
    } catch (e) {
      if (!(e instanceof VerificationFailure)) throw e;
      this.#log.sink({ event: 'bundle-refused', reason: e.reason, ...(e.detail ? { detail: e.detail } : {}) });
      throw new EvsealError('ERR_BUNDLE_REJECTED', 'recipient bundle rejected');
    }
  }

  #lifetime(requested: number | undefined): number {
    const s = this.id.file.settings;
    const lifetimeSec = requested ?? s.defaultLifetimeSec;
    if (lifetimeSec > s.maxLifetimeSec) throw new EvsealError('ERR_USAGE', `lifetime exceeds the maximum of ${s.maxLifetimeSec} s`);
    return lifetimeSec;
  }

  seal(bundleText: string, plaintext: Uint8Array, o: { kind?: string; contentType?: string; lifetimeSec?: number } = {}): string {
    const lifetimeSec = this.#lifetime(o.lifetimeSec);
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const now = st.clock.now();
      const vb = this.#verifiedBundle(bundleText, st);
      const me = this.id.file;
      const kind = o.kind ?? defaultKind(this.#o.rolePolicy, me.role, vb.identity.role);
      if (kind === undefined) {
        throw new EvsealError('ERR_POLICY_DENIED', `role policy allows nothing from ${me.role} to ${vb.identity.role}`);
      }
      return sealEnvelope(
        { chain: this.id.chain, info: me, privateKey: this.id.privateKey, suites: me.suites, certHash: this.id.certHash },
        vb,
        plaintext,
        { kind, contentType: o.contentType, now, lifetimeSec, rolePolicy: this.#o.rolePolicy },
      );
    });
  }

  /**
   * Opens and commits the replay record before returning the plaintext.
   * `beforeCommit` runs after a successful open, inside the state lock and
   * before the replay record is saved: a receiver that stores the plaintext
   * there (and crashes after) sees the envelope again and re-opens it, rather
   * than having it refused as a replay with the plaintext lost. If it
   * throws, the error propagates and no replay record is kept.
   */
  open(text: string, o: { replayCheck?: boolean; beforeCommit?: (opened: Opened) => void } = {}): Opened {
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
      try {
        o.beforeCommit?.(opened);
      } catch (e) {
        // The caller could not keep the plaintext: the envelope must be able to open again.
        if (o.replayCheck !== false) st.replay.delete(`${opened.header.fromCert}.${opened.header.id}`);
        throw e;
      }
      return opened;
    });
  }

  /**
   * Starts a session with the owner of `bundleText`: a signed first message
   * carrying `payload`. The ratchet is saved before the message is returned.
   * `oneTimePrekeyJson` is a one-time prekey claimed from the peer's directory.
   */
  startSession(
    bundleText: string,
    payload: Uint8Array,
    o: { kind?: string; lifetimeSec?: number; oneTimePrekeyJson?: unknown } = {},
  ): { handle: string; message: string } {
    const lifetimeSec = this.#lifetime(o.lifetimeSec);
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const vb = this.#verifiedBundle(bundleText, st);
      const me = this.id.file;
      const kind = o.kind ?? defaultKind(this.#o.rolePolicy, me.role, vb.identity.role);
      if (kind === undefined) throw new EvsealError('ERR_POLICY_DENIED', `role policy allows nothing from ${me.role} to ${vb.identity.role}`);
      const started = initiateSession({ chain: this.id.chain, info: me, privateKey: this.id.privateKey, suites: me.suites, certHash: this.id.certHash }, vb, payload, {
        kind,
        now: st.clock.now(),
        lifetimeSec,
        rolePolicy: this.#o.rolePolicy,
        oneTimePrekey: o.oneTimePrekeyJson === undefined ? undefined : prekeyFromJSON(o.oneTimePrekeyJson, 'one-time prekey'),
        security: this.#log.sink,
      });
      const handle = sessionHandle(b64u(this.id.certHash), started.sessionId);
      saveSession(this.id.store, handle, {
        v: 1,
        side: 'initiator',
        peer: { id: vb.identity.id, role: vb.identity.role, operator: vb.identity.operator, fingerprint: vb.identity.fingerprint, cert: b64u(vb.identity.certDer) },
        kind,
        created: Math.floor(st.clock.now().getTime() / 1000),
        ratchet: started.ratchet.toJSON(),
      });
      return { handle, message: started.message };
    });
  }

  /**
   * Accepts a first message addressed to this endpoint. The session, the
   * replay record of its id and the deletion of a used one-time prekey are
   * all saved before the first payload is returned.
   */
  acceptSession(message: string, o: { expectedRoles?: Role[] } = {}): { handle: string; payload: Uint8Array; peer: ValidatedIdentity; kind: string } {
    const s = this.id.file.settings;
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const a = acceptSession(
        message,
        { info: this.id.file, prekeys: this.id.prekeys, suites: this.id.file.suites, certHash: this.id.certHash },
        {
          policy: this.#o.trust,
          revocation: this.#o.revocationCheck ? st.revocation : 'skip',
          now: st.clock.now(),
          replay: st.replay,
          rolePolicy: this.#o.rolePolicy,
          maxLifetimeSec: s.maxLifetimeSec,
          skewSec: s.skewSec,
          expectedRoles: o.expectedRoles,
          oneTimePrekeys: readOneTimePrekeys(this.id.store),
          security: this.#log.sink,
        },
      );
      const handle = sessionHandle(a.header.fromCert, a.sessionId);
      if (sessionExists(this.id.store, handle)) throw new EvsealError('ERR_OPEN_FAILED', 'session could not be accepted');
      saveSession(this.id.store, handle, {
        v: 1,
        side: 'responder',
        peer: { id: a.initiator.id, role: a.initiator.role, operator: a.initiator.operator, fingerprint: a.initiator.fingerprint, cert: b64u(a.initiator.certDer) },
        kind: a.header.kind,
        created: Math.floor(st.clock.now().getTime() / 1000),
        ratchet: a.ratchet.toJSON(),
      });
      if (a.consumedOneTimePrekey) consumeOneTimePrekey(this.id.store, a.consumedOneTimePrekey);
      st.clock.observe((a.header.created - s.skewSec) * 1000);
      return { handle, payload: a.payload, peer: a.initiator, kind: a.header.kind };
    });
  }

  /**
   * A session's peer is checked again at every message, as an envelope's
   * sender is at every open: its certificate (kept in the session record)
   * under the trust policy, the CRLs held and trusted time. A peer revoked,
   * expired or no longer trusted after the handshake gets no further message
   * through in either direction. The reason goes to the security log only.
   */
  #peerStillValid(handle: string, rec: SessionRecord, st: EndpointState): boolean {
    try {
      if (typeof rec.peer.cert !== 'string') throw new VerificationFailure('malformed', 'session record holds no peer certificate (made by an older version): start a new session');
      const peer = validateChain([fromB64u(rec.peer.cert, 'session peer certificate')], {
        policy: this.#o.trust,
        revocation: this.#o.revocationCheck ? st.revocation : 'skip',
        now: st.clock.now(),
      });
      if (peer.fingerprint !== rec.peer.fingerprint || peer.id !== rec.peer.id || peer.role !== rec.peer.role) throw new VerificationFailure('identity-mismatch');
      return true;
    } catch (e) {
      const f = e instanceof VerificationFailure ? e : new VerificationFailure('malformed', (e as Error).message);
      this.#log.sink({ event: 'session-peer-refused', reason: f.reason, ...(f.detail ? { detail: f.detail } : {}), session: handle, peer: rec.peer.id });
      return false;
    }
  }

  /** The session `handle`, read with the CRL files loaded and its peer checked again; `refused` is thrown if the peer no longer validates. */
  #liveSession(handle: string, st: EndpointState, refused: () => EvsealError): ReturnType<typeof loadSession> {
    loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
    const session = loadSession(this.id.store, handle);
    if (!this.#peerStillValid(handle, session.rec, st)) throw refused();
    return session;
  }

  /** Encrypts the next message of a session; the advanced ratchet is saved before the ciphertext is returned. */
  sessionEncrypt(handle: string, plaintext: Uint8Array): Uint8Array {
    return withStateRead(this.id.store, this.#o.wall, (st) => {
      const { rec, ratchet } = this.#liveSession(handle, st, () => new EvsealError('ERR_CERT_REJECTED', 'session peer is no longer valid'));
      const msg = ratchet.encrypt(plaintext);
      faultPoint('session-encrypt:before-save');
      saveSession(this.id.store, handle, { ...rec, ratchet: ratchet.toJSON() });
      return msg;
    });
  }

  /** Decrypts a session message; the plaintext is released only after the advanced ratchet is saved. */
  sessionDecrypt(handle: string, message: Uint8Array): Uint8Array {
    return withStateRead(this.id.store, this.#o.wall, (st) => {
      const { rec, ratchet } = this.#liveSession(handle, st, () => new EvsealError('ERR_OPEN_FAILED', 'session message could not be opened'));
      let pt: Uint8Array;
      try {
        pt = ratchet.decrypt(message);
      } catch (e) {
        this.#log.sink({ event: 'session-message-refused', reason: 'decrypt-failed', session: handle });
        throw e;
      }
      faultPoint('session-decrypt:before-save');
      saveSession(this.id.store, handle, { ...rec, ratchet: ratchet.toJSON() });
      return pt;
    });
  }

  /**
   * Validates peers' certificate chains under this endpoint's trust policy
   * and CRLs at trusted time (firmware publishers, firmware recipients).
   * Throws VerificationFailure; the caller logs it and answers opaquely.
   */
  verifyChains(chains: Uint8Array[][], expectedRole?: Role): ValidatedIdentity[] {
    return withState(this.id.store, this.#o.wall, (st) => {
      loadCrls(this.#o.crls, this.#o.trust, st.revocation, st.clock);
      const ctx = { policy: this.#o.trust, revocation: this.#o.revocationCheck ? st.revocation : ('skip' as const), now: st.clock.now(), expectedRole };
      return chains.map((chain, i) => {
        try {
          return validateChain(chain, ctx);
        } catch (e) {
          if (e instanceof VerificationFailure && chains.length > 1) throw new VerificationFailure(e.reason, `chain ${i}: ${e.detail ?? e.reason}`);
          throw e;
        }
      });
    });
  }

  /**
   * HPKE-opens (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base
   * mode) a key slot sealed to this identity's long-lived certified key, the
   * key of its X.509 leaf. Only firmware key slots use it: their HPKE info
   * starts with its own context string, and the signature contexts
   * (signature.ts) never produce a DH output, so the signing and KEM uses of
   * the key stay apart. Throws ERR_OPEN_FAILED on any failure.
   */
  openKeySlot(enc: Uint8Array, ct: Uint8Array, info: Uint8Array): Uint8Array {
    const k = this.id.privateKey;
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new EvsealError('ERR_USAGE', 'key slots need an ECDSA P-256 identity key');
    }
    const d = Buffer.from(k.export({ format: 'jwk' }).d as string, 'base64url');
    try {
      return hpkeOpen(hpkeSuite(0x0010, 0x0001, 0x0002), enc, d, info, undefined, ct);
    } finally {
      d.fill(0);
    }
  }
}
