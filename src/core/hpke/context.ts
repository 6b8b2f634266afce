/**
 * RFC 9180 §5: key schedule, encryption contexts, the four modes and the
 * single-shot API. Generic over KEM, KDF and AEAD.
 */
import { EvsealError } from '../errors.js';
import { wipe } from '../bytes.js';
import { EMPTY, expandParts, expandPrefix, extractPrefix, hmacParts } from './kdf.js';
import type { Aead, Kdf, Suite } from './types.js';

const MODE_BASE = 0x00;
const MODE_PSK = 0x01;
const MODE_AUTH = 0x02;
const MODE_AUTH_PSK = 0x03;

/**
 * The sequence number is a JS number, so the limit is 2^53 - 1 rather than
 * 2^(8*Nn) - 1. RFC 9180 §5.2 allows a shorter sequence number as long as
 * overflow raises an error, which it does (ERR_CRYPTO).
 */
const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const TWO32 = 0x1_0000_0000;

/** Per-suite constants: label prefixes and the hashes of the empty psk_id / info. */
interface Precomp {
  readonly hash: Kdf['hash'];
  readonly nH: number;
  readonly pPskIdHash: Uint8Array;
  readonly pInfoHash: Uint8Array;
  readonly pSecret: Uint8Array;
  readonly pKey: Uint8Array;
  readonly pBaseNonce: Uint8Array;
  readonly pExp: Uint8Array;
  readonly suiteId: Uint8Array;
  readonly emptyPskIdHash: Uint8Array;
  readonly emptyInfoHash: Uint8Array;
}

const precomps = new WeakMap<Suite, Precomp>();

function precomp(s: Suite): Precomp {
  let p = precomps.get(s);
  if (p !== undefined) return p;
  const { kem, kdf, aead } = s;
  const suiteId = new Uint8Array([0x48, 0x50, 0x4b, 0x45, kem.id >>> 8, kem.id & 0xff, kdf.id >>> 8, kdf.id & 0xff, aead.id >>> 8, aead.id & 0xff]);
  const pPskIdHash = extractPrefix(suiteId, 'psk_id_hash');
  const pInfoHash = extractPrefix(suiteId, 'info_hash');
  p = Object.freeze({
    hash: kdf.hash,
    nH: kdf.nH,
    pPskIdHash,
    pInfoHash,
    pSecret: extractPrefix(suiteId, 'secret'),
    pKey: expandPrefix(suiteId, 'key', aead.nK),
    pBaseNonce: expandPrefix(suiteId, 'base_nonce', aead.nN),
    pExp: expandPrefix(suiteId, 'exp', kdf.nH),
    suiteId,
    emptyPskIdHash: hmacParts(kdf.hash, EMPTY, pPskIdHash),
    emptyInfoHash: hmacParts(kdf.hash, EMPTY, pInfoHash),
  });
  precomps.set(s, p);
  return p;
}

interface Schedule {
  key: Uint8Array;
  baseNonce: Uint8Array;
  secret: Uint8Array;
  ksc: Uint8Array;
}

function checkSuite(s: Suite): void {
  if (s === null || typeof s !== 'object' || !s.kem || !s.kdf || !s.aead) throw new EvsealError('ERR_USAGE', 'HPKE: not a suite');
}

/** VerifyPSKInputs (§5.1) folded into mode selection: the mode follows from which inputs are present. */
function pickMode(psk: Uint8Array | undefined, pskId: Uint8Array | undefined, auth: boolean): number {
  const gotPsk = psk !== undefined && psk.length > 0;
  const gotPskId = pskId !== undefined && pskId.length > 0;
  if (gotPsk !== gotPskId) throw new EvsealError('ERR_USAGE', 'HPKE: psk and pskId must be given together');
  // §9.5: the PSK MUST have at least 32 bytes of entropy.
  if (gotPsk && psk.length < 32) throw new EvsealError('ERR_USAGE', 'HPKE: psk must be at least 32 bytes');
  if (gotPsk) return auth ? MODE_AUTH_PSK : MODE_PSK;
  return auth ? MODE_AUTH : MODE_BASE;
}

/** KeySchedule<ROLE>(mode, shared_secret, info, psk, psk_id), §5.1. The exporter secret is derived lazily. */
function keySchedule(s: Suite, mode: number, sharedSecret: Uint8Array, info: Uint8Array, psk: Uint8Array, pskId: Uint8Array): Schedule {
  const p = precomp(s);
  const { hash, nH } = p;
  const ksc = new Uint8Array(1 + 2 * nH);
  ksc[0] = mode;
  if (pskId.length > 0) {
    const h = hmacParts(hash, EMPTY, p.pPskIdHash, pskId);
    ksc.set(h, 1);
  } else ksc.set(p.emptyPskIdHash, 1);
  if (info.length > 0) {
    const h = hmacParts(hash, EMPTY, p.pInfoHash, info);
    ksc.set(h, 1 + nH);
  } else ksc.set(p.emptyInfoHash, 1 + nH);
  const secret = hmacParts(hash, sharedSecret, p.pSecret, psk);
  const { nK, nN } = s.aead;
  const key = nK > 0 ? expandParts(hash, nH, secret, p.pKey, ksc, nK) : EMPTY;
  const baseNonce = nK > 0 ? expandParts(hash, nH, secret, p.pBaseNonce, ksc, nN) : EMPTY;
  return { key, baseNonce, secret, ksc };
}

