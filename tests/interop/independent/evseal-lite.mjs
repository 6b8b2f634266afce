// evseal-lite: an independent implementation of the evseal envelope protocol v1,
// written from docs/protocol.md (+ RFC 9180, RFC 5869, RFC 8032, RFC 5280 and
// draft-connolly-cfrg-xwing-kem-06) only. No code of evseal is used.
//
// Primitives come from @noble/*; HPKE base mode, X-Wing, DER/X.509/CRL parsing,
// chain validation and the envelope logic are written here.
//
// Public API:
//   openEnvelope(text, recipient, opts)            -> Uint8Array plaintext, or throws EvsealLiteError(.reason)
//   sealEnvelope(sender, recipientBundle, pt, opts) -> envelope text
//   plus helpers (validateChain, verifyBundle, hpke, parseCertificate, ...) used by the tests.

import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { extract as hkdfExtract, expand as hkdfExpand } from '@noble/hashes/hkdf.js';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { randomBytes as nodeRandomBytes } from 'node:crypto';

// ---------------------------------------------------------------------------
// errors

export class EvsealLiteError extends Error {
  constructor(reason, detail) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = 'EvsealLiteError';
    this.reason = reason;
  }
}
const fail = (reason, detail) => {
  throw new EvsealLiteError(reason, detail);
};

// ---------------------------------------------------------------------------
// bytes (§1)

const te = new TextEncoder();
const utf8 = (s) => te.encode(s);
const utf8Decode = (b) => new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b);

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const u16 = (n) => new Uint8Array([(n >>> 8) & 0xff, n & 0xff]);
const u32 = (n) => new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
function u64(n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('u64: not a non-negative safe integer');
  const out = new Uint8Array(8);
  let v = BigInt(n);
  for (let i = 7; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
export const lp = (...fields) => concat(...fields.flatMap((f) => [u32(f.length), f]));
const bytesEqual = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
function ctEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const randomBytes = (n) => new Uint8Array(nodeRandomBytes(n));

// b64u, strict (§1)
const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_REV = new Map([...B64U].map((c, i) => [c, i]));
export function b64uEncode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64U[v >> 18] + B64U[(v >> 12) & 63] + B64U[(v >> 6) & 63] + B64U[v & 63];
  }
  const r = bytes.length - i;
  if (r === 1) {
    const v = bytes[i] << 16;
    out += B64U[v >> 18] + B64U[(v >> 12) & 63];
  } else if (r === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64U[v >> 18] + B64U[(v >> 12) & 63] + B64U[(v >> 6) & 63];
  }
  return out;
}
export function b64uDecode(s) {
  if (typeof s !== 'string') throw new TypeError('b64u: not a string');
  if (s.length % 4 === 1) throw new TypeError('b64u: bad length');
  const vals = [];
  for (const c of s) {
    const v = B64U_REV.get(c);
    if (v === undefined) throw new TypeError('b64u: bad character');
    vals.push(v);
  }
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let i = 0;
  for (; i + 4 <= vals.length; i += 4) {
    const v = (vals[i] << 18) | (vals[i + 1] << 12) | (vals[i + 2] << 6) | vals[i + 3];
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  const r = vals.length - i;
  if (r === 2) {
    if (vals[i + 1] & 0x0f) throw new TypeError('b64u: non-zero trailing bits');
    out[o++] = (vals[i] << 2) | (vals[i + 1] >> 4);
  } else if (r === 3) {
    if (vals[i + 2] & 0x03) throw new TypeError('b64u: non-zero trailing bits');
    const v = (vals[i] << 18) | (vals[i + 1] << 12) | (vals[i + 2] << 6);
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 0xff;
  }
  return out;
}

// ---------------------------------------------------------------------------
// canonical JSON (§1.1)

const jsonStr = (s) => JSON.stringify(s); // ECMAScript escaping, as §1.1 prescribes

function canonValue(v) {
  if (typeof v === 'string') return jsonStr(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new TypeError('canonical JSON: bad number');
    return String(v);
  }
  // §1.1 does not describe arrays; we assume `[` elements joined by `,` `]` with no whitespace.
  if (Array.isArray(v)) return '[' + v.map(canonValue).join(',') + ']';
  throw new TypeError('canonical JSON: unsupported value');
}
/** fields: [[key, value], ...] in the order the spec lists them */
export function canonicalJson(fields) {
  return '{' + fields.map(([k, v]) => jsonStr(k) + ':' + canonValue(v)).join(',') + '}';
}

/**
 * Strict canonical parse: schema is [[key, type], ...], type in 'int' | 'string' | 'string[]'.
 * Parse, check the key list and types, re-encode canonically and compare with the input text.
 */
function parseCanonical(text, schema) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    return null;
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return null;
  const keys = Object.keys(obj);
  if (keys.length !== schema.length) return null;
  for (let i = 0; i < schema.length; i++) {
    const [k, t] = schema[i];
    if (keys[i] !== k) return null;
    const v = obj[k];
    if (t === 'int' && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) return null;
    if (t === 'string' && typeof v !== 'string') return null;
    if (t === 'string[]' && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) return null;
  }
  let re;
  try {
    re = canonicalJson(schema.map(([k]) => [k, obj[k]]));
  } catch {
    return null;
  }
  if (re !== text) return null; // whitespace, duplicate keys, escapes, number forms ...
  return obj;
}

// ---------------------------------------------------------------------------
// suites (§2)

export const KEMS = {
  XWING: { id: 0x647a, name: 'XWING', Npk: 1216, Nsk: 32, Nenc: 1120 },
  X25519: { id: 0x0020, name: 'X25519', Npk: 32, Nsk: 32, Nenc: 32 },
  P256: { id: 0x0010, name: 'P256', Npk: 65, Nsk: 32, Nenc: 65 },
};
const AEADS = {
  0x0002: { id: 0x0002, Nk: 32, Nn: 12, make: (k, n, aad) => gcm(k, n, aad) },
  0x0003: { id: 0x0003, Nk: 32, Nn: 12, make: (k, n, aad) => chacha20poly1305(k, n, aad) },
};
export const SUITES = {
  'XWING-SHA256-AES256GCM': { kem: 'XWING', kdf: 0x0001, aead: 0x0002 },
  'X25519-SHA256-AES256GCM': { kem: 'X25519', kdf: 0x0001, aead: 0x0002 },
  'X25519-SHA256-CHACHA20POLY1305': { kem: 'X25519', kdf: 0x0001, aead: 0x0003 },
  'P256-SHA256-AES256GCM': { kem: 'P256', kdf: 0x0001, aead: 0x0002 },
};
export const DEFAULT_SUITES = ['XWING-SHA256-AES256GCM', 'X25519-SHA256-AES256GCM'];

// ---------------------------------------------------------------------------
// HPKE (RFC 9180), base mode, HKDF-SHA256 only

const HPKE_V1 = utf8('HPKE-v1');
const labeledExtract = (suiteId, salt, label, ikm) =>
  hkdfExtract(sha256, concat(HPKE_V1, suiteId, utf8(label), ikm), salt);
const labeledExpand = (suiteId, prk, label, info, L) =>
  hkdfExpand(sha256, prk, concat(u16(L), HPKE_V1, suiteId, utf8(label), info), L);

