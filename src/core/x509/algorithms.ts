import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { EvsealError } from '../errors.js';
import { equalBytes } from '../bytes.js';

/**
 * The two signature algorithms of the profile. Keys are node KeyObjects.
 *
 *   ecdsa-p256: key id-ecPublicKey (1.2.840.10045.2.1) on prime256v1
 *               (1.2.840.10045.3.1.7); signatures ecdsa-with-SHA256
 *               (1.2.840.10045.4.3.2), AlgorithmIdentifier with absent
 *               parameters (RFC 5758 §3.2); the signature value is the DER
 *               Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER }.
 *   ed25519:    key and signature id-Ed25519 (1.3.101.112), absent
 *               parameters (RFC 8410 §3); the signature is the raw 64 bytes.
 */
export type SigAlg = 'ecdsa-p256' | 'ed25519';

export const SIG_ALGS: readonly SigAlg[] = ['ecdsa-p256', 'ed25519'];

/** DER of AlgorithmIdentifier { ecdsa-with-SHA256 } (no parameters). */
export const ALGID_ECDSA_SHA256 = Uint8Array.from([0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
/** DER of AlgorithmIdentifier { id-Ed25519 } (no parameters). */
export const ALGID_ED25519 = Uint8Array.from([0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);

export function isSigAlg(x: unknown): x is SigAlg {
  return x === 'ecdsa-p256' || x === 'ed25519';
}

/**
 * A new signing key pair. The keys are imported from the generated PKCS#8,
 * not the KeyObjects the key generation returns: on Node 20 a garbage
 * collection during a JWK export of such a key can destroy the finished
 * key-generation job, whose destructor takes the lock the export holds, and
 * the process deadlocks (tests/hpke/keygen-deadlock.test.ts).
 */
export function generateSigningKey(alg: SigAlg): { privateKey: KeyObject; publicKey: KeyObject } {
  let pkcs8: Buffer;
  if (alg === 'ecdsa-p256') pkcs8 = generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } }).privateKey;
  else if (alg === 'ed25519') pkcs8 = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } }).privateKey;
  else throw new EvsealError('ERR_USAGE', `unsupported signature algorithm: ${String(alg)}`);
  try {
    const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    return { privateKey, publicKey: createPublicKey(privateKey) };
  } finally {
    pkcs8.fill(0);
  }
}

/** The profile algorithm of a key (public or private), or undefined for any other key type. */
export function keyAlgOf(key: KeyObject): SigAlg | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  return undefined;
}

/** The signature AlgorithmIdentifier DER for an algorithm. */
export const algIdFor = (alg: SigAlg): Uint8Array => (alg === 'ed25519' ? ALGID_ED25519 : ALGID_ECDSA_SHA256);

/** Which profile algorithm an AlgorithmIdentifier DER denotes (exact byte match), if any. */
export function sigAlgOfAlgId(der: Uint8Array): SigAlg | undefined {
  if (equalBytes(der, ALGID_ECDSA_SHA256)) return 'ecdsa-p256';
  if (equalBytes(der, ALGID_ED25519)) return 'ed25519';
  return undefined;
}

/** Signs `data` the way X.509 structures carry signatures (DER ECDSA, raw Ed25519). */
export function signData(alg: SigAlg, privateKey: KeyObject, data: Uint8Array): Uint8Array {
  if (keyAlgOf(privateKey) !== alg) throw new EvsealError('ERR_USAGE', `signing key is not an ${alg} key`);
  const sig = alg === 'ed25519' ? sign(null, data, privateKey) : sign('sha256', data, { key: privateKey, dsaEncoding: 'der' });
  return new Uint8Array(sig);
}

/** Synchronous signature check; false (never a throw) for a wrong key type or a malformed signature. */
export function verifyData(alg: SigAlg, publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (keyAlgOf(publicKey) !== alg) return false;
  try {
    return alg === 'ed25519'
      ? verify(null, data, publicKey, signature)
      : verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

export function spkiDer(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

export function sameKey(a: KeyObject, b: KeyObject): boolean {
  return equalBytes(spkiDer(a), spkiDer(b));
}

export const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