let forceSeq: (ctx: Context, seq: number) => void;

/** Common part of the sender and recipient contexts (§5.2, §5.3). */
abstract class Context {
  readonly #suite: Suite;
  readonly #aead: Aead;
  readonly #key: Uint8Array;
  readonly #baseNonce: Uint8Array;
  readonly #nonce: Uint8Array;
  readonly #secret: Uint8Array;
  readonly #ksc: Uint8Array;
  #exporterSecret: Uint8Array | undefined;
  #seq = 0;

  static {
    forceSeq = (ctx, seq) => {
      ctx.#seq = seq;
    };
  }

  constructor(s: Suite, ks: Schedule) {
    this.#suite = s;
    this.#aead = s.aead;
    this.#key = ks.key;
    this.#baseNonce = ks.baseNonce;
    this.#nonce = new Uint8Array(ks.baseNonce.length);
    this.#secret = ks.secret;
    this.#ksc = ks.ksc;
  }

  /** The AEAD operation with ComputeNonce(seq) (§5.2), then IncrementSeq. */
  protected crypt(seal: boolean, input: Uint8Array, aad: Uint8Array | undefined): Uint8Array {
    const aead = this.#aead;
    if (aead.nK === 0) throw new EvsealError('ERR_USAGE', `HPKE: export-only suite cannot ${seal ? 'seal' : 'open'}`);
    const seq = this.#seq;
    if (seq >= MAX_SEQ) throw new EvsealError('ERR_CRYPTO', 'HPKE: message limit reached');
    let nonce = this.#baseNonce;
    if (seq !== 0) {
      // base_nonce XOR I2OSP(seq, Nn); seq < 2^53 touches only the last 7 bytes.
      nonce = this.#nonce;
      nonce.set(this.#baseNonce);
      const n = nonce.length;
      let lo = seq % TWO32;
      let hi = (seq - lo) / TWO32;
      for (let i = n - 1; i >= n - 4; i--) {
        nonce[i] ^= lo & 0xff;
        lo >>>= 8;
      }
      for (let i = n - 5; i >= n - 8; i--) {
        nonce[i] ^= hi & 0xff;
        hi >>>= 8;
      }
    }
    const out = seal ? aead.seal(this.#key, nonce, aad ?? EMPTY, input) : aead.open(this.#key, nonce, aad ?? EMPTY, input);
    this.#seq = seq + 1;
    return out;
  }

  /** Secret export (§5.3): LabeledExpand(exporter_secret, "sec", exporter_context, L). */
  export(exporterContext: Uint8Array, len: number): Uint8Array {
    const p = precomp(this.#suite);
    if (!Number.isInteger(len) || len < 0 || len > 255 * p.nH) throw new EvsealError('ERR_USAGE', `HPKE: export length must be 0..${255 * p.nH}`);
    let es = this.#exporterSecret;
    if (es === undefined) {
      es = expandParts(p.hash, p.nH, this.#secret, p.pExp, this.#ksc, p.nH);
      this.#exporterSecret = es;
    }
    return expandParts(p.hash, p.nH, es, expandPrefix(p.suiteId, 'sec', len), exporterContext, len);
  }
}

export class SenderContext extends Context {
  seal(pt: Uint8Array, aad?: Uint8Array): Uint8Array {
    return this.crypt(true, pt, aad);
  }
}

export class RecipientContext extends Context {
  /** Throws EvsealError('ERR_OPEN_FAILED') on any failure; the sequence number only advances on success. */
  open(ct: Uint8Array, aad?: Uint8Array): Uint8Array {
    return this.crypt(false, ct, aad);
  }
}

/** Test hook: set a context's sequence number (to exercise the overflow check). Not exported from index.ts. */
export function setSequenceForTesting(ctx: SenderContext | RecipientContext, seq: number): void {
  forceSeq(ctx, seq);
}

export interface SenderOptions {
  info?: Uint8Array;
  psk?: Uint8Array;
  pskId?: Uint8Array;
  /** Sender's private key: selects auth / auth_psk mode (DHKEMs only). */
  skS?: Uint8Array;
  /** Deterministic KEM randomness for known-answer tests only (see Kem.encap). */
  randomness?: Uint8Array;
}

export interface RecipientOptions {
  info?: Uint8Array;
  psk?: Uint8Array;
  pskId?: Uint8Array;
  /** Sender's public key: selects auth / auth_psk mode (DHKEMs only). */
  pkS?: Uint8Array;
}

/** SetupBaseS / SetupPSKS / SetupAuthS / SetupAuthPSKS, chosen from which of psk and skS are given. */
export function setupSender(s: Suite, pkR: Uint8Array, opts: SenderOptions = {}): { enc: Uint8Array; ctx: SenderContext } {
  checkSuite(s);
  const auth = opts.skS !== undefined;
  const mode = pickMode(opts.psk, opts.pskId, auth);
  const kem = s.kem;
  let r: { sharedSecret: Uint8Array; enc: Uint8Array };
  if (auth) {
    if (kem.authEncap === undefined) throw new EvsealError('ERR_USAGE', `HPKE: ${kem.name} has no auth mode`);
    r = kem.authEncap(pkR, opts.skS!, opts.randomness);
  } else {
    r = kem.encap(pkR, opts.randomness);
  }
  try {
    const ks = keySchedule(s, mode, r.sharedSecret, opts.info ?? EMPTY, opts.psk ?? EMPTY, opts.pskId ?? EMPTY);
    return { enc: r.enc, ctx: new SenderContext(s, ks) };
  } finally {
    wipe(r.sharedSecret);
  }
}

/** SetupBaseR / SetupPSKR / SetupAuthR / SetupAuthPSKR. A bad enc or key throws ERR_OPEN_FAILED. */
export function setupRecipient(s: Suite, enc: Uint8Array, skR: Uint8Array, opts: RecipientOptions = {}): RecipientContext {
  checkSuite(s);
  const auth = opts.pkS !== undefined;
  const mode = pickMode(opts.psk, opts.pskId, auth);
  const kem = s.kem;
  let ss: Uint8Array;
  if (auth) {
    if (kem.authDecap === undefined) throw new EvsealError('ERR_USAGE', `HPKE: ${kem.name} has no auth mode`);
    ss = kem.authDecap(enc, skR, opts.pkS!);
  } else {
    ss = kem.decap(enc, skR);
  }
  try {
    return new RecipientContext(s, keySchedule(s, mode, ss, opts.info ?? EMPTY, opts.psk ?? EMPTY, opts.pskId ?? EMPTY));
  } finally {
    wipe(ss);
  }
}

/** Single-shot seal (§6.1): base mode unless opts carry psk/pskId and/or skS. */
export function seal(
  s: Suite,
  pkR: Uint8Array,
  info: Uint8Array | undefined,
  aad: Uint8Array | undefined,
  pt: Uint8Array,
  opts: Omit<SenderOptions, 'info'> = {},
): { enc: Uint8Array; ct: Uint8Array } {
  if (opts.psk !== undefined || opts.pskId !== undefined || opts.skS !== undefined) {
    const { enc, ctx } = setupSender(s, pkR, { ...opts, info: info ?? EMPTY });
    return { enc, ct: ctx.seal(pt, aad) };
  }
  // Base mode, one message: its nonce is base_nonce (seq 0), so no context is kept.
  checkSuite(s);
  if (s.aead.nK === 0) throw new EvsealError('ERR_USAGE', 'HPKE: export-only suite cannot seal');
  const r = s.kem.encap(pkR, opts.randomness);
  let ks: Schedule;
  try {
    ks = keySchedule(s, MODE_BASE, r.sharedSecret, info ?? EMPTY, EMPTY, EMPTY);
  } finally {
    wipe(r.sharedSecret);
  }
  try {
    return { enc: r.enc, ct: s.aead.seal(ks.key, ks.baseNonce, aad ?? EMPTY, pt) };
  } finally {
    wipe(ks.key, ks.baseNonce, ks.secret);
  }
}

/** Single-shot open (§6.1). Throws ERR_OPEN_FAILED on any failure. */
export function open(
  s: Suite,
  enc: Uint8Array,
  skR: Uint8Array,
  info: Uint8Array | undefined,
  aad: Uint8Array | undefined,
  ct: Uint8Array,
  opts: Omit<RecipientOptions, 'info'> = {},
): Uint8Array {
  if (opts.psk !== undefined || opts.pskId !== undefined || opts.pkS !== undefined) {
    return setupRecipient(s, enc, skR, { ...opts, info: info ?? EMPTY }).open(ct, aad);
  }
  // Base mode, one message: as seal above.
  checkSuite(s);
  if (s.aead.nK === 0) throw new EvsealError('ERR_USAGE', 'HPKE: export-only suite cannot open');
  const ss = s.kem.decap(enc, skR);
  let ks: Schedule;
  try {
    ks = keySchedule(s, MODE_BASE, ss, info ?? EMPTY, EMPTY, EMPTY);
  } finally {
    wipe(ss);
  }
  try {
    return s.aead.open(ks.key, ks.baseNonce, aad ?? EMPTY, ct);
  } finally {
    wipe(ks.key, ks.baseNonce, ks.secret);
  }
}
