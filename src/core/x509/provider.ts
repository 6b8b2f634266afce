import { webcrypto, type KeyObject } from 'node:crypto';
import { EvsealError } from '../errors.js';
import { keyAlgOf, type SigAlg } from './algorithms.js';

/**
 * The one module that loads @peculiar/x509 (used only to *generate*
 * certificates and CSRs; nothing on the verification path imports it).
 *
 * - Its crypto provider is set to node's `webcrypto` once, here.
 * - @peculiar/x509 2.x uses tsyringe, which needs the Reflect metadata
 *   polyfill (`reflect-metadata`), loaded just before the library.
 * - The import is dynamic, so merely importing evseal's core never loads the
 *   library or touches `Reflect`.
 */
type X509Module = typeof import('@peculiar/x509');

let loading: Promise<X509Module> | undefined;

/** Loads @peculiar/x509 once, with node's webcrypto as its crypto provider. */
export function loadX509(): Promise<X509Module> {
  loading ??= (async () => {
    await import('reflect-metadata');
    const m = await import('@peculiar/x509');
    m.cryptoProvider.set(webcrypto as unknown as Crypto);
    return m;
  })();
  return loading;
}

export const x509Crypto = (): Crypto => webcrypto as unknown as Crypto;

/** WebCrypto parameters for the profile algorithms. */
export function webAlgs(alg: SigAlg): { importAlg: EcKeyImportParams | Algorithm; signAlg: EcdsaParams | Algorithm } {
  return alg === 'ed25519'
    ? { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } }
    : { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signAlg: { name: 'ECDSA', hash: 'SHA-256' } };
}

/** A KeyObject as a non-extractable WebCrypto key (node 20 has no KeyObject.toCryptoKey). */
export async function toCryptoKey(key: KeyObject): Promise<CryptoKey> {
  const alg = keyAlgOf(key);
  if (!alg) throw new EvsealError('ERR_USAGE', 'key is not P-256 or Ed25519');
  const { importAlg } = webAlgs(alg);
  if (key.type === 'private') {
    const der = key.export({ type: 'pkcs8', format: 'der' });
    return webcrypto.subtle.importKey('pkcs8', der, importAlg, false, ['sign']) as Promise<CryptoKey>;
  }
  const der = key.export({ type: 'spki', format: 'der' });
  return webcrypto.subtle.importKey('spki', der, importAlg, true, ['verify']) as Promise<CryptoKey>;
}