const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function dhkem(kemName) {
  const kem = KEMS[kemName];
  const suiteId = concat(utf8('KEM'), u16(kem.id));
  const curve =
    kemName === 'X25519'
      ? {
          pub: (sk) => x25519.getPublicKey(sk),
          dh: (sk, pk) => {
            if (pk.length !== 32) throw new Error('bad X25519 public key');
            const z = x25519.getSharedSecret(sk, pk);
            if (z.every((b) => b === 0)) throw new Error('X25519: all-zero shared secret');
            return z;
          },
          derive: (ikm) => {
            const prk = labeledExtract(suiteId, new Uint8Array(0), 'dkp_prk', ikm);
            const sk = labeledExpand(suiteId, prk, 'sk', new Uint8Array(0), 32);
            return { sk, pk: x25519.getPublicKey(sk) };
          },
        }
      : {
          pub: (sk) => p256.getPublicKey(sk, false),
          dh: (sk, pk) => {
            if (pk.length !== 65 || pk[0] !== 4) throw new Error('bad P-256 public key');
            p256.Point.fromBytes(pk).assertValidity();
            return p256.getSharedSecret(sk, pk, true).subarray(1); // x-coordinate
          },
          derive: (ikm) => {
            const prk = labeledExtract(suiteId, new Uint8Array(0), 'dkp_prk', ikm);
            for (let counter = 0; counter < 256; counter++) {
              const bytes = labeledExpand(suiteId, prk, 'candidate', new Uint8Array([counter]), 32);
              bytes[0] &= 0xff;
              const v = BigInt('0x' + hex(bytes));
              if (v !== 0n && v < P256_N) return { sk: bytes, pk: p256.getPublicKey(bytes, false) };
            }
            throw new Error('DeriveKeyPairError');
          },
        };
  const extractAndExpand = (dh, kemContext) => {
    const prk = labeledExtract(suiteId, new Uint8Array(0), 'eae_prk', dh);
    return labeledExpand(suiteId, prk, 'shared_secret', kemContext, 32);
  };
  return {
    ...kem,
    publicFromPrivate: curve.pub,
    deriveKeyPair: curve.derive,
    /** randomness: ikmE for DeriveKeyPair (RFC 9180 §4.1 / §12 of the spec) */
    encap(pkR, randomness) {
      const { sk: skE, pk: pkE } = curve.derive(randomness ?? randomBytes(kem.Nsk));
      const dh = curve.dh(skE, pkR);
      const enc = pkE;
      return { sharedSecret: extractAndExpand(dh, concat(enc, pkR)), enc };
    },
    decap(enc, skR) {
      if (enc.length !== kem.Nenc) throw new Error('bad enc length');
      const dh = curve.dh(skR, enc);
      return extractAndExpand(dh, concat(enc, curve.pub(skR)));
    },
  };
}

// X-Wing, draft-connolly-cfrg-xwing-kem-06 (§2.1 of the spec)
const XWING_LABEL = utf8('\\.//^\\'); // 5c 2e 2f 2f 5e 5c
function xwingExpand(sk) {
  const expanded = shake256(sk, { dkLen: 96 });
  const { publicKey: pkM, secretKey: skM } = ml_kem768.keygen(expanded.subarray(0, 64));
  const skX = expanded.slice(64, 96);
  const pkX = x25519.getPublicKey(skX);
  return { skM, skX, pkM, pkX };
}
const xwingCombiner = (ssM, ssX, ctX, pkX) => sha3_256(concat(ssM, ssX, ctX, pkX, XWING_LABEL));
export const xwing = {
  ...KEMS.XWING,
  publicFromPrivate(sk) {
    const { pkM, pkX } = xwingExpand(sk);
    return concat(pkM, pkX);
  },
  deriveKeyPair(ikm) {
    const sk = shake256(ikm, { dkLen: 32 });
    return { sk, pk: this.publicFromPrivate(sk) };
  },
  /** randomness: the 64-byte eseed of EncapsulateDerand */
  encap(pk, randomness) {
    if (pk.length !== 1216) throw new Error('bad X-Wing public key');
    const eseed = randomness ?? randomBytes(64);
    if (eseed.length !== 64) throw new Error('X-Wing eseed must be 64 bytes');
    const pkM = pk.subarray(0, 1184);
    const pkX = pk.subarray(1184, 1216);
    const ekX = eseed.slice(32, 64);
    const ctX = x25519.getPublicKey(ekX);
    const ssX = x25519.getSharedSecret(ekX, pkX);
    const { cipherText: ctM, sharedSecret: ssM } = ml_kem768.encapsulate(pkM, eseed.slice(0, 32));
    return { sharedSecret: xwingCombiner(ssM, ssX, ctX, pkX), enc: concat(ctM, ctX) };
  },
  decap(enc, sk) {
    if (enc.length !== 1120) throw new Error('bad X-Wing enc length');
    const { skM, skX, pkX } = xwingExpand(sk);
    const ctM = enc.subarray(0, 1088);
    const ctX = enc.subarray(1088, 1120);
    const ssM = ml_kem768.decapsulate(ctM, skM);
    const ssX = x25519.getSharedSecret(skX, ctX);
    return xwingCombiner(ssM, ssX, ctX, pkX);
  },
};
export const kemImpl = (name) => (name === 'XWING' ? xwing : dhkem(name));

function keySchedule(kemId, aeadId, sharedSecret, info) {
  const aead = AEADS[aeadId];
  const suiteId = concat(utf8('HPKE'), u16(kemId), u16(0x0001), u16(aeadId));
  const empty = new Uint8Array(0);
  const pskIdHash = labeledExtract(suiteId, empty, 'psk_id_hash', empty);
  const infoHash = labeledExtract(suiteId, empty, 'info_hash', info);
  const ksContext = concat(new Uint8Array([0x00]), pskIdHash, infoHash); // mode_base
  const secret = labeledExtract(suiteId, sharedSecret, 'secret', empty); // psk = ""
  const key = labeledExpand(suiteId, secret, 'key', ksContext, aead.Nk);
  const baseNonce = labeledExpand(suiteId, secret, 'base_nonce', ksContext, aead.Nn);
  return { aead, key, baseNonce }; // seq = 0: nonce = base_nonce XOR 0
}

export const hpke = {
  sealBase(suiteName, pkR, info, aad, pt, randomness) {
    const s = SUITES[suiteName];
    const kem = kemImpl(s.kem);
    const { sharedSecret, enc } = kem.encap(pkR, randomness);
    const { aead, key, baseNonce } = keySchedule(kem.id, s.aead, sharedSecret, info);
    return { enc, ct: aead.make(key, baseNonce, aad).encrypt(pt) };
  },
  openBase(suiteName, enc, skR, info, aad, ct) {
    const s = SUITES[suiteName];
    const kem = kemImpl(s.kem);
    const sharedSecret = kem.decap(enc, skR);
    const { aead, key, baseNonce } = keySchedule(kem.id, s.aead, sharedSecret, info);
    return aead.make(key, baseNonce, aad).decrypt(ct);
  },
};

// ---------------------------------------------------------------------------
// signatures (§4)

export const CONTEXTS = {
  prekey: 'evseal/v1 prekey',
  suites: 'evseal/v1 suites',
  envelope: 'evseal/v1 envelope',
};
const frame = (context, message) => concat(utf8(context), new Uint8Array([0]), message);

