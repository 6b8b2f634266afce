/**
 * The Double Ratchet (Perrin & Marlinspike, "The Double Ratchet Algorithm",
 * rev. 4), composed from node:crypto primitives, as specified byte for byte in
 * docs/protocol.md §14:
 *
 * - DH: X25519 (raw 32-byte keys, imported as JWK); an all-zero output is refused.
 * - KDF_RK(rk, dh) = HKDF-SHA256(salt = rk, ikm = dh, info = "evseal/v1 ratchet root", 64).
 * - KDF_CK(ck): mk = HMAC-SHA256(ck, 0x01), next ck = HMAC-SHA256(ck, 0x02).
 * - ENCRYPT(mk, pt, ad): key || nonce = HKDF-SHA256(salt = 0^32, ikm = mk,
 *   info = "evseal/v1 ratchet message", 44); AES-256-GCM.
 * - Wire: u8 version (1) || header (dh 32 || u32 pn || u32 n) || ct || tag;
 *   AAD = lp(session ad, header). Headers are authenticated, not encrypted.
 *
 * Initialisation is adapted to evseal's KEM handshake (the responder's
 * prekey is a KEM key, so the initiator starts without a DHr): the initiator
 * sends on a chain derived from the session secret, the responder makes its
 * first ratchet key pair lazily at its first send.
 *
 * Pure core: no I/O. Decryption is transactional (nothing is committed unless
 * the AEAD verifies) and every failure is the one opaque ERR_OPEN_FAILED.
 */
import {
  createCipheriv,
  createHmac,
  createSecretKey,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomFillSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { b64u, fromB64u } from '../base64url.js';
import { concat, equalBytes, i2osp, lp, utf8, wipe } from '../bytes.js';
import { AES_256_GCM } from '../hpke/aead.js';
import { EvsealError } from '../errors.js';
import { hmacParts } from '../hpke/kdf.js';

/** Wire version byte of a ratchet message. */
export const RATCHET_MESSAGE_VERSION = 1;
/** Version of the serialized state (RatchetStateJSON.v). */
export const RATCHET_STATE_VERSION = 1;
export const DEFAULT_MAX_SKIPPED = 1000;

const KEY_LEN = 32;
const HEADER_LEN = 40;
const TAG_LEN = 16;
const BODY_OFFSET = 1 + HEADER_LEN;
const MIN_MESSAGE_LEN = BODY_OFFSET + TAG_LEN;
/** Largest value of a u32 header field. A sending chain stops at n = MAX_U32 - 1 so that Ns (and so PN) always fits a u32. */
const MAX_U32 = 0xffffffff;

const INFO_ROOT = utf8('evseal/v1 ratchet root');
const INFO_MESSAGE = utf8('evseal/v1 ratchet message');
// HKDF-Expand's per-block inputs info || counter, precomputed: both outputs here are exactly two blocks.
const INFO_ROOT_1 = concat(INFO_ROOT, Uint8Array.of(1));
const INFO_ROOT_2 = concat(INFO_ROOT, Uint8Array.of(2));
const INFO_MESSAGE_1 = concat(INFO_MESSAGE, Uint8Array.of(1));
const INFO_MESSAGE_2 = concat(INFO_MESSAGE, Uint8Array.of(2));
const LABEL_INITIATOR_CHAIN = utf8('evseal/v1 ratchet initiator chain');
const ZERO32 = new Uint8Array(32);
/** The message HKDF's constant salt, imported once. */
const ZERO_SALT_KEY = createSecretKey(ZERO32);
const MK_INPUT = Uint8Array.of(0x01);
const CK_INPUT = Uint8Array.of(0x02);

export interface RatchetOptions {
  /** Bound on stored skipped message keys, in total across all chains, and on the gap within one chain. Default 1000. */
  maxSkipped?: number;
  /** test vectors only: deterministic X25519 private keys, called for each new ratchet key pair */
  keygen?: () => Uint8Array;
}

/** Serialized ratchet state (docs/protocol.md §14.7). Every secret is b64u. */
export interface RatchetStateJSON {
  v: 1;
  /** session associated data */
  ad: string;
  /** root key */
  rk: string;
  /** X25519 private key of the current sending ratchet key pair (DHs); null for a responder before its first send */
  dhs: string | null;
  /** peer's current ratchet public key (DHr); null for an initiator before the first reply */
  dhr: string | null;
  /** sending chain key; null exactly when dhs is null */
  cks: string | null;
  /** receiving chain key; null exactly when dhr is null */
  ckr: string | null;
  ns: number;
  nr: number;
  pn: number;
  /** skipped message keys, oldest first */
  skipped: { dh: string; n: number; mk: string }[];
}

const STATE_KEYS = ['v', 'ad', 'rk', 'dhs', 'dhr', 'cks', 'ckr', 'ns', 'nr', 'pn', 'skipped'] as const;
const SKIPPED_KEYS = ['dh', 'n', 'mk'] as const;

// ---------------------------------------------------------------- helpers

const openFailed = (): EvsealError => new EvsealError('ERR_OPEN_FAILED', 'message could not be opened');
const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** A fresh copy owning its own ArrayBuffer (never a view into Buffer's pool). */
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);

function u32be(out: Uint8Array, off: number, v: number): void {
  out[off] = v >>> 24;
  out[off + 1] = (v >>> 16) & 0xff;
  out[off + 2] = (v >>> 8) & 0xff;
  out[off + 3] = v & 0xff;
}
const readU32 = (b: Uint8Array, off: number): number => ((b[off]! << 24) >>> 0) + ((b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!);

interface DhKeyPair {
  /** raw X25519 private key (what is serialized) */
  sk: Uint8Array;
  pk: Uint8Array;
  /** the imported private key; lives only in memory */
  priv: KeyObject;
}

function importPriv(sk: Uint8Array): KeyObject {
  // Node requires `x` but ignores it for a private OKP JWK and derives the public key from `d`.
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(sk), x: '' }, format: 'jwk' });
}

