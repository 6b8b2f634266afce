/**
 * The session handshake (docs/protocol.md §13): a signed-prekey
 * handshake in the style of X3DH / PQXDH, adapted to identities that are
 * signing certificates, which starts a Double Ratchet.
 *
 * The initiator encapsulates to the responder's signed prekey (and, when it
 * claimed one, to a one-time prekey of the same KEM), derives the ratchet's
 * root secret from the shared secrets and a hash of the exact header bytes,
 * sends the first ratchet message, and signs the whole transcript with its
 * identity key. Both certificate fingerprints are in the header (so in the
 * signature, the KDF and the ratchet's associated data): a party holding the
 * responder's prekey or identity private key still cannot pose as another
 * initiator to the responder (key-compromise impersonation), because it
 * cannot sign as that initiator.
 *
 * The responder checks in the same strict order as envelope opening and
 * refuses every failure with one opaque ERR_OPEN_FAILED; the precise reason
 * goes to the security sink.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { b64u, fromB64u } from '../base64url.js';
import type { VerifiedBundle } from '../bundle.js';
import { checkTimes, choosePrekeyOrRefuse, senderCertHash, sha256, verifySender } from '../sender-checks.js';
import { concat, equalBytes, fromUtf8, lp, utf8, wipe } from '../bytes.js';
import { encodeCanonical, parseCanonical, type Shape } from '../canonical-json.js';
import { MAX_ENVELOPE_CHARS, MAX_PLAINTEXT_BYTES, type Recipient, type Sender } from '../envelope.js';
import { EvsealError, VerificationFailure, noSecuritySink, type SecuritySink } from '../errors.js';
import { HKDF_SHA256 } from '../hpke/index.js';
import { X25519_GROUP } from '../hpke/groups.js';
import { kemByName } from '../kem-registry.js';
import { verifyPrekey, type PrekeyPrivate, type SignedPrekey } from '../prekey.js';
import type { ReplayWindow } from '../replay.js';
import { isAllowed, isKind, type RolePolicy } from '../role-policy.js';
import type { Role } from '../roles.js';
import { signWith, verifyWith } from '../signature.js';
import { isSuiteName, kemOfSuite, type SuiteName } from '../suites.js';
import { type RevocationState, type TrustPolicy, type ValidatedIdentity } from '../x509/index.js';
import { Ratchet, type RatchetOptions } from './ratchet.js';

export const SESSION_VERSION = 1;

/** HKDF info label of the root secret: utf8("evseal/v1 session") || 0x00 || SHA-256(header_bytes). */
const SK_LABEL = utf8('evseal/v1 session\0');
/** HKDF salt: 32 zero bytes (SHA-256's output length), as in X3DH. */
const SK_SALT = new Uint8Array(32);
/** The ratchet's DH keys are X25519 (raw 32-byte keys, RFC 7748). */
const RATCHET_PUB_LEN = 32;
/** Replay-window key prefixes, so session ids and consumed one-time prekeys never collide with envelope ids. */
const REPLAY_SESSION = 'session:';
const REPLAY_OTK = 'session-otk:';

/** The first message's header: canonical JSON, in this member order (SESSION_HEADER_SHAPE). */
export interface SessionHeader {
  v: 1;
  suite: SuiteName;
  /** initiator id (CN of its certificate) */
  from: string;
  /** b64u SHA-256 of the initiator's leaf certificate DER */
  fromCert: string;
  /** responder id */
  to: string;
  /** b64u SHA-256 of the responder's leaf certificate DER (from its bundle) */
  toCert: string;
  /** responder signed-prekey id */
  kid: string;
  /** responder one-time prekey id, or "" when none was used */
  otk: string;
  /** session id: b64u of 16 random bytes */
  id: string;
  /** Unix seconds */
  created: number;
  /** Unix seconds: the first message is accepted until expires + skew */
  expires: number;
  /** what the session is for, checked against the role policy (e.g. `command`) */
  kind: string;
  /** b64u of the initiator's first ratchet public key A0 (X25519, 32 bytes) */
  rpub: string;
}