/** key: { alg: 'ed25519' | 'ecdsa-p256', sk: Uint8Array(32) } */
export function signWith(key, context, message) {
  const m = frame(context, message);
  if (key.alg === 'ed25519') return ed25519.sign(m, key.sk);
  return p256.sign(m, key.sk, { prehash: true, format: 'compact' });
}
/** pub: { alg, key } (key = raw Ed25519 32 bytes or SEC1 P-256 point) */
export function verifyWith(pub, context, message, sig) {
  const m = frame(context, message);
  const key = pub.publicKey ?? pub.key;
  try {
    if (pub.alg === 'ed25519') return sig.length === 64 && ed25519.verify(sig, m, key, { zip215: false });
    // The spec does not say whether high-S ECDSA signatures are acceptable; accept them (lowS: false).
    return sig.length === 64 && p256.verify(sig, m, key, { prehash: true, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// DER (Appendix A.4.4)

class DerError extends Error {}
const derFail = (m) => {
  throw new DerError(m);
};

/** read one TLV at off; returns { tag, start, cstart, end } */
function readTlv(buf, off, limit = buf.length) {
  if (off + 2 > limit) derFail('truncated');
  const tag = buf[off];
  if ((tag & 0x1f) === 0x1f) derFail('multi-byte tag');
  let p = off + 1;
  let len = buf[p++];
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) derFail('indefinite length');
    if (n > 4) derFail('length too long');
    if (p + n > limit) derFail('truncated length');
    if (buf[p] === 0) derFail('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
    if (len < 0x80) derFail('non-minimal length');
  }
  if (p + len > limit) derFail('truncated value');
  return { tag, start: off, cstart: p, end: p + len, buf };
}
const content = (t) => t.buf.subarray(t.cstart, t.end);
const raw = (t) => t.buf.subarray(t.start, t.end);
/** children of a constructed TLV; must be filled exactly */
function children(t) {
  if (!(t.tag & 0x20)) derFail('not constructed');
  const out = [];
  let p = t.cstart;
  while (p < t.end) {
    const c = readTlv(t.buf, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}
function parseTop(buf) {
  const t = readTlv(buf, 0);
  if (t.end !== buf.length) derFail('trailing data');
  if (t.tag !== 0x30) derFail('not a SEQUENCE');
  return t;
}
function expectTag(t, tag, what) {
  if (!t || t.tag !== tag) derFail(`expected ${what}`);
  return t;
}
function derInt(t) {
  expectTag(t, 0x02, 'INTEGER');
  const c = content(t);
  if (c.length === 0) derFail('empty INTEGER');
  if (c.length > 1 && ((c[0] === 0 && c[1] < 0x80) || (c[0] === 0xff && c[1] >= 0x80))) derFail('non-minimal INTEGER');
  return c;
}
function intSmall(t) {
  const c = derInt(t);
  if (c[0] & 0x80) derFail('negative');
  if (c.length > 6) derFail('too large');
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}
function derBool(t) {
  expectTag(t, 0x01, 'BOOLEAN');
  const c = content(t);
  if (c.length !== 1 || (c[0] !== 0 && c[0] !== 0xff)) derFail('bad BOOLEAN');
  return c[0] === 0xff;
}
function derBitString(t) {
  expectTag(t, 0x03, 'BIT STRING');
  const c = content(t);
  if (c.length === 0) derFail('empty BIT STRING');
  const unused = c[0];
  if (unused > 7 || (c.length === 1 && unused !== 0)) derFail('bad BIT STRING');
  if (unused && c[c.length - 1] & ((1 << unused) - 1)) derFail('non-zero unused bits');
  return { unused, bytes: c.subarray(1) };
}
function derOid(t) {
  expectTag(t, 0x06, 'OID');
  return hex(content(t));
}
function derTime(t) {
  const s = String.fromCharCode(...content(t));
  let m;
  if (t.tag === 0x17) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) derFail('bad UTCTime');
    const yy = +m[1];
    m = [null, String(yy >= 50 ? 1900 + yy : 2000 + yy), ...m.slice(2)];
  } else if (t.tag === 0x18) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) derFail('bad GeneralizedTime');
  } else derFail('expected Time');
  const [, Y, M, D, h, mi, se] = m.map(Number);
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 59) derFail('bad time value');
  const ms = Date.UTC(Y, M - 1, D, h, mi, se);
  const d = new Date(ms);
  if (d.getUTCDate() !== D) derFail('bad day');
  return ms / 1000;
}

// OIDs (hex of content)
const OID = {
  O: '55040a',
  OU: '55040b',
  CN: '550403',
  basicConstraints: '551d13',
  keyUsage: '551d0f',
  ski: '551d0e',
  aki: '551d23',
  crlNumber: '551d14',
  ecPublicKey: '2a8648ce3d0201',
  prime256v1: '2a8648ce3d030107',
  ed25519: '2b6570',
};
const SIG_ALG_ECDSA = '300a06082a8648ce3d040302';
const SIG_ALG_ED25519 = '300506032b6570';

/** Name -> { raw, attrs: [[oidHex, tag, valueBytes]] }, single-valued RDNs only */
function parseName(t) {
  expectTag(t, 0x30, 'Name');
  const attrs = [];
  for (const rdn of children(t)) {
    expectTag(rdn, 0x31, 'RDN SET');
    const atvs = children(rdn);
    if (atvs.length !== 1) derFail('multi-valued RDN');
    const [type, value, ...rest] = children(expectTag(atvs[0], 0x30, 'AttributeTypeAndValue'));
    if (rest.length || !value) derFail('bad AttributeTypeAndValue');
    attrs.push([derOid(type), value.tag, content(value)]);
  }
  return { raw: raw(t), attrs };
}

function parseAlgId(t) {
  expectTag(t, 0x30, 'AlgorithmIdentifier');
  const h = hex(raw(t));
  if (h === SIG_ALG_ECDSA) return 'ecdsa-p256';
  if (h === SIG_ALG_ED25519) return 'ed25519';
  return null; // unknown: profile error, reported by the caller
}

function parseSpki(t) {
  const [alg, key, ...rest] = children(expectTag(t, 0x30, 'SubjectPublicKeyInfo'));
  if (rest.length) derFail('bad SPKI');
  const algParts = children(expectTag(alg, 0x30, 'AlgorithmIdentifier'));
  const bits = derBitString(key);
  const oid = derOid(algParts[0]);
  if (oid === OID.ed25519 && algParts.length === 1) {
    return { alg: bits.unused === 0 && bits.bytes.length === 32 ? 'ed25519' : null, key: bits.bytes, spkiBits: bits.bytes };
  }
  if (oid === OID.ecPublicKey && algParts.length === 2 && algParts[1].tag === 0x06 && derOid(algParts[1]) === OID.prime256v1) {
    let ok = bits.unused === 0;
    try {
      p256.Point.fromBytes(bits.bytes).assertValidity();
    } catch {
      ok = false;
    }
    return { alg: ok ? 'ecdsa-p256' : null, key: bits.bytes, spkiBits: bits.bytes };
  }
  return { alg: null, key: bits.bytes, spkiBits: bits.bytes };
}

function parseExtensions(t) {
  // [3] EXPLICIT Extensions
  const [seq, ...rest] = children(t);
  if (rest.length) derFail('bad extensions wrapper');
  const list = children(expectTag(seq, 0x30, 'Extensions'));
  if (list.length === 0) derFail('empty Extensions');
  const exts = [];
  for (const e of list) {
    const parts = children(expectTag(e, 0x30, 'Extension'));
    if (parts.length < 2 || parts.length > 3) derFail('bad Extension');
    const oid = derOid(parts[0]);
    let critical = false;
    let valT = parts[1];
    if (parts.length === 3) {
      critical = derBool(parts[1]);
      if (!critical) derFail('DEFAULT FALSE critical encoded');
      valT = parts[2];
    }
    expectTag(valT, 0x04, 'OCTET STRING');
    exts.push({ oid, critical, value: content(valT) });
  }
  return exts;
}