function importPub(pk: Uint8Array): KeyObject {
  if (pk.length !== KEY_LEN) throw new RangeError('X25519 public key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pk) }, format: 'jwk' });
}

function keyPairFromSk(sk: Uint8Array): DhKeyPair {
  if (!(sk instanceof Uint8Array) || sk.length !== KEY_LEN) throw new RangeError('X25519 private key must be 32 bytes');
  const own = copy(sk);
  const priv = importPriv(own);
  const x = createPublicKey(priv).export({ format: 'jwk' }).x as string;
  return { sk: own, pk: copy(u8(Buffer.from(x, 'base64url'))), priv };
}

function generateKeyPair(keygen: (() => Uint8Array) | undefined): DhKeyPair {
  if (keygen) {
    const sk = keygen();
    try {
      return keyPairFromSk(sk);
    } catch (e) {
      throw new EvsealError('ERR_USAGE', 'ratchet keygen must return a 32-byte X25519 private key', { cause: e });
    }
  }
  const sk = new Uint8Array(KEY_LEN);
  randomFillSync(sk);
  const kp = keyPairFromSk(sk);
  sk.fill(0);
  return kp;
}

/** X25519 with the RFC 7748 §6.1 all-zero check (OpenSSL refuses it too; this does not rely on that). */
function x25519(priv: KeyObject, pub: KeyObject): Uint8Array {
  const s = diffieHellman({ privateKey: priv, publicKey: pub });
  if (s.length !== KEY_LEN || timingSafeEqual(s, ZERO32)) {
    s.fill(0);
    throw new RangeError('X25519: all-zero shared secret');
  }
  return u8(s);
}

/**
 * HKDF-SHA256 (RFC 5869) with an output of two blocks, T(1) || T(2):
 * PRK = HMAC(salt, ikm); T(1) = HMAC(PRK, info || 0x01); T(2) = HMAC(PRK, T(1) || info || 0x02).
 * `info1`/`info2` are info || 0x01 and info || 0x02. This computes what kdf.ts's
 * hmacParts/expandParts would, with node's HMAC called directly and fewer
 * update calls: it is the per-message hot path (the vectors pin the output).
 */
function hkdfTwoBlocks(salt: Uint8Array | KeyObject, ikm: Uint8Array, info1: Uint8Array, info2: Uint8Array): [Buffer, Buffer] {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const t1 = createHmac('sha256', prk).update(info1).digest();
  const t2 = createHmac('sha256', prk).update(t1).update(info2).digest();
  prk.fill(0);
  return [t1, t2];
}

/** KDF_RK: HKDF-SHA256(salt = rk, ikm = dh, info = "evseal/v1 ratchet root", 64) = new rk || chain key. */
function kdfRk(rk: Uint8Array, dh: Uint8Array): [Uint8Array, Uint8Array] {
  const [t1, t2] = hkdfTwoBlocks(rk, dh, INFO_ROOT_1, INFO_ROOT_2);
  return [u8(t1), u8(t2)];
}

/** KDF_CK: [message key, next chain key]. */
function kdfCk(ck: Uint8Array): [Uint8Array, Uint8Array] {
  return [createHmac('sha256', ck).update(MK_INPUT).digest(), createHmac('sha256', ck).update(CK_INPUT).digest()];
}

/** key (32) || nonce (12) = HKDF-SHA256(salt = 0^32, ikm = mk, info = "evseal/v1 ratchet message", 44): T(1) and T(2)[0..12]. */
function messageKeyAndNonce(mk: Uint8Array): [Buffer, Buffer] {
  return hkdfTwoBlocks(ZERO_SALT_KEY, mk, INFO_MESSAGE_1, INFO_MESSAGE_2);
}

/** ENCRYPT, writing `version || header || ct || tag`. */
function seal(mk: Uint8Array, header: Uint8Array, pt: Uint8Array, aad: Uint8Array): Uint8Array {
  const [key, t2] = messageKeyAndNonce(mk);
  try {
    const c = createCipheriv('aes-256-gcm', key, t2.subarray(0, 12), { authTagLength: TAG_LEN });
    c.setAAD(aad);
    const body = c.update(pt);
    const fin = c.final();
    const out = new Uint8Array(BODY_OFFSET + body.length + fin.length + TAG_LEN);
    out[0] = RATCHET_MESSAGE_VERSION;
    out.set(header, 1);
    out.set(body, BODY_OFFSET);
    if (fin.length > 0) out.set(fin, BODY_OFFSET + body.length);
    out.set(c.getAuthTag(), BODY_OFFSET + body.length + fin.length);
    return out;
  } finally {
    wipe(key, t2);
  }
}

/** DECRYPT of `ct || tag`; throws if the tag does not verify. Nothing is returned before it does. */
function open(mk: Uint8Array, ctTag: Uint8Array, aad: Uint8Array): Uint8Array {
  const [key, t2] = messageKeyAndNonce(mk);
  try {
    return AES_256_GCM.open(key, t2.subarray(0, 12), aad, ctTag);
  } finally {
    wipe(key, t2);
  }
}

const skippedId = (dh: Uint8Array, n: number): string => `${b64u(dh)}.${n}`;

interface Skipped {
  dh: Uint8Array;
  n: number;
  mk: Uint8Array;
}

interface ParsedMessage {
  header: Uint8Array;
  dh: Uint8Array;
  pn: number;
  n: number;
  body: Uint8Array;
}

function parseMessage(msg: unknown): ParsedMessage | undefined {
  if (!(msg instanceof Uint8Array) || msg.length < MIN_MESSAGE_LEN || msg[0] !== RATCHET_MESSAGE_VERSION) return undefined;
  const header = msg.subarray(1, BODY_OFFSET);
  return { header, dh: header.subarray(0, 32), pn: readU32(header, 32), n: readU32(header, 36), body: msg.subarray(BODY_OFFSET) };
}

/** Parses the clear header of a ratchet message (tests and inspection only; nothing is authenticated). */
export function ratchetMessageHeader(msg: Uint8Array): { dh: Uint8Array; pn: number; n: number } {
  const p = parseMessage(msg);
  if (!p) throw new EvsealError('ERR_INVALID_INPUT', 'not a ratchet message');
  return { dh: copy(p.dh), pn: p.pn, n: p.n };
}

function checkMaxSkipped(o: RatchetOptions | undefined): number {
  const m = o?.maxSkipped ?? DEFAULT_MAX_SKIPPED;
  if (!Number.isSafeInteger(m) || m < 0) throw new EvsealError('ERR_USAGE', 'maxSkipped must be a non-negative integer');
  return m;
}

function checkSecret(b: unknown, what: string): Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== KEY_LEN) throw new EvsealError('ERR_USAGE', `${what} must be 32 bytes`);
  return copy(b);
}