export const SESSION_HEADER_SHAPE: Shape = [
  ['v', 'int'],
  ['suite', 'string'],
  ['from', 'string'],
  ['fromCert', 'string'],
  ['to', 'string'],
  ['toCert', 'string'],
  ['kid', 'string'],
  ['otk', 'string'],
  ['id', 'string'],
  ['created', 'int'],
  ['expires', 'int'],
  ['kind', 'string'],
  ['rpub', 'string'],
];

/** The first message: canonical JSON, in this member order. Every value but `v` is base64url. */
export const SESSION_INIT_SHAPE: Shape = [
  ['v', 'int'],
  ['hdr', 'string'],
  ['chain', 'string[]'],
  ['enc1', 'string'],
  ['enc2', 'string'],
  ['msg', 'string'],
  ['sig', 'string'],
];

export interface InitiateOptions {
  kind: string;
  now: Date;
  /** Seconds the first message stays acceptable: expires = created + lifetimeSec. */
  lifetimeSec: number;
  rolePolicy: RolePolicy;
  /** A one-time prekey claimed from the responder's directory; its KEM must be that of the chosen suite. */
  oneTimePrekey?: SignedPrekey;
  /** Where a refused one-time prekey is reported (the precise reason). */
  security?: SecuritySink;
  /** Deterministic inputs, for published test vectors only. */
  sessionId?: Uint8Array;
  randomness?: { enc1?: Uint8Array; enc2?: Uint8Array };
  ratchet?: RatchetOptions;
}

export interface Initiated {
  /** The first message, to send to the responder. */
  message: string;
  /** The initiator's ratchet: it has already encrypted the first payload. */
  ratchet: Ratchet;
  /** b64u session id (the header's `id`); the session is named by (fromCert, id). */
  sessionId: string;
  header: SessionHeader;
  /** The responder, as validated from its bundle. */
  peer: ValidatedIdentity;
}

/** Canonical header bytes: the transcript that is signed and hashed into the root secret. */
export function encodeSessionHeader(h: SessionHeader): Uint8Array {
  return utf8(encodeCanonical(h as unknown as Record<string, unknown>, SESSION_HEADER_SHAPE));
}

/** Every value is base64url, which JSON never escapes, so this is exactly the canonical JSON of SESSION_INIT_SHAPE. */
export function encodeSessionInit(f: { hdr: Uint8Array; chain: Uint8Array[]; enc1: Uint8Array; enc2: Uint8Array; msg: Uint8Array; sig: Uint8Array }): string {
  return `{"v":1,"hdr":"${b64u(f.hdr)}","chain":[${f.chain.map((c) => `"${b64u(c)}"`).join(',')}],"enc1":"${b64u(f.enc1)}","enc2":"${b64u(f.enc2)}","msg":"${b64u(f.msg)}","sig":"${b64u(f.sig)}"}`;
}

/** The signed bytes: lp(header_bytes, enc1, enc2, msg). */
export function sessionSigInput(hdr: Uint8Array, enc1: Uint8Array, enc2: Uint8Array, msg: Uint8Array): Uint8Array {
  return lp(hdr, enc1, enc2, msg);
}

/** SK = HKDF-SHA256(salt = 0^32, ikm = ss1 || ss2, info = "evseal/v1 session" || 0x00 || SHA-256(header_bytes), L = 32). */
export function deriveSessionSecret(ss1: Uint8Array, ss2: Uint8Array, hdr: Uint8Array): Uint8Array {
  const ikm = concat(ss1, ss2);
  const prk = HKDF_SHA256.extract(SK_SALT, ikm);
  const sk = HKDF_SHA256.expand(prk, concat(SK_LABEL, sha256(hdr)), 32);
  wipe(ikm, prk);
  return sk;
}

/** The ratchet's associated data: lp(initiator cert hash, responder cert hash, session id). */
export function sessionAd(fromCert: Uint8Array, toCert: Uint8Array, id: Uint8Array): Uint8Array {
  return lp(fromCert, toCert, id);
}

