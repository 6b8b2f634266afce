import { randomBytes, type KeyObject } from 'node:crypto';
import { b64u, fromB64u, isB64uOfLength } from './base64url.js';
import { fromUtf8, utf8 } from './bytes.js';
import { encodeCanonical, parseCanonical, type Shape } from './canonical-json.js';
import { EvsealError, VerificationFailure, noSecuritySink, type SecuritySink } from './errors.js';
import { open as hpkeOpen, seal as hpkeSeal } from './hpke/index.js';
import { hpkeSuite } from './kem-registry.js';
import type { PrekeyPrivate } from './prekey.js';
import type { ReplayWindow } from './replay.js';
import { isAllowed, isKind, type RolePolicy } from './role-policy.js';
import type { IdentityInfo } from './roles.js';
import { signLp, verifyLp } from './signature.js';
import { isSuiteName, kemOfSuite, type SuiteName } from './suites.js';
import type { VerifiedBundle } from './bundle.js';
import { checkTimes, choosePrekeyOrRefuse, senderCertHash, verifySender } from './sender-checks.js';
import { PreparedChain, type RevocationState, type TrustPolicy, type ValidatedIdentity } from './x509/index.js';

export const ENVELOPE_VERSION = 1;
/** HPKE info prefix; the full encoded header follows, binding every header field into the key schedule. */
const INFO_LABEL = utf8('evseal/v1 envelope\0');
const EMPTY = new Uint8Array(0);

/** INFO_LABEL || header bytes: transient (hashed once by the key schedule), so not zero-filled and, being small, from Node's pool. */
function infoOf(hdrBytes: Uint8Array): Uint8Array {
  const info: Uint8Array = Buffer.allocUnsafe(INFO_LABEL.length + hdrBytes.length);
  info.set(INFO_LABEL, 0);
  info.set(hdrBytes, INFO_LABEL.length);
  return info;
}

export interface EnvelopeHeader {
  v: 1;
  suite: SuiteName;
  from: string; // sender id
  fromCert: string; // b64u SHA-256 of the sender's leaf certificate DER
  to: string; // recipient id
  kid: string; // recipient prekey id
  id: string; // b64u 16 random bytes
  created: number; // Unix seconds
  expires: number; // Unix seconds
  kind: string;
  cty: string; // content type of the plaintext
}

export const HEADER_SHAPE: Shape = [
  ['v', 'int'],
  ['suite', 'string'],
  ['from', 'string'],
  ['fromCert', 'string'],
  ['to', 'string'],
  ['kid', 'string'],
  ['id', 'string'],
  ['created', 'int'],
  ['expires', 'int'],
  ['kind', 'string'],
  ['cty', 'string'],
];

/** The outer envelope's canonical JSON shape (encoded and split by encodeEnvelope/splitEnvelope). */
export const ENVELOPE_SHAPE: Shape = [
  ['v', 'int'],
  ['hdr', 'string'],
  ['chain', 'string[]'],
  ['enc', 'string'],
  ['ct', 'string'],
  ['sig', 'string'],
];

/** Limits that keep an envelope inside OCPP DataTransfer/customData comfortably. */
export const MAX_ENVELOPE_CHARS = 16 * 1024 * 1024;
export const MAX_PLAINTEXT_BYTES = 8 * 1024 * 1024;
const CTY = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/;

export interface Sender {
  /** Leaf first; leaf DER's SHA-256 is the header's fromCert. */
  chain: Uint8Array[];
  info: IdentityInfo;
  privateKey: KeyObject;
  /** Suites this sender is willing to use. */
  suites: readonly SuiteName[];
  /** SHA-256 of chain[0], when the caller has it already (saves a hash per message). */
  certHash?: Uint8Array;
}

export interface SealOptions {
  kind: string;
  contentType?: string;
  now: Date;
  lifetimeSec: number;
  rolePolicy: RolePolicy;
  /** Deterministic inputs, for published test vectors only. */
  msgId?: Uint8Array;
  randomness?: Uint8Array;
}