// ---------------------------------------------------------------- the ratchet

interface Fields {
  ad: Uint8Array;
  rk: Uint8Array;
  dhs: DhKeyPair | undefined;
  dhr: Uint8Array | undefined;
  cks: Uint8Array | undefined;
  ckr: Uint8Array | undefined;
  ns: number;
  nr: number;
  pn: number;
  skipped: Map<string, Skipped>;
}

export class Ratchet {
  readonly #max: number;
  readonly #keygen: (() => Uint8Array) | undefined;
  readonly #ad: Uint8Array;
  /** lp(ad) || u32(40): with the header appended, exactly lp(ad, header), the AAD of every message */
  readonly #aadPrefix: Uint8Array;
  #rk: Uint8Array;
  #dhs: DhKeyPair | undefined;
  #dhr: Uint8Array | undefined;
  /** cached import of #dhr (needed for the responder's first send) */
  #dhrKey: KeyObject | undefined;
  #cks: Uint8Array | undefined;
  #ckr: Uint8Array | undefined;
  #ns: number;
  #nr: number;
  #pn: number;
  readonly #skipped: Map<string, Skipped>;

  private constructor(f: Fields, o: RatchetOptions | undefined, max: number) {
    this.#max = max;
    this.#keygen = o?.keygen;
    this.#ad = f.ad;
    this.#aadPrefix = concat(lp(f.ad), i2osp(HEADER_LEN, 4));
    this.#rk = f.rk;
    this.#dhs = f.dhs;
    this.#dhr = f.dhr;
    this.#cks = f.cks;
    this.#ckr = f.ckr;
    this.#ns = f.ns;
    this.#nr = f.nr;
    this.#pn = f.pn;
    this.#skipped = f.skipped;
  }