function parseBasicConstraints(v) {
  const t = parseTop(v);
  const parts = children(t);
  let cA = false;
  let pathLen;
  let i = 0;
  if (parts[i] && parts[i].tag === 0x01) {
    cA = derBool(parts[i++]);
    if (!cA) derFail('cA FALSE encoded');
  }
  if (parts[i] && parts[i].tag === 0x02) pathLen = intSmall(parts[i++]);
  if (i !== parts.length) derFail('bad basicConstraints');
  return { cA, pathLen };
}
function parseKeyUsage(v) {
  const t = readTlv(v, 0);
  if (t.end !== v.length) derFail('trailing');
  const { bytes } = derBitString(t);
  const bit = (n) => ((bytes[n >> 3] ?? 0) >> (7 - (n & 7))) & 1;
  return { digitalSignature: !!bit(0), keyCertSign: !!bit(5), cRLSign: !!bit(6) };
}
function parseOctetStringExt(v) {
  const t = readTlv(v, 0);
  if (t.end !== v.length) derFail('trailing');
  expectTag(t, 0x04, 'OCTET STRING');
  return content(t);
}
function parseAki(v) {
  const t = parseTop(v);
  let keyId;
  for (const c of children(t)) {
    if (c.tag === 0x80) keyId = content(c);
    else if (c.tag !== 0xa1 && c.tag !== 0x82) derFail('bad AKI');
  }
  return keyId;
}

/**
 * Parse a certificate. Throws DerError when it is not well-formed DER / not a
 * Certificate (-> 'malformed'). Profile findings are collected in `problems`
 * (-> 'chain-invalid' for leaves, exclusion for anchors).
 */
export function parseCertificate(der) {
  const top = parseTop(der);
  const [tbs, sigAlgT, sigT, ...more] = children(top);
  if (more.length || !sigT) derFail('bad Certificate');
  expectTag(tbs, 0x30, 'tbsCertificate');
  const f = children(tbs);
  let i = 0;
  const problems = [];
  let version = 1;
  if (f[i] && f[i].tag === 0xa0) {
    const vc = children(f[i++]);
    if (vc.length !== 1) derFail('bad version');
    version = intSmall(vc[0]) + 1;
    if (version === 1) derFail('DEFAULT v1 encoded');
  }
  if (version !== 3) problems.push('not v3');
  const serial = derInt(f[i++]);
  if (serial[0] & 0x80 || serial.every((b) => b === 0) || serial.length > 20) problems.push('bad serial');
  const innerSigAlgT = expectTag(f[i++], 0x30, 'signature');
  const issuer = parseName(f[i++]);
  const validity = children(expectTag(f[i++], 0x30, 'Validity'));
  if (validity.length !== 2) derFail('bad Validity');
  const notBefore = derTime(validity[0]);
  const notAfter = derTime(validity[1]);
  const subject = parseName(f[i++]);
  const spki = parseSpki(f[i++]);
  let exts = null;
  while (i < f.length) {
    const t = f[i++];
    if (t.tag === 0x81 || t.tag === 0xa1 || t.tag === 0x82 || t.tag === 0xa2) problems.push('unique identifier');
    else if (t.tag === 0xa3 && exts === null) exts = parseExtensions(t);
    else derFail('unexpected field in tbsCertificate');
  }
  const sigAlg = parseAlgId(sigAlgT);
  if (!sigAlg || !bytesEqual(raw(sigAlgT), raw(innerSigAlgT))) problems.push('signature algorithm');
  const sigBits = derBitString(sigT);
  if (sigBits.unused) derFail('signature bits');
  if (!spki.alg) problems.push('key algorithm');

  const ext = {};
  const seen = new Set();
  for (const e of exts ?? []) {
    if (seen.has(e.oid)) problems.push('duplicate extension');
    seen.add(e.oid);
    try {
      if (e.oid === OID.basicConstraints) ext.basicConstraints = { ...parseBasicConstraints(e.value), critical: e.critical };
      else if (e.oid === OID.keyUsage) ext.keyUsage = { ...parseKeyUsage(e.value), critical: e.critical };
      else if (e.oid === OID.ski) ext.ski = parseOctetStringExt(e.value);
      else if (e.oid === OID.aki) ext.aki = parseAki(e.value);
      else if (e.critical) problems.push('unknown critical extension');
    } catch (err) {
      if (err instanceof DerError) problems.push('bad extension ' + e.oid);
      else throw err;
    }
  }
  return {
    der,
    tbs: raw(tbs),
    sigAlg,
    signature: sigBits.bytes,
    version,
    serial,
    serialHex: hex(serial),
    issuer,
    subject,
    notBefore,
    notAfter,
    spki,
    extensions: exts,
    ext,
    problems,
  };
}

// ---------------------------------------------------------------------------
// identities (Appendix A.3.1)

export const ROLES = ['charger', 'service-tool', 'psp', 'emsp', 'fleet', 'provisioning', 'firmware-publisher', 'gateway'];
export const isValidId = (s) => typeof s === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(s);
export function isValidOperator(s) {
  if (typeof s !== 'string') return false;
  const cps = [...s];
  if (cps.length < 1 || cps.length > 64) return false;
  if (s.startsWith(' ') || s.endsWith(' ')) return false;
  for (const ch of cps) {
    const c = ch.codePointAt(0);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return false;
    if (c === 0x2028 || c === 0x2029) return false;
    if (c >= 0xd800 && c <= 0xdfff) return false;
    if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) === 0xfffe) return false;
  }
  return true;
}
/** leaf subject -> { role, id, operator } or null */
function identityFromSubject(subject) {
  const map = { [OID.O]: 'operator', [OID.OU]: 'role', [OID.CN]: 'id' };
  const out = {};
  if (subject.attrs.length !== 3) return null;
  for (const [oid, tag, value] of subject.attrs) {
    const k = map[oid];
    if (!k || k in out || tag !== 0x0c) return null;
    try {
      out[k] = utf8Decode(value);
    } catch {
      return null;
    }
  }
  if (!ROLES.includes(out.role) || !isValidId(out.id) || !isValidOperator(out.operator)) return null;
  return out;
}

// ---------------------------------------------------------------------------
// PEM (Appendix A.8.1) and PKCS#8

export function pemToDer(pem, label) {
  if (pem instanceof Uint8Array) return pem;
  const text = pem.replace(/\r\n/g, '\n').trim();
  const re = new RegExp(`^-----BEGIN ${label}-----\\n([A-Za-z0-9+/=\\n]+)\\n-----END ${label}-----$`);
  const m = re.exec(text);
  if (!m) throw new EvsealLiteError('malformed', `not a single ${label} PEM block`);
  const lines = m[1].split('\n');
  if (lines.some((l, i) => l.length === 0 || l.length > 64 || (i < lines.length - 1 && l.length !== 64))) {
    throw new EvsealLiteError('malformed', 'PEM line length');
  }
  const b64 = lines.join('');
  const der = new Uint8Array(Buffer.from(b64, 'base64'));
  if (Buffer.from(der).toString('base64') !== b64) throw new EvsealLiteError('malformed', 'non-canonical base64');
  return der;
}

