/**
 * X-Wing hybrid KEM (ML-KEM-768 + X25519), HPKE KEM id 0x647A.
 *
 * Composition only: ML-KEM-768 from @noble/post-quantum, X25519 / SHAKE256 /
 * SHA3-256 from node:crypto.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { EvsealError } from '../errors.js';
import { wipe } from '../bytes.js';
import { openFailed, u8 } from './aead.js';
import { X25519_GROUP as X } from './groups.js';
import { KeyCache } from './key-cache.js';
import type { Kem, KemKeyPair } from './types.js';

/**
 * The X-Wing draft this implementation is pinned to.
 *
 * Key format (draft §5.1, §5.6): the private key is the 32-byte seed `sk`;
 * it is expanded with SHAKE256(sk, 96) into ML-KEM-768 KeyGen_internal(d, z)
 * = expanded[0:64] and the X25519 scalar expanded[64:96]. The public key is
 * 1216 bytes, pk_M (1184, ML-KEM-768 encapsulation key) || pk_X (32); the
 * encapsulation `enc` is 1120 bytes, ct_M (1088) || ct_X (32); the shared
 * secret is SHA3-256(ss_M || ss_X || ct_X || pk_X || "\.//^\") (32 bytes).
 * EncapsulateDerand takes a 64-byte eseed: eseed[0:32] is ML-KEM's m,
 * eseed[32:64] the ephemeral X25519 scalar. HPKE DeriveKeyPair(ikm) is
 * GenerateKeyPairDerand(SHAKE256(ikm, 32)).
 *
 * -06 is the first revision with this exact wire format *and* the 0x647A
 * codepoint, and is the revision @hpke/hybridkem-x-wing 0.7 implements.
 * @noble/post-quantum 0.7's `ml_kem768_x25519` cites -10; -07..-10 changed
 * only editorial text (SHAKE lengths in bits, ASN.1 module), and their
 * Appendix C test vectors are byte-identical to -06's. The tests cross-check
 * against both libraries and the draft's vector.
 */
export const XWING_DRAFT = 'draft-connolly-cfrg-xwing-kem-06';

const N_PK_M = 1184;
const N_CT_M = 1088;
const N_PK = N_PK_M + 32;
const N_CT = N_CT_M + 32;
/** XWingLabel = "\./" || "/^\" = 5c2e2f2f5e5c */
const XWING_LABEL = new Uint8Array([0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c]);

const shake256 = (data: Uint8Array, outLen: number): Buffer => createHash('shake256', { outputLength: outLen }).update(data).digest();

function combiner(ssM: Uint8Array, ssX: Uint8Array, ctX: Uint8Array, pkX: Uint8Array): Uint8Array {
  return u8(createHash('sha3-256').update(ssM).update(ssX).update(ctX).update(pkX).update(XWING_LABEL).digest());
}

interface Expanded {
  skM: Uint8Array;
  pkM: Uint8Array;
  privX: ReturnType<typeof X.importPriv>;
  pkX: Uint8Array;
}

/** expandDecapsulationKey(sk) of the draft (§5.2). */
function expand(sk: Uint8Array): Expanded {
  if (sk.length !== 32) throw new RangeError('X-Wing: private key must be 32 bytes');
  const e = shake256(sk, 96);
  try {
    const { publicKey: pkM, secretKey: skM } = ml_kem768.keygen(e.subarray(0, 64));
    const privX = X.importPriv(e.subarray(64, 96));
    return { skM, pkM, privX, pkX: X.publicOf(privX) };
  } finally {
    e.fill(0);
  }
}

/**
 * Expanded recipient keys, kept per key buffer as DHKEM keeps its static
 * keys (see ./key-cache.ts): expansion is an ML-KEM key generation plus an
 * X25519 import, more than the decapsulation itself.
 */
const expanded = new KeyCache(expand, (x) => wipe(x.skM));

function keyPairFromSeed(sk: Uint8Array): KemKeyPair {
  const x = expand(sk);
  x.skM.fill(0);
  const publicKey = new Uint8Array(N_PK);
  publicKey.set(x.pkM, 0);
  publicKey.set(x.pkX, N_PK_M);
  return { privateKey: sk, publicKey };
}

export const XWING: Kem = Object.freeze({
  id: 0x647a,
  name: 'X-Wing',
  nSecret: 32,
  nEnc: N_CT,
  nPk: N_PK,
  nSk: 32,

  generateKeyPair(): KemKeyPair {
    return keyPairFromSeed(u8(randomBytes(32)));
  },

  deriveKeyPair(ikm: Uint8Array): KemKeyPair {
    return keyPairFromSeed(u8(shake256(ikm, 32)));
  },

  publicKeyFromPrivate(sk: Uint8Array): Uint8Array {
    try {
      return keyPairFromSeed(sk).publicKey;
    } catch (e) {
      throw new EvsealError('ERR_CRYPTO', 'X-Wing: invalid private key', { cause: e });
    }
  },

  /** Encapsulate / EncapsulateDerand (§5.4); `randomness` is the 64-byte eseed. */
  encap(pkR: Uint8Array, randomness?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
    if (randomness !== undefined && randomness.length !== 64) throw new EvsealError('ERR_USAGE', 'X-Wing: eseed must be 64 bytes');
    const eseed = randomness ?? u8(randomBytes(64));
    let ssM: Uint8Array | undefined;
    let ssX: Uint8Array | undefined;
    try {
      if (pkR.length !== N_PK) throw new RangeError('X-Wing: public key must be 1216 bytes');
      const pkM = pkR.subarray(0, N_PK_M);
      const pkX = pkR.subarray(N_PK_M);
      // ML-KEM-768.Encaps performs the FIPS 203 §7.2 encapsulation key check and throws on failure.
      const m = ml_kem768.encapsulate(pkM, eseed.subarray(0, 32));
      ssM = m.sharedSecret;
      const privE = X.importPriv(eseed.subarray(32, 64));
      const ctX = X.publicOf(privE);
      ssX = X.dh(privE, X.importPub(pkX));
      const enc = new Uint8Array(N_CT);
      enc.set(m.cipherText, 0);
      enc.set(ctX, N_CT_M);
      return { sharedSecret: combiner(ssM, ssX, ctX, pkX), enc };
    } catch (e) {
      if (e instanceof EvsealError) throw e;
      throw new EvsealError('ERR_CRYPTO', 'X-Wing: encapsulation failed (bad key)', { cause: e });
    } finally {
      wipe(ssM, ssX);
      if (randomness === undefined) eseed.fill(0);
    }
  },

  /** Decapsulate (§5.5). Every failure is the opaque ERR_OPEN_FAILED. */
  decap(enc: Uint8Array, skR: Uint8Array): Uint8Array {
    let ssM: Uint8Array | undefined;
    let ssX: Uint8Array | undefined;
    try {
      if (enc.length !== N_CT) throw new RangeError('X-Wing: bad ciphertext length');
      const x = expanded.get(skR);
      const ctX = enc.subarray(N_CT_M);
      ssM = ml_kem768.decapsulate(enc.subarray(0, N_CT_M), x.skM);
      // An all-zero X25519 result (low-order ct_X) is rejected here, where the
      // draft would carry on; the AEAD would fail for such an enc anyway.
      ssX = X.dh(x.privX, X.importPub(ctX));
      return combiner(ssM, ssX, ctX, x.pkX);
    } catch {
      throw openFailed();
    } finally {
      wipe(ssM, ssX);
    }
  },
});