  /**
   * The initiator: DHs = A0 (fresh, or keygen's first key), RK = sk,
   * CKs = HMAC-SHA256(sk, "evseal/v1 ratchet initiator chain"), no DHr/CKr.
   */
  static initInitiator(sk: Uint8Array, ad: Uint8Array, o?: RatchetOptions): Ratchet {
    const max = checkMaxSkipped(o);
    const rk = checkSecret(sk, 'session secret');
    if (!(ad instanceof Uint8Array)) throw new EvsealError('ERR_USAGE', 'ad must be bytes');
    const dhs = generateKeyPair(o?.keygen);
    const cks = u8(hmacParts('sha256', rk, LABEL_INITIATOR_CHAIN));
    return new Ratchet({ ad: copy(ad), rk, dhs, dhr: undefined, cks, ckr: undefined, ns: 0, nr: 0, pn: 0, skipped: new Map() }, o, max);
  }

  /**
   * The responder: RK = sk, CKr = the initiator chain, DHr = A0, no DHs/CKs
   * (its first key pair is made at its first send).
   */
  static initResponder(sk: Uint8Array, ad: Uint8Array, initiatorRatchetPub: Uint8Array, o?: RatchetOptions): Ratchet {
    const max = checkMaxSkipped(o);
    const rk = checkSecret(sk, 'session secret');
    if (!(ad instanceof Uint8Array)) throw new EvsealError('ERR_USAGE', 'ad must be bytes');
    if (!(initiatorRatchetPub instanceof Uint8Array) || initiatorRatchetPub.length !== KEY_LEN) {
      throw new EvsealError('ERR_INVALID_INPUT', 'initiator ratchet key must be 32 bytes');
    }
    const ckr = u8(hmacParts('sha256', rk, LABEL_INITIATOR_CHAIN));
    return new Ratchet(
      { ad: copy(ad), rk, dhs: undefined, dhr: copy(initiatorRatchetPub), cks: undefined, ckr, ns: 0, nr: 0, pn: 0, skipped: new Map() },
      o,
      max,
    );
  }

  /** The current DHs public key (undefined for a responder before its first send). */
  get ratchetPublicKey(): Uint8Array | undefined {
    return this.#dhs ? copy(this.#dhs.pk) : undefined;
  }

  get skippedCount(): number {
    return this.#skipped.size;
  }