/** PKCS#8 PEM -> { alg, sk } */
export function parsePrivateKey(pem) {
  const der = pemToDer(pem, 'PRIVATE KEY');
  const [ver, alg, key] = children(parseTop(der));
  if (intSmall(ver) !== 0) derFail('PKCS#8 version');
  const algParts = children(alg);
  const oid = derOid(algParts[0]);
  const inner = content(expectTag(key, 0x04, 'privateKey'));
  if (oid === OID.ed25519) {
    const t = readTlv(inner, 0);
    return { alg: 'ed25519', sk: content(expectTag(t, 0x04, 'CurvePrivateKey')).slice() };
  }
  if (oid === OID.ecPublicKey) {
    const ecpk = children(parseTop(inner));
    const d = content(expectTag(ecpk[1], 0x04, 'ECPrivateKey.privateKey'));
    if (d.length !== 32) derFail('P-256 key length');
    return { alg: 'ecdsa-p256', sk: d.slice() };
  }
  derFail('unsupported private key');
}

// ---------------------------------------------------------------------------
// trust policy, CRLs (Appendix A.7, A.9.1, A.10, A.12)

/** anchor profile check (§A.9.1); returns parsed cert or null */
function parseAnchor(certDer, { needCrlSign = false } = {}) {
  let c;
  try {
    c = parseCertificate(certDer);
  } catch {
    return null;
  }
  if (c.version !== 3 || !c.spki.alg) return null;
  if (c.problems.some((p) => p === 'duplicate extension' || p === 'unknown critical extension' || p.startsWith('bad extension'))) return null;
  if (!c.ext.basicConstraints?.cA) return null;
  if (!c.ext.keyUsage?.keyCertSign) return null;
  if (needCrlSign && !c.ext.keyUsage.cRLSign) return null;
  return c;
}

/**
 * Build a trust policy.
 *   input: a CA PEM string (one anchor, named after its CN, every role), or
 *          { version: 1, anchors: [{ name, cert (PEM), roles: [...] | '*', pins? }] }
 */
export function makeTrustPolicy(input) {
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const der = pemToDer(input, 'CERTIFICATE');
    const c = parseAnchor(der);
    if (!c) throw new EvsealLiteError('invalid-input', 'CA certificate fails the CA profile');
    const cn = c.subject.attrs.find(([o]) => o === OID.CN);
    return { anchors: [{ name: cn ? utf8Decode(cn[2]) : 'anchor', certDer: der, roles: '*', pins: undefined }] };
  }
  if (input && Array.isArray(input.anchors)) {
    return {
      anchors: input.anchors.map((a) => {
        const der = a.certDer ?? pemToDer(a.cert, 'CERTIFICATE');
        if (!parseAnchor(der)) throw new EvsealLiteError('invalid-input', `anchor ${a.name} fails the CA profile`);
        return { name: a.name, certDer: der, roles: a.roles, pins: a.pins };
      }),
    };
  }
  throw new EvsealLiteError('invalid-input', 'bad trust policy');
}

export function parseCrl(der) {
  const top = parseTop(der);
  const [tbs, sigAlgT, sigT, ...more] = children(top);
  if (more.length || !sigT) derFail('bad CertificateList');
  const f = children(expectTag(tbs, 0x30, 'tbsCertList'));
  let i = 0;
  if (intSmall(f[i++]) !== 1) derFail('CRL not v2');
  const innerAlgT = expectTag(f[i++], 0x30, 'signature');
  const sigAlg = parseAlgId(sigAlgT);
  if (!sigAlg || !bytesEqual(raw(sigAlgT), raw(innerAlgT))) derFail('CRL signature algorithm');
  const issuer = parseName(f[i++]);
  const thisUpdate = derTime(f[i++]);
  if (!f[i] || (f[i].tag !== 0x17 && f[i].tag !== 0x18)) derFail('nextUpdate missing');
  const nextUpdate = derTime(f[i++]);
  if (!(nextUpdate > thisUpdate)) derFail('nextUpdate not after thisUpdate');
  const revoked = new Set();
  if (f[i] && f[i].tag === 0x30) {
    const entries = children(f[i++]);
    if (entries.length === 0) derFail('empty revokedCertificates');
    for (const e of entries) {
      const parts = children(expectTag(e, 0x30, 'revoked entry'));
      if (parts.length < 2 || parts.length > 3) derFail('bad entry');
      const s = derInt(parts[0]);
      if (s[0] & 0x80 || s.every((b) => b === 0) || s.length > 20) derFail('bad revoked serial');
      derTime(parts[1]);
      if (parts[2]) {
        const list = children(expectTag(parts[2], 0x30, 'crlEntryExtensions'));
        if (list.length === 0) derFail('empty entry extensions');
        const seen = new Set();
        for (const x of list) {
          const xp = children(expectTag(x, 0x30, 'Extension'));
          const oid = derOid(xp[0]);
          if (seen.has(oid)) derFail('duplicate entry extension');
          seen.add(oid);
          if (xp.length === 3 && derBool(xp[1])) derFail('critical entry extension');
        }
      }
      const sh = hex(s);
      if (revoked.has(sh)) derFail('serial listed twice');
      revoked.add(sh);
    }
  }
  let crlNumber;
  let aki;
  if (f[i] && f[i].tag === 0xa0) {
    const exts = parseExtensions(f[i++]);
    const seen = new Set();
    for (const e of exts) {
      if (seen.has(e.oid)) derFail('duplicate CRL extension');
      seen.add(e.oid);
      if (e.oid === OID.crlNumber) {
        if (e.critical) derFail('critical cRLNumber');
        const t = readTlv(e.value, 0);
        if (t.end !== e.value.length) derFail('trailing');
        const n = derInt(t);
        if (n[0] & 0x80 || n.length > 20) derFail('bad cRLNumber');
        crlNumber = BigInt('0x' + hex(n));
      } else if (e.oid === OID.aki) aki = parseAki(e.value);
      else if (e.critical) derFail('critical CRL extension');
    }
  }
  if (i !== f.length) derFail('unexpected field in tbsCertList');
  if (crlNumber === undefined) derFail('cRLNumber missing');
  const sigBits = derBitString(sigT);
  return { der, tbs: raw(tbs), sigAlg, signature: sigBits.bytes, issuer, thisUpdate, nextUpdate, revoked, crlNumber, aki };
}

/** verify a certificate/CRL signature (DER ECDSA or raw Ed25519) with a parsed signer cert */
function verifyX509Signature(signer, sigAlg, tbs, signature) {
  if (sigAlg !== signer.spki.alg) return false; // algorithm must match the signer's key type
  try {
    if (sigAlg === 'ed25519') return signature.length === 64 && ed25519.verify(signature, tbs, signer.spki.key, { zip215: false });
    return p256.verify(signature, tbs, signer.spki.key, { prehash: true, lowS: false, format: 'der' });
  } catch {
    return false;
  }
}