export function sealEnvelope(sender: Sender, recipient: VerifiedBundle, plaintext: Uint8Array, o: SealOptions): string {
  if (!isKind(o.kind)) throw new EvsealError('ERR_USAGE', `invalid kind ${JSON.stringify(o.kind)}`);
  const cty = o.contentType ?? 'application/octet-stream';
  if (!CTY.test(cty)) throw new EvsealError('ERR_USAGE', `invalid content type ${JSON.stringify(cty)}`);
  if (plaintext.length > MAX_PLAINTEXT_BYTES) throw new EvsealError('ERR_USAGE', 'plaintext too large for one envelope');
  if (!isAllowed(o.rolePolicy, sender.info.role, o.kind, recipient.identity.role)) {
    throw new EvsealError('ERR_POLICY_DENIED', `role policy forbids ${sender.info.role} -> ${recipient.identity.role} kind ${o.kind}`);
  }
  const { suite, prekey } = choosePrekeyOrRefuse(recipient, sender.suites);
  const fromCert = senderCertHash(sender.chain, sender.certHash);
  const created = Math.floor(o.now.getTime() / 1000);
  const hdr: EnvelopeHeader = {
    v: 1,
    suite,
    from: sender.info.id,
    fromCert: b64u(fromCert),
    to: recipient.identity.id,
    kid: prekey.kid,
    id: b64u(o.msgId ?? new Uint8Array(randomBytes(16))),
    created,
    expires: created + o.lifetimeSec,
    kind: o.kind,
    cty,
  };
  const hdrBytes = utf8(encodeCanonical(hdr as unknown as Record<string, unknown>, HEADER_SHAPE));
  const { enc, ct } = hpkeSeal(hpkeSuite(suite), prekey.pub, infoOf(hdrBytes), EMPTY, plaintext, {
    randomness: o.randomness,
  });
  const sig = signLp('envelope', sender.privateKey, [hdrBytes, enc, ct]);
  return encodeEnvelope({ hdr: b64u(hdrBytes), chain: sender.chain.map(b64u), enc: b64u(enc), ct: b64u(ct), sig: b64u(sig) });
}

interface EnvelopeFields {
  hdr: string;
  chain: string[];
  /** the chain's text between the brackets, as sent */
  chainText: string;
  enc: string;
  ct: string;
  sig: string;
}

/**
 * Every value of the outer envelope is base64url, which JSON never escapes,
 * so its canonical JSON (ENVELOPE_SHAPE) is exactly this template. Building
 * and splitting it directly avoids JSON passes over megabyte ciphertexts.
 */
function encodeEnvelope(f: Omit<EnvelopeFields, 'chainText'>): string {
  return `{"v":1,"hdr":"${f.hdr}","chain":[${f.chain.map((c) => `"${c}"`).join(',')}],"enc":"${f.enc}","ct":"${f.ct}","sig":"${f.sig}"}`;
}

const notCanonical = (): never => {
  throw new EvsealError('ERR_INVALID_INPUT', 'envelope: not canonical envelope JSON');
};

/** The end of the literal `l` at `pos` in `text`, or a refusal. */
function lit(text: string, pos: number, l: string): number {
  if (!text.startsWith(l, pos)) notCanonical();
  return pos + l.length;
}

/** The index of the quote closing a string that opens at `pos`; its alphabet is checked by the strict base64url decoder. */
function strEnd(text: string, pos: number): number {
  if (text.charCodeAt(pos) !== 0x22) notCanonical();
  const end = text.indexOf('"', pos + 1);
  if (end < 0) notCanonical();
  return end;
}

/** The inverse of encodeEnvelope: anything but that exact grammar is refused. */
function splitEnvelope(text: string): EnvelopeFields {
  let pos = lit(text, 0, '{"v":1,"hdr":');
  let end = strEnd(text, pos);
  const hdr = text.slice(pos + 1, end);
  pos = lit(text, end + 1, ',"chain":[');
  const chainStart = pos;
  end = strEnd(text, pos);
  const chain = [text.slice(pos + 1, end)];
  pos = end + 1;
  while (text.charCodeAt(pos) === 0x2c) {
    end = strEnd(text, pos + 1);
    chain.push(text.slice(pos + 2, end));
    pos = end + 1;
  }
  if (chain.length > 2) throw new EvsealError('ERR_INVALID_INPUT', 'envelope: chain length');
  const chainText = text.slice(chainStart, pos);
  pos = lit(text, pos, '],"enc":');
  end = strEnd(text, pos);
  const enc = text.slice(pos + 1, end);
  pos = lit(text, end + 1, ',"ct":');
  end = strEnd(text, pos);
  const ct = text.slice(pos + 1, end);
  pos = lit(text, end + 1, ',"sig":');
  end = strEnd(text, pos);
  const sig = text.slice(pos + 1, end);
  if (end + 2 !== text.length || text.charCodeAt(end + 1) !== 0x7d) notCanonical();
  return { hdr, chain, chainText, enc, ct, sig };
}

