/**
 * DHKEM (RFC 9180 §4.1) over the node:crypto groups in ./groups.ts, with
 * HKDF-SHA256 as the KEM's KDF for both DHKEM(P-256) and DHKEM(X25519).
 *
 * Private keys are serialized exactly as RFC 9180 Appendix A prints them
 * (X25519 scalars unclamped: the X25519 function clamps when it uses them;
 * P-256 as a 32-byte big-endian scalar).
 *
 * Static keys (the recipient's key pair, an auth-mode sender's) are imported
 * once per key buffer, not once per message (see ./key-cache.ts): importing
 * an X25519 private key costs a scalar multiplication, as much as the DH
 * itself. Ephemeral keys and `enc` are never cached.
 */
import { EvsealError } from '../errors.js';
import { wipe } from '../bytes.js';
import { openFailed } from './aead.js';
import { P256_GROUP, X25519_GROUP, p256ScalarInRange, type DhGroup } from './groups.js';
import { EMPTY, expandParts, expandPrefix, extractPrefix, hmacParts } from './kdf.js';
import { KeyCache } from './key-cache.js';
import type { Kem, KemId, KemKeyPair } from './types.js';

const ONE = new Uint8Array([1]);

type SkDerivation = 'x25519' | 'p256';

class DhKem<Priv, Pub> implements Kem {
  readonly id: KemId;
  readonly name: string;
  readonly nSecret = 32;
  readonly nEnc: number;
  readonly nPk: number;
  readonly nSk: number;
  readonly #g: DhGroup<Priv, Pub>;
  readonly #derivation: SkDerivation;
  // Label prefixes with suite_id = "KEM" || I2OSP(kem_id, 2), computed once.
  readonly #pEaePrk: Uint8Array;
  readonly #pSharedSecret: Uint8Array;
  readonly #pDkpPrk: Uint8Array;
  readonly #pSk: Uint8Array;
  /** A static private key's handle and serialized public key; get throws if the key is invalid. */
  readonly #privs: KeyCache<{ priv: Priv; pk: Uint8Array }>;
  /** A static public key's handle; get throws if the key is invalid. */
  readonly #pubs: KeyCache<Pub>;