/** RevocationState (A.10): addCrl(pem|der) */
export class RevocationState {
  constructor(policy) {
    this.policy = policy;
    this.byName = new Map(); // name -> { crl, highest }
    this.maxThisUpdate = 0;
  }
  addCrl(pemOrDer) {
    let crl;
    try {
      crl = parseCrl(pemToDer(pemOrDer, 'X509 CRL'));
    } catch (e) {
      fail('crl-invalid', e.message);
    }
    const issuers = this.policy.anchors.filter((a) => {
      const c = parseAnchor(a.certDer, { needCrlSign: true });
      if (!c) return false;
      if (!bytesEqual(c.subject.raw, crl.issuer.raw)) return false;
      if (c.ext.ski && crl.aki && !bytesEqual(c.ext.ski, crl.aki)) return false;
      return verifyX509Signature(c, crl.sigAlg, crl.tbs, crl.signature);
    });
    if (issuers.length === 0) fail('crl-invalid', 'issued by no anchor');
    for (const a of issuers) {
      const held = this.byName.get(a.name);
      if (held) {
        if (crl.crlNumber < held.highest) fail('crl-rollback');
        if (crl.crlNumber === held.highest && !bytesEqual(held.crl.der, crl.der)) fail('crl-invalid', 'number reused');
      }
    }
    for (const a of issuers) {
      const held = this.byName.get(a.name);
      if (!held || crl.crlNumber > held.highest) this.byName.set(a.name, { crl, highest: crl.crlNumber });
    }
    this.maxThisUpdate = Math.max(this.maxThisUpdate, crl.thisUpdate);
    return { anchor: issuers[0].name, crlNumber: crl.crlNumber, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate };
  }
}

export const certHash = (der) => sha256(der);
export const fingerprint = (der) => 'sha256:' + hex(sha256(der));

/** Appendix A.9, in order. revocation: RevocationState | 'skip' */
export function validateChain(chain, policy, revocation, now, expectedRole) {
  // 1
  if (!Array.isArray(chain) || chain.length === 0 || !chain.every((c) => c instanceof Uint8Array)) fail('malformed', 'chain');
  if (chain.length > 2) fail('chain-invalid', 'intermediates are not supported');
  // 2
  let leaf;
  try {
    leaf = parseCertificate(chain[0]);
  } catch (e) {
    fail('malformed', 'leaf: ' + e.message);
  }
  const ident = identityFromSubject(leaf.subject);
  if (!ident) fail('malformed', 'leaf subject is not an identity');
  // 3
  const bc = leaf.ext.basicConstraints;
  const ku = leaf.ext.keyUsage;
  if (
    leaf.problems.length ||
    !leaf.extensions ||
    !bc ||
    !bc.critical ||
    bc.cA ||
    !ku ||
    !ku.critical ||
    !ku.digitalSignature ||
    ku.keyCertSign ||
    ku.cRLSign ||
    !(leaf.notBefore <= leaf.notAfter)
  ) {
    fail('chain-invalid', 'leaf profile: ' + leaf.problems.join(','));
  }
  // 4
  let anchors = policy.anchors;
  if (chain.length === 2) {
    anchors = anchors.filter((a) => bytesEqual(a.certDer, chain[1]));
    if (anchors.length === 0) fail('chain-invalid', 'second certificate is not an anchor');
  }
  // 5
  const issuing = [];
  for (const a of anchors) {
    const c = parseAnchor(a.certDer);
    if (!c) continue;
    if (!bytesEqual(c.subject.raw, leaf.issuer.raw)) continue;
    if (c.ext.ski && leaf.ext.aki && !bytesEqual(c.ext.ski, leaf.ext.aki)) continue;
    if (!verifyX509Signature(c, leaf.sigAlg, leaf.tbs, leaf.signature)) continue;
    issuing.push({ a, c });
  }
  if (issuing.length === 0) fail('chain-invalid', 'no issuing anchor');
  // 6
  const timely = issuing.filter(({ c }) => c.notBefore <= now && now <= c.notAfter);
  if (timely.length === 0) {
    if (issuing.every(({ c }) => now < c.notBefore)) fail('not-yet-valid', 'anchor');
    fail('cert-expired', 'anchor');
  }
  // 7
  if (now < leaf.notBefore) fail('not-yet-valid');
  if (now > leaf.notAfter) fail('cert-expired');
  // 8
  const allowing = timely.filter(({ a }) => a.roles === '*' || (Array.isArray(a.roles) && a.roles.includes(ident.role)));
  if (allowing.length === 0) fail('anchor-not-allowed');
  // 9
  const fp = fingerprint(chain[0]);
  const pinned = allowing.filter(({ a }) => !a.pins || a.pins.includes(fp));
  if (pinned.length === 0) fail('pin-mismatch');
  // 10
  if (expectedRole !== undefined && expectedRole !== ident.role) fail('role-mismatch');
  const chosen = pinned[0]; // first in policy order passing 5..9
  // 11
  if (revocation !== 'skip') {
    const held = revocation?.byName.get(chosen.a.name);
    if (!held) fail('crl-missing');
    const c = parseAnchor(chosen.a.certDer, { needCrlSign: true });
    if (!c || !bytesEqual(c.subject.raw, held.crl.issuer.raw) || !verifyX509Signature(c, held.crl.sigAlg, held.crl.tbs, held.crl.signature)) {
      fail('crl-invalid');
    }
    if (!(now <= held.crl.nextUpdate)) fail('crl-stale');
    if (held.crl.revoked.has(leaf.serialHex)) fail('cert-revoked');
  }
  return {
    ...ident,
    certDer: chain[0],
    certHash: certHash(chain[0]),
    fingerprint: fp,
    publicKey: leaf.spki.key,
    alg: leaf.spki.alg,
    anchor: chosen.a.name,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    serialHex: leaf.serialHex,
  };
}

// ---------------------------------------------------------------------------
// role policy (§10)

export const DEFAULT_ROLE_POLICY = {
  rules: [
    { kind: 'credentials', from: ['provisioning'], to: ['charger'] },
    { kind: 'config', from: ['provisioning', 'service-tool'], to: ['charger'] },
    { kind: 'command', from: ['service-tool'], to: ['charger'] },
    { kind: 'diagnostics', from: ['charger'], to: ['service-tool'] },
    { kind: 'payment', from: ['charger'], to: ['psp'] },
    { kind: 'payment', from: ['psp'], to: ['charger'] },
    { kind: 'identity', from: ['charger'], to: ['emsp'] },
    { kind: 'identity', from: ['emsp'], to: ['charger'] },
    { kind: 'fleet-data', from: ['charger'], to: ['fleet'] },
    { kind: 'fleet-data', from: ['fleet'], to: ['charger'] },
    { kind: 'firmware-key', from: ['firmware-publisher'], to: ['charger'] },
    { kind: 'provisioning-report', from: ['charger'], to: ['provisioning'] },
  ],
};
export const isAllowed = (policy, from, kind, to) =>
  from !== 'gateway' && to !== 'gateway' && policy.rules.some((r) => r.kind === kind && r.from.includes(from) && r.to.includes(to));
const defaultKind = (policy, from, to) => policy.rules.find((r) => r.from.includes(from) && r.to.includes(to))?.kind;

// ---------------------------------------------------------------------------
// prekeys (§5) and bundles (§6)

export function prekeyKid(kemName, pub) {
  return b64uEncode(sha256(concat(u16(KEMS[kemName].id), pub)).subarray(0, 16));
}
const prekeyMessage = (ownerHash, p, pub) => lp(ownerHash, utf8(p.kid), utf8(p.kem), pub, u64(p.created), u64(p.expires));
const suitesMessage = (ownerHash, issued, suites) => lp(ownerHash, u64(issued), utf8(suites.join(',')));
const PREKEY_SKEW = 300; // §5: live when created <= now + 300 and now < expires