/**
 * A generator that returns `first` on its first call, then defers to `next`:
 * the initiator's first ratchet key A0 must be known before the ratchet
 * exists, because it is in the header the root secret is derived from.
 */
function keygenStartingWith(first: Uint8Array, next: () => Uint8Array): () => Uint8Array {
  let used = false;
  return () => {
    if (used) return next();
    used = true;
    return first;
  };
}

const randomRatchetKey = (): Uint8Array => kemByName('X25519').generateKeyPair().privateKey;

let probeKey: KeyObject | undefined;
/**
 * Whether `pub` is an X25519 public key a DH ratchet step can use: a DH with
 * it must not give the all-zero output (RFC 7748 §6.1), which is what a
 * small-order point gives. Checked once per session, with a process-wide
 * throwaway key, so the responder never accepts a session it cannot reply on.
 */
function usableRatchetKey(pub: Uint8Array): boolean {
  probeKey ??= X25519_GROUP.ephemeral().priv;
  try {
    X25519_GROUP.dh(probeKey, X25519_GROUP.importPub(pub)).fill(0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a session with the responder whose bundle the caller verified
 * (verifyBundle: chain, trust policy, CRL, role, suite list, prekeys).
 * Suite and prekey are chosen exactly as for envelopes (choosePrekey).
 */
export function initiateSession(me: Sender, peer: VerifiedBundle, firstPayload: Uint8Array, o: InitiateOptions): Initiated {
  if (!isKind(o.kind)) throw new EvsealError('ERR_USAGE', `invalid kind ${JSON.stringify(o.kind)}`);
  if (!Number.isSafeInteger(o.lifetimeSec) || o.lifetimeSec < 1) throw new EvsealError('ERR_USAGE', 'lifetimeSec must be a positive integer');
  if (firstPayload.length > MAX_PLAINTEXT_BYTES) throw new EvsealError('ERR_USAGE', 'first payload too large');
  if (!(o.now instanceof Date) || !Number.isFinite(o.now.getTime())) throw new EvsealError('ERR_USAGE', 'now must be a valid Date');
  if (!isAllowed(o.rolePolicy, me.info.role, o.kind, peer.identity.role)) {
    throw new EvsealError('ERR_POLICY_DENIED', `role policy forbids ${me.info.role} -> ${peer.identity.role} kind ${o.kind}`);
  }
  const fromCert = senderCertHash(me.chain, me.certHash);
  const { suite, prekey } = choosePrekeyOrRefuse(peer, me.suites);
  const kem = kemByName(kemOfSuite(suite));
  const nowSec = Math.floor(o.now.getTime() / 1000);

  const otk = o.oneTimePrekey;
  if (otk) {
    if (otk.kem !== prekey.kem) throw new EvsealError('ERR_USAGE', `one-time prekey is ${otk.kem}, the chosen suite ${suite} needs ${prekey.kem}`);
    const security = o.security ?? noSecuritySink;
    if (!verifyPrekey(otk, peer.identity.publicKey, peer.identity.certHash)) {
      security({ event: 'one-time-prekey-refused', reason: 'prekey-signature', detail: otk.kid });
      throw new EvsealError('ERR_BUNDLE_REJECTED', 'one-time prekey rejected');
    }
    if (!(otk.created <= nowSec + 300 && nowSec < otk.expires)) {
      security({ event: 'one-time-prekey-refused', reason: 'prekey-expired', detail: otk.kid });
      throw new EvsealError('ERR_BUNDLE_REJECTED', 'one-time prekey rejected');
    }
  }

  const id = o.sessionId ?? new Uint8Array(randomBytes(16));
  if (id.length !== 16) throw new EvsealError('ERR_USAGE', 'session id must be 16 bytes');
  const keygen = o.ratchet?.keygen ?? randomRatchetKey;
  const a0 = new Uint8Array(keygen()); // a copy: it is wiped below, and the caller's buffer is not ours to wipe
  const a0pub = kemByName('X25519').publicKeyFromPrivate(a0);

  const e1 = kem.encap(prekey.pub, o.randomness?.enc1);
  const e2 = otk ? kem.encap(otk.pub, o.randomness?.enc2) : { sharedSecret: new Uint8Array(0), enc: new Uint8Array(0) };

  const toCert = peer.identity.certHash;
  const header: SessionHeader = {
    v: 1,
    suite,
    from: me.info.id,
    fromCert: b64u(fromCert),
    to: peer.identity.id,
    toCert: b64u(toCert),
    kid: prekey.kid,
    otk: otk ? otk.kid : '',
    id: b64u(id),
    created: nowSec,
    expires: nowSec + o.lifetimeSec,
    kind: o.kind,
    rpub: b64u(a0pub),
  };
  const hdr = encodeSessionHeader(header);
  const sk = deriveSessionSecret(e1.sharedSecret, e2.sharedSecret, hdr);
  wipe(e1.sharedSecret, e2.sharedSecret);
  const ratchet = Ratchet.initInitiator(sk, sessionAd(fromCert, toCert, id), {
    ...(o.ratchet?.maxSkipped !== undefined ? { maxSkipped: o.ratchet.maxSkipped } : {}),
    keygen: keygenStartingWith(a0, keygen),
  });
  // The ratchet keeps its own copies of the root secret and of a0.
  wipe(sk, a0);
  const rp = ratchet.ratchetPublicKey;
  if (!rp || !equalBytes(rp, a0pub)) throw new EvsealError('ERR_STATE', 'ratchet did not take the announced initiator key');
  const msg = ratchet.encrypt(firstPayload);
  const sig = signWith('session', me.privateKey, sessionSigInput(hdr, e1.enc, e2.enc, msg));
  return {
    message: encodeSessionInit({ hdr, chain: me.chain, enc1: e1.enc, enc2: e2.enc, msg, sig }),
    ratchet,
    sessionId: header.id,
    header,
    peer: peer.identity,
  };
}

export interface ParsedSessionInit {
  hdr: SessionHeader;
  hdrBytes: Uint8Array;
  chain: Uint8Array[];
  enc1: Uint8Array;
  enc2: Uint8Array;
  msg: Uint8Array;
  sig: Uint8Array;
  fromCert: Uint8Array;
  toCert: Uint8Array;
  id: Uint8Array;
  rpub: Uint8Array;
}

/** Strict structural parse: canonical JSON, canonical base64url, known header values and lengths. No cryptography. */
export function parseSessionInit(text: string): ParsedSessionInit {
  if (typeof text !== 'string' || text.length > MAX_ENVELOPE_CHARS) throw new EvsealError('ERR_INVALID_INPUT', 'session message too large');
  const o = parseCanonical(text, SESSION_INIT_SHAPE, 'session message');
  if (o.v !== SESSION_VERSION) throw new EvsealError('ERR_INVALID_INPUT', 'session message: unsupported version');
  const hdrBytes = fromB64u(o.hdr, 'session.hdr');
  let hdrText: string;
  try {
    hdrText = fromUtf8(hdrBytes);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'session.hdr: not UTF-8');
  }
  const h = parseCanonical(hdrText, SESSION_HEADER_SHAPE, 'session header') as unknown as SessionHeader;
  if (h.v !== SESSION_VERSION) throw new EvsealError('ERR_INVALID_INPUT', 'session header: unsupported version');
  if (!isSuiteName(h.suite)) throw new EvsealError('ERR_INVALID_INPUT', 'session header: unknown suite');
  if (!isKind(h.kind)) throw new EvsealError('ERR_INVALID_INPUT', 'session header: bad kind');
  const fromCert = fromB64u(h.fromCert, 'fromCert');
  const toCert = fromB64u(h.toCert, 'toCert');
  const id = fromB64u(h.id, 'id');
  const rpub = fromB64u(h.rpub, 'rpub');
  const otkLen = fromB64u(h.otk, 'otk').length;
  if (fromCert.length !== 32 || toCert.length !== 32 || id.length !== 16 || fromB64u(h.kid, 'kid').length !== 16) {
    throw new EvsealError('ERR_INVALID_INPUT', 'session header: bad field length');
  }
  if ((otkLen !== 0 && otkLen !== 16) || rpub.length !== RATCHET_PUB_LEN) throw new EvsealError('ERR_INVALID_INPUT', 'session header: bad field length');
  const chain = o.chain as string[];
  if (chain.length < 1 || chain.length > 2) throw new EvsealError('ERR_INVALID_INPUT', 'session message: chain length');
  const enc2 = fromB64u(o.enc2, 'session.enc2');
  if ((otkLen === 0) !== (enc2.length === 0)) throw new EvsealError('ERR_INVALID_INPUT', 'session message: enc2 must be present exactly when otk is');
  return {
    hdr: h,
    hdrBytes,
    chain: chain.map((c, i) => fromB64u(c, `session.chain[${i}]`)),
    enc1: fromB64u(o.enc1, 'session.enc1'),
    enc2,
    msg: fromB64u(o.msg, 'session.msg'),
    sig: fromB64u(o.sig, 'session.sig'),
    fromCert,
    toCert,
    id,
    rpub,
  };
}

export interface AcceptContext {
  policy: TrustPolicy;
  revocation: RevocationState | 'skip';
  /** Trusted time (TrustedClock.now()). */
  now: Date;
  /** Session ids (and consumed one-time prekeys) already accepted; 'skip' only for tests and vectors. */
  replay: ReplayWindow | 'skip';
  rolePolicy: RolePolicy;
  /** The longest first-message lifetime accepted; also how long session ids are kept beyond the prekey's expiry. */
  maxLifetimeSec: number;
  skewSec: number;
  /** When given, the initiator's certified role must be one of these. */
  expectedRoles?: readonly Role[];
  /** One-time prekeys the responder still holds, by kid. */
  oneTimePrekeys?: ReadonlyMap<string, PrekeyPrivate>;
  security?: SecuritySink;
  ratchet?: RatchetOptions;
}

export interface Accepted {
  ratchet: Ratchet;
  /** The first payload, decrypted by the new ratchet. */
  payload: Uint8Array;
  header: SessionHeader;
  initiator: ValidatedIdentity;
  /** b64u session id. */
  sessionId: string;
  /** The one-time prekey this session used: the caller MUST delete its private key now. */
  consumedOneTimePrekey?: string;
}

/**
 * Accepts a first message, in the documented order: structure, addressing,
 * initiator chain/trust/CRL/role/role policy, signature, times, replay,
 * decapsulation and the first ratchet message. Every failure is the same
 * opaque ERR_OPEN_FAILED; the reason goes to `ctx.security`. The session id
 * (and the one-time prekey) are recorded only after everything succeeded.
 */
export function acceptSession(message: string, me: Recipient & { certHash: Uint8Array }, ctx: AcceptContext): Accepted {
  const security = ctx.security ?? noSecuritySink;
  let sessionId = '';
  let from = '';
  try {
    let p: ParsedSessionInit;
    try {
      p = parseSessionInit(message);
    } catch (e) {
      throw new VerificationFailure('malformed', (e as Error).message);
    }
    const h = p.hdr;
    sessionId = h.id;
    from = h.from;
    // 1. Addressing: for me (id and certificate), a suite I accept, prekeys I hold.
    if (h.to !== me.info.id) throw new VerificationFailure('wrong-recipient');
    if (!equalBytes(p.toCert, me.certHash)) throw new VerificationFailure('wrong-recipient', 'toCert is not my certificate');
    if (!me.suites.includes(h.suite)) throw new VerificationFailure('suite-not-accepted', h.suite);
    const kemName = kemOfSuite(h.suite);
    const prekey = me.prekeys.get(h.kid);
    if (!prekey || prekey.kem !== kemName) throw new VerificationFailure('unknown-prekey');
    let otk: PrekeyPrivate | undefined;
    if (h.otk !== '') {
      otk = ctx.oneTimePrekeys?.get(h.otk);
      if (!otk || otk.kem !== kemName) throw new VerificationFailure('unknown-prekey', 'one-time prekey');
    }
    // 2. Initiator identity: chain, trust policy, CRL, role, role policy.
    const initiator = verifySender(p.chain, { fromCert: p.fromCert, from: h.from, kind: h.kind }, me.info.role, ctx, ctx.expectedRoles);
    // 3. The initiator's signature over the transcript.
    if (!verifyWith('session', initiator.publicKey, sessionSigInput(p.hdrBytes, p.enc1, p.enc2, p.msg), p.sig)) {
      throw new VerificationFailure('bad-signature');
    }
    // 4. Times, against trusted time.
    checkTimes(h, ctx.now, ctx.maxLifetimeSec, ctx.skewSec);
    // 5. Replay: a first message runs once, however far the session has gone,
    //    and a one-time prekey serves one session even if the caller failed to delete it.
    const replayKey = `${REPLAY_SESSION}${h.fromCert}.${h.id}`;
    if (ctx.replay !== 'skip' && ctx.replay.has(replayKey)) throw new VerificationFailure('replay');
    if (otk && ctx.replay !== 'skip' && ctx.replay.has(REPLAY_OTK + h.otk)) throw new VerificationFailure('replay', 'one-time prekey already used');
    // 6. Key agreement and the first ratchet message.
    if (!usableRatchetKey(p.rpub)) throw new VerificationFailure('decrypt-failed', 'rpub is a small-order X25519 point');
    const kem = kemByName(kemName);
    let ss1: Uint8Array;
    let ss2: Uint8Array = new Uint8Array(0);
    try {
      ss1 = kem.decap(p.enc1, prekey.sk);
      if (otk) ss2 = kem.decap(p.enc2, otk.sk);
    } catch {
      throw new VerificationFailure('decrypt-failed', 'decapsulation');
    }
    const sk = deriveSessionSecret(ss1, ss2, p.hdrBytes);
    wipe(ss1, ss2);
    let ratchet: Ratchet;
    let payload: Uint8Array;
    try {
      ratchet = Ratchet.initResponder(sk, sessionAd(p.fromCert, p.toCert, p.id), p.rpub, ratchetOptions(ctx.ratchet));
      payload = ratchet.decrypt(p.msg);
    } catch {
      throw new VerificationFailure('decrypt-failed', 'first ratchet message');
    } finally {
      wipe(sk); // the ratchet keeps its own copy
    }
    // 7. Commit. Session ids are kept while the prekey could still open the message.
    if (ctx.replay !== 'skip') {
      const keepUntil = Math.max(prekey.expires + ctx.maxLifetimeSec, h.expires + ctx.skewSec);
      ctx.replay.add(replayKey, keepUntil);
      if (otk) ctx.replay.add(REPLAY_OTK + h.otk, Math.max(otk.expires + ctx.maxLifetimeSec, keepUntil));
    }
    return {
      ratchet,
      payload,
      header: h,
      initiator,
      sessionId: h.id,
      ...(otk ? { consumedOneTimePrekey: otk.kid } : {}),
    };
  } catch (e) {
    const reason = e instanceof VerificationFailure ? e.reason : 'malformed';
    const detail = e instanceof VerificationFailure ? e.detail : (e as Error)?.message;
    security({ event: 'session-refused', reason, ...(detail ? { detail } : {}), sessionId, from });
    throw new EvsealError('ERR_OPEN_FAILED', 'session could not be accepted');
  }
}

function ratchetOptions(o: RatchetOptions | undefined): RatchetOptions {
  const out: RatchetOptions = {};
  if (o?.maxSkipped !== undefined) out.maxSkipped = o.maxSkipped;
  if (o?.keygen) out.keygen = o.keygen;
  return out;
}