  /** AAD = lp(ad, header), built from the precomputed prefix. */
  #aad(header: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.#aadPrefix.length + HEADER_LEN);
    out.set(this.#aadPrefix, 0);
    out.set(header, this.#aadPrefix.length);
    return out;
  }

  /** RatchetEncrypt; a responder's first call first performs its DH ratchet step. */
  encrypt(pt: Uint8Array): Uint8Array {
    if (!(pt instanceof Uint8Array)) throw new EvsealError('ERR_USAGE', 'plaintext must be bytes');
    if (!this.#dhs) this.#firstSendStep();
    const dhs = this.#dhs!;
    const cks = this.#cks!;
    if (this.#ns >= MAX_U32) throw new EvsealError('ERR_STATE', 'sending chain exhausted');
    const header = new Uint8Array(HEADER_LEN);
    header.set(dhs.pk, 0);
    u32be(header, 32, this.#pn);
    u32be(header, 36, this.#ns);
    const [mk, next] = kdfCk(cks);
    try {
      const out = seal(mk, header, pt, this.#aad(header));
      this.#cks = next;
      this.#ns += 1;
      wipe(cks);
      return out;
    } catch (e) {
      wipe(next);
      throw e;
    } finally {
      wipe(mk);
    }
  }

  /** The responder's lazy DH ratchet step: DHs = B1, RK, CKs = KDF_RK(RK, DH(B1, DHr)). */
  #firstSendStep(): void {
    const kp = generateKeyPair(this.#keygen);
    let d: Uint8Array;
    try {
      this.#dhrKey ??= importPub(this.#dhr!);
      d = x25519(kp.priv, this.#dhrKey);
    } catch (e) {
      wipe(kp.sk);
      throw new EvsealError('ERR_CRYPTO', 'ratchet: DH with the initiator key failed', { cause: e });
    }
    const [rk, cks] = kdfRk(this.#rk, d);
    wipe(d, this.#rk);
    this.#rk = rk;
    this.#dhs = kp;
    this.#cks = cks;
    this.#pn = this.#ns; // 0: nothing was sent before
    this.#ns = 0;
  }

  /**
   * RatchetDecrypt. Transactional: the new state is computed aside and
   * committed only once the AEAD tag verifies. Every failure is the one
   * opaque ERR_OPEN_FAILED and leaves the state exactly as it was.
   */
  decrypt(msg: Uint8Array): Uint8Array {
    const m = parseMessage(msg);
    if (!m) throw openFailed();
    const aad = this.#aad(m.header);

    // 1. A skipped message key: used once, then deleted.
    const id = this.#skipped.size > 0 ? skippedId(m.dh, m.n) : '';
    const s = this.#skipped.size > 0 ? this.#skipped.get(id) : undefined;
    if (s) {
      let pt: Uint8Array;
      try {
        pt = open(s.mk, m.body, aad);
      } catch {
        throw openFailed();
      }
      this.#skipped.delete(id);
      wipe(s.mk);
      return pt;
    }

    // 2. Plan: decide the step and check every bound before deriving anything.
    const step = this.#dhr === undefined || !equalBytes(m.dh, this.#dhr);
    let add = 0;
    if (step) {
      // A responder that has not sent yet has no DHs: its peer cannot have a new key.
      if (!this.#dhs) throw openFailed();
      if (m.pn > this.#nr) {
        if (m.pn - this.#nr > this.#max) throw openFailed();
        if (this.#ckr) add += m.pn - this.#nr;
      }
      if (m.n > this.#max) throw openFailed();
      add += m.n;
    } else {
      if (m.n < this.#nr) throw openFailed(); // its key was used (or skipped and used): a duplicate or replay
      if (m.n - this.#nr > this.#max) throw openFailed();
      add += m.n - this.#nr;
    }
    if (this.#skipped.size + add > this.#max) throw openFailed();

    // 3. Derive on the side.
    const newSkipped: Skipped[] = [];
    const fresh: Uint8Array[] = []; // new secrets that must be wiped if the message does not open
    let rk = this.#rk;
    let dhs = this.#dhs;
    let cks = this.#cks;
    let ckr = this.#ckr;
    let nr = this.#nr;
    let ns = this.#ns;
    let pn = this.#pn;
    let dhr = this.#dhr;
    let dhrKey = this.#dhrKey;
    let mk: Uint8Array | undefined;
    try {
      if (step) {
        if (ckr && this.#dhr) {
          // The rest of the old receiving chain, up to the peer's previous chain length.
          const end = skipKeys(ckr, false, this.#dhr, nr, m.pn, newSkipped);
          if (end !== this.#ckr) wipe(end);
        }
        dhr = copy(m.dh);
        dhrKey = importPub(dhr);
        const d1 = x25519(dhs!.priv, dhrKey);
        const [rk1, ckrNew] = kdfRk(rk, d1);
        wipe(d1);
        fresh.push(rk1, ckrNew);
        const kp = generateKeyPair(this.#keygen);
        fresh.push(kp.sk);
        const d2 = x25519(kp.priv, dhrKey);
        const [rk2, cksNew] = kdfRk(rk1, d2);
        wipe(d2, rk1);
        fresh.push(rk2, cksNew);
        rk = rk2;
        ckr = ckrNew;
        cks = cksNew;
        dhs = kp;
        pn = ns;
        ns = 0;
        nr = 0;
      }
      const owned = ckr !== this.#ckr;
      const ck = skipKeys(ckr!, owned, dhr!, nr, m.n, newSkipped);
      nr = m.n;
      [mk, ckr] = kdfCk(ck);
      fresh.push(ckr);
      if (ck !== this.#ckr) wipe(ck);
      nr += 1;
      const pt = open(mk, m.body, aad);

      // 4. Commit, and wipe what the new state no longer holds.
      if (step) {
        wipe(this.#rk, this.#cks, this.#dhs!.sk);
        if (this.#ckr) wipe(this.#ckr);
      } else {
        wipe(this.#ckr);
      }
      this.#rk = rk;
      this.#dhs = dhs;
      this.#cks = cks;
      this.#ckr = ckr;
      this.#dhr = dhr;
      this.#dhrKey = dhrKey;
      this.#ns = ns;
      this.#nr = nr;
      this.#pn = pn;
      for (const k of newSkipped) this.#skipped.set(skippedId(k.dh, k.n), k);
      return pt;
    } catch {
      for (const b of fresh) wipe(b);
      for (const k of newSkipped) wipe(k.mk);
      throw openFailed();
    } finally {
      wipe(mk);
    }
  }

  /** Everything needed to resume, secrets as b64u (docs/protocol.md §14.7). Treat the result as key material. */
  toJSON(): RatchetStateJSON {
    const opt = (b: Uint8Array | undefined): string | null => (b ? b64u(b) : null);
    return {
      v: RATCHET_STATE_VERSION,
      ad: b64u(this.#ad),
      rk: b64u(this.#rk),
      dhs: opt(this.#dhs?.sk),
      dhr: opt(this.#dhr),
      cks: opt(this.#cks),
      ckr: opt(this.#ckr),
      ns: this.#ns,
      nr: this.#nr,
      pn: this.#pn,
      skipped: [...this.#skipped.values()].map((k) => ({ dh: b64u(k.dh), n: k.n, mk: b64u(k.mk) })),
    };
  }

  /** Strictly validated inverse of toJSON; any defect is ERR_STATE. */
  static fromJSON(j: unknown, o?: RatchetOptions): Ratchet {
    const max = checkMaxSkipped(o);
    const bad = (why: string): never => {
      throw new EvsealError('ERR_STATE', `ratchet state: ${why}`);
    };
    const obj = plainObject(j, STATE_KEYS) ?? bad('not an object with exactly the state members');
    if (obj.v !== RATCHET_STATE_VERSION) bad('unsupported version');
    const fields: Uint8Array[] = [];
    try {
      const bytes = (v: unknown, what: string, len?: number): Uint8Array => {
        let view: Uint8Array;
        try {
          view = fromB64u(v, what);
        } catch {
          return bad(`${what}: not canonical base64url`);
        }
        const out = copy(view);
        view.fill(0);
        fields.push(out);
        if (len !== undefined && out.length !== len) bad(`${what}: must be ${len} bytes`);
        return out;
      };
      const optBytes = (v: unknown, what: string): Uint8Array | undefined => (v === null ? undefined : bytes(v, what, KEY_LEN));
      const counter = (v: unknown, what: string, limit: number): number =>
        typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= limit ? v : bad(`${what}: not an integer in 0..${limit}`);

      const ad = bytes(obj.ad, 'ad');
      const rk = bytes(obj.rk, 'rk', KEY_LEN);
      const dhsSk = optBytes(obj.dhs, 'dhs');
      const dhr = optBytes(obj.dhr, 'dhr');
      const cks = optBytes(obj.cks, 'cks');
      const ckr = optBytes(obj.ckr, 'ckr');
      const ns = counter(obj.ns, 'ns', MAX_U32);
      const nr = counter(obj.nr, 'nr', MAX_U32 + 1);
      const pn = counter(obj.pn, 'pn', MAX_U32);
      if ((dhsSk === undefined) !== (cks === undefined)) bad('dhs and cks must be both present or both null');
      if ((dhr === undefined) !== (ckr === undefined)) bad('dhr and ckr must be both present or both null');
      if (dhsSk === undefined && dhr === undefined) bad('neither a sending nor a receiving chain');
      if (dhsSk === undefined && (ns !== 0 || pn !== 0)) bad('counters set before the first send');
      if (dhr === undefined && nr !== 0) bad('nr set without a receiving chain');

      if (!Array.isArray(obj.skipped)) bad('skipped: not an array');
      const list = obj.skipped as unknown[];
      if (list.length > max) bad(`skipped: more than maxSkipped (${max}) keys`);
      if (dhr === undefined && list.length > 0) bad('skipped keys without a receiving chain');
      const skipped = new Map<string, Skipped>();
      for (const e of list) {
        const k = plainObject(e, SKIPPED_KEYS) ?? bad('skipped: bad entry');
        const entry: Skipped = { dh: bytes(k.dh, 'skipped.dh', KEY_LEN), n: counter(k.n, 'skipped.n', MAX_U32), mk: bytes(k.mk, 'skipped.mk', KEY_LEN) };
        if (dhr && equalBytes(entry.dh, dhr) && entry.n >= nr) bad('skipped key ahead of the receiving chain');
        const id = skippedId(entry.dh, entry.n);
        if (skipped.has(id)) bad('skipped: duplicate key');
        skipped.set(id, entry);
      }

      let dhs: DhKeyPair | undefined;
      if (dhsSk) {
        try {
          dhs = keyPairFromSk(dhsSk);
        } catch {
          bad('dhs: not an X25519 private key');
        }
        wipe(dhsSk);
      }
      if (dhr) {
        try {
          importPub(dhr);
        } catch {
          bad('dhr: not an X25519 public key');
        }
      }
      const r = new Ratchet({ ad, rk, dhs, dhr, cks, ckr, ns, nr, pn, skipped }, o, max);
      fields.length = 0; // now owned by the ratchet
      return r;
    } finally {
      for (const b of fields) wipe(b);
    }
  }

  /** For forward-secrecy tests: copies of every secret currently held (root, chain keys, skipped message keys, DH private). */
  secretsForTesting(): Uint8Array[] {
    const out: Uint8Array[] = [copy(this.#rk)];
    for (const b of [this.#cks, this.#ckr, this.#dhs?.sk]) if (b) out.push(copy(b));
    for (const k of this.#skipped.values()) out.push(copy(k.mk));
    return out;
  }
}

/**
 * Derives the message keys of chain `dh` for n in [from, until) into `out`
 * and returns the chain key at `until`. Intermediate chain keys are wiped,
 * and so is `ck` itself if `owned` (a key the committed state does not hold).
 */
function skipKeys(ck: Uint8Array, owned: boolean, dh: Uint8Array, from: number, until: number, out: Skipped[]): Uint8Array {
  let cur = ck;
  for (let n = from; n < until; n++) {
    const [mk, next] = kdfCk(cur);
    if (cur !== ck || owned) wipe(cur);
    out.push({ dh, n, mk });
    cur = next;
  }
  return cur;
}

/** The object if `v` is a plain object with exactly `keys` as own members, else undefined. */
function plainObject<K extends string>(v: unknown, keys: readonly K[]): Record<K, unknown> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const own = Object.keys(v);
  if (own.length !== keys.length) return undefined;
  for (const k of keys) if (!Object.prototype.hasOwnProperty.call(v, k)) return undefined;
  return v as Record<K, unknown>;
}