function exactKeys(obj, keys) {
  // §6: "MUST have exactly these keys" (any order, since bundles are not canonical JSON)
  return !!obj && typeof obj === 'object' && !Array.isArray(obj) && Object.keys(obj).length === keys.length && keys.every((k) => Object.hasOwn(obj, k));
}

/** §6 bundle validation. Returns { identity, suites, livePrekeys } or throws (reason). */
export function verifyBundle(bundleIn, { policy, revocation, now, expectedRole }) {
  const bundle = typeof bundleIn === 'string' ? JSON.parse(bundleIn) : bundleIn;
  const keys = ['v', 'chain', 'suites', 'suitesIssued', 'suitesSig', 'prekeys'];
  if (!exactKeys(bundle, keys)) fail('malformed', 'bundle keys');
  if (bundle.v !== 1 || !Array.isArray(bundle.chain) || !Array.isArray(bundle.suites) || !Array.isArray(bundle.prekeys)) fail('malformed', 'bundle types');
  if (!Number.isSafeInteger(bundle.suitesIssued) || bundle.suitesIssued < 0) fail('malformed', 'suitesIssued');
  if (new Set(bundle.suites).size !== bundle.suites.length || !bundle.suites.every((s) => typeof s === 'string')) fail('malformed', 'suites');
  let chain;
  try {
    chain = bundle.chain.map(b64uDecode);
  } catch {
    fail('malformed', 'chain b64u');
  }
  // 1.
  const identity = validateChain(chain, policy, revocation, now, expectedRole);
  // 2.
  let suitesSig;
  try {
    suitesSig = b64uDecode(bundle.suitesSig);
  } catch {
    fail('malformed', 'suitesSig');
  }
  if (!verifyWith(identity, CONTEXTS.suites, suitesMessage(identity.certHash, bundle.suitesIssued, bundle.suites), suitesSig)) {
    fail('bad-signature', 'suitesSig');
  }
  // 3.
  const prekeys = [];
  for (const p of bundle.prekeys) {
    const pk = ['kid', 'kem', 'pub', 'created', 'expires', 'sig'];
    if (!exactKeys(p, pk)) fail('malformed', 'prekey keys');
    if (!KEMS[p.kem] || typeof p.kid !== 'string') fail('malformed', 'prekey kem');
    if (!Number.isSafeInteger(p.created) || !Number.isSafeInteger(p.expires) || p.created < 0) fail('malformed', 'prekey times');
    let pub, sig;
    try {
      pub = b64uDecode(p.pub);
      sig = b64uDecode(p.sig);
    } catch {
      fail('malformed', 'prekey b64u');
    }
    if (pub.length !== KEMS[p.kem].Npk) fail('malformed', 'prekey pub length');
    if (prekeyKid(p.kem, pub) !== p.kid) fail('malformed', 'prekey kid');
    if (!(p.expires > p.created)) fail('malformed', 'prekey expires');
    if (!verifyWith(identity, CONTEXTS.prekey, prekeyMessage(identity.certHash, p, pub), sig)) fail('bad-signature', 'prekey ' + p.kid);
    prekeys.push({ ...p, pubBytes: pub });
  }
  // 4.
  const livePrekeys = prekeys.filter((p) => p.created <= now + PREKEY_SKEW && now < p.expires);
  return { identity, suites: bundle.suites, suitesIssued: bundle.suitesIssued, livePrekeys };
}

export function chooseSuite(verified, senderSuites) {
  for (const s of verified.suites) {
    if (!SUITES[s] || !senderSuites.includes(s)) continue;
    const p = pickPrekey(verified, s);
    if (p) return { suite: s, prekey: p };
  }
  return null;
}
function pickPrekey(verified, suite) {
  const kem = SUITES[suite].kem;
  const cands = verified.livePrekeys.filter((p) => p.kem === kem);
  if (!cands.length) return null;
  return cands.reduce((best, p) => (p.created > best.created ? p : best));
}

// ---------------------------------------------------------------------------
// context helpers

function nowSeconds(opts) {
  return opts?.now ?? Math.floor(Date.now() / 1000);
}
function loadTrust(opts) {
  const policy = opts.policy ?? makeTrustPolicy(opts.trust);
  let revocation = opts.revocation;
  if (revocation !== 'skip' && !(revocation instanceof RevocationState)) {
    revocation = new RevocationState(policy);
    for (const crl of opts.crls ?? []) revocation.addCrl(crl);
  }
  return { policy, revocation };
}
/** trusted time (§11): max(wall/given now, mark raised by CRL thisUpdate) */
function trustedNow(opts, revocation) {
  let now = nowSeconds(opts);
  if (opts.clock) now = Math.max(now, opts.clock.mark ?? 0);
  if (revocation instanceof RevocationState) {
    now = Math.max(now, revocation.maxThisUpdate);
    if (opts.clock) opts.clock.mark = Math.max(opts.clock.mark ?? 0, revocation.maxThisUpdate);
  }
  return now;
}