interface ParsedEnvelope {
  hdr: EnvelopeHeader;
  hdrBytes: Uint8Array;
  chain: PreparedChain;
  enc: Uint8Array;
  ct: Uint8Array;
  sig: Uint8Array;
}

/**
 * Chains already decoded, by the sender certificate hash the header claims,
 * each with the chain's text as sent: a sender's envelopes all carry the
 * same chain, and a PreparedChain keeps its digest and parsed leaf. A hit
 * needs the identical text (a plain string comparison, where a Map keyed by
 * the ~1.5 KB text would hash all of it per message). Bounded; the oldest
 * entry goes first. Holding a chain here trusts nothing: every open still
 * validates it against the policy, the CRLs and the time, and checks the
 * claimed hash against the leaf.
 */
const CHAIN_CACHE_LIMIT = 1024;
const chains = new Map<string, { text: string; chain: PreparedChain }>();

function prepareChain(f: EnvelopeFields, fromCert: string): PreparedChain {
  const hit = chains.get(fromCert);
  if (hit !== undefined && hit.text === f.chainText) return hit.chain;
  const chain = new PreparedChain(f.chain.map((c, i) => fromB64u(c, `envelope.chain[${i}]`)));
  if (hit === undefined && chains.size >= CHAIN_CACHE_LIMIT) chains.delete(chains.keys().next().value as string);
  chains.set(fromCert, { text: f.chainText, chain });
  return chain;
}

/** Strict structural parse: canonical JSON, canonical base64url, known header fields. No cryptography. */
export function parseEnvelope(text: string): ParsedEnvelope {
  if (text.length > MAX_ENVELOPE_CHARS) throw new EvsealError('ERR_INVALID_INPUT', 'envelope too large');
  const o = splitEnvelope(text);
  const { hdr, hdrBytes } = parseHeader(o.hdr);
  return {
    hdr,
    hdrBytes,
    chain: prepareChain(o, hdr.fromCert),
    enc: fromB64u(o.enc, 'envelope.enc'),
    ct: fromB64u(o.ct, 'envelope.ct'),
    sig: fromB64u(o.sig, 'envelope.sig'),
  };
}

function parseHeader(hdrB64: string): { hdr: EnvelopeHeader; hdrBytes: Uint8Array } {
  const hdrBytes = fromB64u(hdrB64, 'envelope.hdr');
  let hdrText: string;
  try {
    hdrText = fromUtf8(hdrBytes);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'envelope.hdr: not UTF-8');
  }
  const h = parseCanonical(hdrText, HEADER_SHAPE, 'envelope header');
  if (h.v !== ENVELOPE_VERSION) throw new EvsealError('ERR_INVALID_INPUT', 'envelope header: unsupported version');
  if (!isSuiteName(h.suite)) throw new EvsealError('ERR_INVALID_INPUT', 'envelope header: unknown suite');
  if (!isKind(h.kind) || !CTY.test(h.cty as string)) throw new EvsealError('ERR_INVALID_INPUT', 'envelope header: bad kind or content type');
  if (!isB64uOfLength(h.fromCert, 32) || !isB64uOfLength(h.id, 16) || !isB64uOfLength(h.kid, 16)) {
    throw new EvsealError('ERR_INVALID_INPUT', 'envelope header: bad field length');
  }
  return { hdr: h as unknown as EnvelopeHeader, hdrBytes };
}

/**
 * The clear header of an envelope, for intermediaries that route on it:
 * the envelope must have the canonical outer form and a valid header; the
 * chain, enc, ciphertext and signature are neither decoded nor checked (the
 * recipient's open parses them strictly, and an intermediary has no use for
 * them). Nothing is verified.
 */