  constructor(id: KemId, name: string, g: DhGroup<Priv, Pub>, derivation: SkDerivation) {
    this.id = id;
    this.name = name;
    this.nEnc = g.nPk;
    this.nPk = g.nPk;
    this.nSk = g.nSk;
    this.#g = g;
    this.#derivation = derivation;
    this.#privs = new KeyCache((sk) => {
      const priv = g.importPriv(sk);
      return { priv, pk: g.publicOf(priv) };
    });
    this.#pubs = new KeyCache((pk) => g.importPub(pk));
    const sid = new Uint8Array([0x4b, 0x45, 0x4d, id >>> 8, id & 0xff]); // "KEM" || I2OSP(id, 2)
    this.#pEaePrk = extractPrefix(sid, 'eae_prk');
    this.#pSharedSecret = expandPrefix(sid, 'shared_secret', 32);
    this.#pDkpPrk = extractPrefix(sid, 'dkp_prk');
    this.#pSk = expandPrefix(sid, derivation === 'x25519' ? 'sk' : 'candidate', g.nSk);
    Object.freeze(this);
  }

  /** RFC 9180 §7.1.3 DeriveKeyPair, private half. */
  #deriveSk(ikm: Uint8Array): Uint8Array {
    const dkpPrk = hmacParts('sha256', EMPTY, this.#pDkpPrk, ikm);
    try {
      if (this.#derivation === 'x25519') return expandParts('sha256', 32, dkpPrk, this.#pSk, EMPTY, this.nSk);
      const counter = new Uint8Array(1);
      for (let i = 0; i < 256; i++) {
        counter[0] = i;
        const sk = expandParts('sha256', 32, dkpPrk, this.#pSk, counter, this.nSk);
        // bitmask 0xFF for P-256: nothing to clear in sk[0].
        if (p256ScalarInRange(sk)) return sk;
        sk.fill(0);
      }
      throw new EvsealError('ERR_CRYPTO', `${this.name}: DeriveKeyPair failed`);
    } finally {
      dkpPrk.fill(0);
    }
  }

  /** ExtractAndExpand(dh, kem_context) with kem_context = enc || pkR [|| pkS]. */
  #extractAndExpand(dh1: Uint8Array, dh2: Uint8Array, enc: Uint8Array, pkR: Uint8Array, pkS: Uint8Array): Uint8Array {
    const eaePrk = hmacParts('sha256', EMPTY, this.#pEaePrk, dh1, dh2);
    try {
      // Nsecret == Nh, so HKDF-Expand is the single block T(1).
      const ss = hmacParts('sha256', eaePrk, this.#pSharedSecret, enc, pkR, pkS, ONE);
      return new Uint8Array(ss.buffer, ss.byteOffset, ss.byteLength);
    } finally {
      eaePrk.fill(0);
    }
  }

  generateKeyPair(): KemKeyPair {
    const sk = this.#g.randomSk();
    return { privateKey: sk, publicKey: this.#g.publicOf(this.#g.importPriv(sk)) };
  }

  deriveKeyPair(ikm: Uint8Array): KemKeyPair {
    const sk = this.#deriveSk(ikm);
    return { privateKey: sk, publicKey: this.#g.publicOf(this.#g.importPriv(sk)) };
  }

  publicKeyFromPrivate(sk: Uint8Array): Uint8Array {
    try {
      return this.#g.publicOf(this.#g.importPriv(sk));
    } catch (e) {
      throw new EvsealError('ERR_CRYPTO', `${this.name}: invalid private key`, { cause: e });
    }
  }

  #encap(pkR: Uint8Array, skS: Uint8Array | undefined, randomness: Uint8Array | undefined): { sharedSecret: Uint8Array; enc: Uint8Array } {
    const g = this.#g;
    let skE: Uint8Array | undefined;
    let dh1: Uint8Array | undefined;
    let dh2: Uint8Array | undefined;
    try {
      const pubR = this.#pubs.get(pkR);
      let privE: Priv;
      let enc: Uint8Array;
      if (randomness !== undefined) {
        skE = this.#deriveSk(randomness);
        privE = g.importPriv(skE);
        enc = g.publicOf(privE);
      } else {
        ({ priv: privE, pk: enc } = g.ephemeral());
      }
      dh1 = g.dh(privE, pubR);
      let pkS = EMPTY;
      if (skS !== undefined) {
        const s = this.#privs.get(skS);
        pkS = s.pk;
        dh2 = g.dh(s.priv, pubR);
      }
      return { sharedSecret: this.#extractAndExpand(dh1, dh2 ?? EMPTY, enc, pkR, pkS), enc };
    } catch (e) {
      if (e instanceof EvsealError) throw e;
      throw new EvsealError('ERR_CRYPTO', `${this.name}: encapsulation failed (bad key)`, { cause: e });
    } finally {
      wipe(skE, dh1, dh2);
    }
  }

  #decap(enc: Uint8Array, skR: Uint8Array, pkS: Uint8Array | undefined): Uint8Array {
    const g = this.#g;
    let dh1: Uint8Array | undefined;
    let dh2: Uint8Array | undefined;
    try {
      const pubE = g.importPub(enc);
      const r = this.#privs.get(skR);
      dh1 = g.dh(r.priv, pubE);
      if (pkS !== undefined) dh2 = g.dh(r.priv, this.#pubs.get(pkS));
      return this.#extractAndExpand(dh1, dh2 ?? EMPTY, enc, r.pk, pkS ?? EMPTY);
    } catch {
      throw openFailed();
    } finally {
      wipe(dh1, dh2);
    }
  }

  encap(pkR: Uint8Array, randomness?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
    return this.#encap(pkR, undefined, randomness);
  }

  decap(enc: Uint8Array, skR: Uint8Array): Uint8Array {
    return this.#decap(enc, skR, undefined);
  }

  authEncap(pkR: Uint8Array, skS: Uint8Array, randomness?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
    return this.#encap(pkR, skS, randomness);
  }

  authDecap(enc: Uint8Array, skR: Uint8Array, pkS: Uint8Array): Uint8Array {
    return this.#decap(enc, skR, pkS);
  }
}

export const DHKEM_P256: Kem = new DhKem(0x0010, 'DHKEM(P-256, HKDF-SHA256)', P256_GROUP, 'p256');
export const DHKEM_X25519: Kem = new DhKem(0x0020, 'DHKEM(X25519, HKDF-SHA256)', X25519_GROUP, 'x25519');