const HEADER_SCHEMA = [
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
const ENVELOPE_SCHEMA = [
  ['v', 'int'],
  ['hdr', 'string'],
  ['chain', 'string[]'],
  ['enc', 'string'],
  ['ct', 'string'],
  ['sig', 'string'],
];
const KIND_RE = /^[a-z][a-z0-9-]{0,31}$/;
// §7.1 only says "type/subtype" and §9 step 0 "match their patterns" without giving the pattern.
// First guess was RFC 6838 restricted-name (first char alphanumeric, up to 127 chars per part);
// black-box probing of the evseal CLI showed it accepts e.g. "-a/b" and refuses parts longer
// than 64 characters, so we use: each part 1..64 characters of [A-Za-z0-9!#$&^_.+-]
// (reported as a spec gap).
const CTY_RE = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/;
const envelopeInfo = (headerBytes) => concat(utf8(CONTEXTS.envelope), new Uint8Array([0]), headerBytes);

// ---------------------------------------------------------------------------
// sealing (§8)

/**
 * sender: { cert: PEM|DER, key: PKCS#8 PEM | {alg, sk}, suites?: string[] }
 * recipientBundle: bundle object or JSON text
 * plaintext: Uint8Array
 * opts: { trust, crls | revocation, policy?, now?, kind?, cty?, lifetime?, rolePolicy?,
 *         suite? (force a suite; must be in the recipient's list),
 *         msgId? (b64u or 16 bytes), randomness? (ikmE / X-Wing eseed), expectedRole? }
 */
export function sealEnvelope(sender, recipientBundle, plaintext, opts = {}) {
  const { policy, revocation } = loadTrust(opts);
  const now = trustedNow(opts, revocation);
  const rolePolicy = opts.rolePolicy ?? DEFAULT_ROLE_POLICY;
  const senderDer = sender.cert instanceof Uint8Array ? sender.cert : pemToDer(sender.cert, 'CERTIFICATE');
  const senderKey = sender.key?.sk ? sender.key : parsePrivateKey(sender.key);
  const senderCert = parseCertificate(senderDer);
  const senderIdent = identityFromSubject(senderCert.subject);
  if (!senderIdent) fail('malformed', 'sender certificate has no identity');
  // the sender's key must be the certified key
  const derivedPub = senderKey.alg === 'ed25519' ? ed25519.getPublicKey(senderKey.sk) : p256.getPublicKey(senderKey.sk, false);
  if (senderKey.alg !== senderCert.spki.alg || !bytesEqual(derivedPub, senderCert.spki.key)) fail('invalid-input', 'sender key does not match its certificate');

  // 1. validate the bundle, choose suite and prekey
  const verified = verifyBundle(recipientBundle, { policy, revocation, now, expectedRole: opts.expectedRole });
  let choice;
  if (opts.suite) {
    if (!SUITES[opts.suite] || !verified.suites.includes(opts.suite)) fail('suite-not-accepted');
    const p = pickPrekey(verified, opts.suite);
    if (!p) fail('no-live-prekey');
    choice = { suite: opts.suite, prekey: p };
  } else {
    choice = chooseSuite(verified, sender.suites ?? DEFAULT_SUITES);
    if (!choice) fail('no-common-suite');
  }
  // 2. role policy
  const kind = opts.kind ?? defaultKind(rolePolicy, senderIdent.role, verified.identity.role);
  if (!kind || !KIND_RE.test(kind) || !isAllowed(rolePolicy, senderIdent.role, kind, verified.identity.role)) fail('policy-denied');
  // 3. id and times
  const msgId =
    opts.msgId instanceof Uint8Array ? opts.msgId : typeof opts.msgId === 'string' ? b64uDecode(opts.msgId) : randomBytes(16);
  if (msgId.length !== 16) fail('invalid-input', 'msgId must be 16 bytes');
  const created = Math.floor(now);
  const lifetime = opts.lifetime ?? 86400;
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) fail('invalid-input', 'lifetime');
  const cty = opts.cty ?? 'application/octet-stream';
  if (!CTY_RE.test(cty)) fail('invalid-input', 'cty');
  // 4. header, HPKE, signature
  const headerText = canonicalJson([
    ['v', 1],
    ['suite', choice.suite],
    ['from', senderIdent.id],
    ['fromCert', b64uEncode(certHash(senderDer))],
    ['to', verified.identity.id],
    ['kid', choice.prekey.kid],
    ['id', b64uEncode(msgId)],
    ['created', created],
    ['expires', created + lifetime],
    ['kind', kind],
    ['cty', cty],
  ]);
  const headerBytes = utf8(headerText);
  const randomness = typeof opts.randomness === 'string' ? b64uDecode(opts.randomness) : opts.randomness;
  const { enc, ct } = hpke.sealBase(choice.suite, choice.prekey.pubBytes, envelopeInfo(headerBytes), new Uint8Array(0), plaintext, randomness);
  const sig = signWith(senderKey, CONTEXTS.envelope, lp(headerBytes, enc, ct));
  // 5. emit
  return canonicalJson([
    ['v', 1],
    ['hdr', b64uEncode(headerBytes)],
    ['chain', [b64uEncode(senderDer)]],
    ['enc', b64uEncode(enc)],
    ['ct', b64uEncode(ct)],
    ['sig', b64uEncode(sig)],
  ]);
}

// ---------------------------------------------------------------------------
// opening (§9)

/**
 * recipient: { id?, role?, cert? (PEM, to derive id/role), suites: [...],
 *              prekeys: [{ kid, kem, sk (b64u or bytes) }] }
 * opts: { trust, crls | revocation, policy?, now?, clock?, skew? (300), maxLifetime? (259200),
 *         rolePolicy?, replay?: Set<string> }
 * Returns { plaintext, header, sender } ; throws EvsealLiteError with .reason.
 */
export function openEnvelopeDetailed(text, recipient, opts = {}) {
  const skew = opts.skew ?? 300;
  const maxLifetime = opts.maxLifetime ?? 259200;
  const rolePolicy = opts.rolePolicy ?? DEFAULT_ROLE_POLICY;
  const replay = opts.replay ?? new Set();
  let me = { id: recipient.id, role: recipient.role };
  if (recipient.cert && (!me.id || !me.role)) {
    const c = parseCertificate(pemToDer(recipient.cert, 'CERTIFICATE'));
    me = identityFromSubject(c.subject);
  }
  const { policy, revocation } = loadTrust(opts);
  const now = trustedNow(opts, revocation);

  // 0. structure
  if (typeof text !== 'string') fail('malformed', 'not a string');
  const env = parseCanonical(text, ENVELOPE_SCHEMA);
  if (!env || env.v !== 1) fail('malformed', 'envelope');
  if (env.chain.length < 1 || env.chain.length > 4) fail('malformed', 'chain length');
  let headerBytes, chain, enc, ct, sig;
  try {
    headerBytes = b64uDecode(env.hdr);
    chain = env.chain.map(b64uDecode);
    enc = b64uDecode(env.enc);
    ct = b64uDecode(env.ct);
    sig = b64uDecode(env.sig);
  } catch {
    fail('malformed', 'b64u');
  }
  let headerText;
  try {
    headerText = utf8Decode(headerBytes);
  } catch {
    fail('malformed', 'header utf-8');
  }
  const h = parseCanonical(headerText, HEADER_SCHEMA);
  if (!h || h.v !== 1 || !SUITES[h.suite]) fail('malformed', 'header');
  let fromCert, kidBytes, idBytes;
  try {
    fromCert = b64uDecode(h.fromCert);
    kidBytes = b64uDecode(h.kid);
    idBytes = b64uDecode(h.id);
  } catch {
    fail('malformed', 'header b64u');
  }
  if (fromCert.length !== 32 || kidBytes.length !== 16 || idBytes.length !== 16) fail('malformed', 'header lengths');
  if (!KIND_RE.test(h.kind) || !CTY_RE.test(h.cty)) fail('malformed', 'kind/cty');

  // 1. addressing
  if (h.to !== me.id) fail('wrong-recipient');
  if (!recipient.suites.includes(h.suite)) fail('suite-not-accepted');
  const prekey = recipient.prekeys.find((p) => p.kid === h.kid && p.kem === SUITES[h.suite].kem);
  if (!prekey) fail('unknown-prekey');

  // 2. sender identity
  const sender = validateChain(chain, policy, revocation, now);
  if (!ctEqual(sender.certHash, fromCert)) fail('cert-hash-mismatch');
  if (sender.id !== h.from) fail('identity-mismatch');
  if (!isAllowed(rolePolicy, sender.role, h.kind, me.role)) fail('policy-denied');

  // 3. signature
  if (!verifyWith(sender, CONTEXTS.envelope, lp(headerBytes, enc, ct), sig)) fail('bad-signature');

  // 4. times
  if (!(h.expires > h.created)) fail('malformed', 'expires <= created');
  if (h.expires - h.created > maxLifetime) fail('lifetime-too-long');
  if (!(h.created <= now + skew)) fail('not-yet-valid');
  if (!(now <= h.expires + skew)) fail('expired');

  // 5. replay
  const replayKey = h.fromCert + '|' + h.id;
  if (replay.has(replayKey)) fail('replay');

  // 6. decryption
  let plaintext;
  try {
    const sk = typeof prekey.sk === 'string' ? b64uDecode(prekey.sk) : prekey.sk;
    plaintext = hpke.openBase(h.suite, enc, sk, envelopeInfo(headerBytes), new Uint8Array(0), ct);
  } catch {
    fail('decrypt-failed');
  }

  // 7. commit
  replay.add(replayKey);
  if (opts.clock) opts.clock.mark = Math.max(opts.clock.mark ?? 0, h.created);
  return { plaintext, header: h, sender };
}

export function openEnvelope(text, recipient, opts = {}) {
  return openEnvelopeDetailed(text, recipient, opts).plaintext;
}