export function envelopeHeader(text: string): EnvelopeHeader {
  if (text.length > MAX_ENVELOPE_CHARS) throw new EvsealError('ERR_INVALID_INPUT', 'envelope too large');
  const o = splitEnvelope(text);
  return parseHeader(o.hdr).hdr;
}

/** Clear metadata only, for `evseal inspect` and intermediaries. Nothing is verified. */
export function inspectEnvelope(text: string): EnvelopeHeader & { size: number; chainLength: number } {
  const p = parseEnvelope(text);
  return { ...p.hdr, size: p.ct.length, chainLength: p.chain.der.length };
}

export interface Recipient {
  info: IdentityInfo;
  /** Private prekeys by kid. */
  prekeys: ReadonlyMap<string, PrekeyPrivate>;
  suites: readonly SuiteName[];
}

export interface OpenContext {
  policy: TrustPolicy;
  revocation: RevocationState | 'skip';
  now: Date;
  replay: ReplayWindow | 'skip';
  rolePolicy: RolePolicy;
  maxLifetimeSec: number;
  skewSec: number;
  security?: SecuritySink;
}

export interface Opened {
  plaintext: Uint8Array;
  header: EnvelopeHeader;
  sender: ValidatedIdentity;
}

/**
 * Opens an envelope in the documented order: structure, addressing, sender
 * chain/trust/CRL/role, signature, expiry, replay, decryption. Every failure
 * is the same opaque ERR_OPEN_FAILED; the reason goes to `ctx.security`.
 */
export function openEnvelope(text: string, me: Recipient, ctx: OpenContext): Opened {
  const security = ctx.security ?? noSecuritySink;
  let msgId = '';
  let from = '';
  try {
    let p: ParsedEnvelope;
    try {
      p = parseEnvelope(text);
    } catch (e) {
      throw new VerificationFailure('malformed', (e as Error).message);
    }
    const h = p.hdr;
    msgId = h.id;
    from = h.from;
    // Addressing: is this for me, in a suite I accept, to a prekey I hold?
    if (h.to !== me.info.id) throw new VerificationFailure('wrong-recipient');
    if (!me.suites.includes(h.suite)) throw new VerificationFailure('suite-not-accepted', h.suite);
    const prekey = me.prekeys.get(h.kid);
    if (!prekey || prekey.kem !== kemOfSuite(h.suite)) throw new VerificationFailure('unknown-prekey');
    // 1. Sender chain, trust policy, CRL, role, role policy.
    const sender = verifySender(p.chain, { fromCert: fromB64u(h.fromCert), from: h.from, kind: h.kind }, me.info.role, ctx);
    // 2. Signature over the exact header bytes, enc and ciphertext.
    if (!verifyLp('envelope', sender.publicKey, [p.hdrBytes, p.enc, p.ct], p.sig)) {
      throw new VerificationFailure('bad-signature');
    }
    // 3. Times, against trusted time.
    checkTimes(h, ctx.now, ctx.maxLifetimeSec, ctx.skewSec);
    // 4. Replay.
    const replayKey = `${h.fromCert}.${h.id}`;
    if (ctx.replay !== 'skip' && ctx.replay.has(replayKey)) throw new VerificationFailure('replay');
    // 5. Decrypt.
    let plaintext: Uint8Array;
    try {
      plaintext = hpkeOpen(hpkeSuite(h.suite), p.enc, prekey.sk, infoOf(p.hdrBytes), EMPTY, p.ct);
    } catch {
      throw new VerificationFailure('decrypt-failed');
    }
    if (ctx.replay !== 'skip') ctx.replay.add(replayKey, h.expires + ctx.skewSec);
    return { plaintext, header: h, sender };
  } catch (e) {
    const reason = e instanceof VerificationFailure ? e.reason : 'malformed';
    const detail = e instanceof VerificationFailure ? e.detail : (e as Error)?.message;
    security({ event: 'envelope-refused', reason, ...(detail ? { detail } : {}), msgId, from });
    throw new EvsealError('ERR_OPEN_FAILED', 'envelope could not be opened');
  }
}
