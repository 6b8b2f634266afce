import { webcrypto, type KeyObject } from 'node:crypto';
import { EvsealError } from '../errors.js';
import { keyAlgOf, type SigAlg } from './algorithms.js';

/**
 * The one module that loads @peculiar/x509 (used only to *generate*
 * certificates and CSRs; nothing on the verification path imports it).
 *
 * - Its crypto provider is set to node's `webcrypto` once, here.
 * - @peculiar/x509 2.x uses tsyringe, which needs a Reflect metadata
 *   polyfill (its README: "Reflect Polyfill Required"). The package
 *   `reflect-metadata` is not a dependency of evseal, so when no polyfill is
 *   loaded we install a minimal one (the five Reflect metadata functions
 *   tsyringe calls; @peculiar/x509 never reads design-time metadata) before
 *   importing the library. It is installed only if `Reflect.getMetadata` is
 *   missing, so a real polyfill loaded earlier always wins.
 * - The import is dynamic, so merely importing evseal's core never loads the
 *   library or touches `Reflect`.
 */
type X509Module = typeof import('@peculiar/x509');

let loading: Promise<X509Module> | undefined;

function installReflectMetadataShim(): void {
  const R = Reflect as unknown as Record<string, unknown>;
  if (typeof R.getMetadata === 'function') return;
  const store = new WeakMap<object, Map<unknown, Map<unknown, unknown>>>();
  const table = (target: object, prop: unknown, create: boolean): Map<unknown, unknown> | undefined => {
    let byProp = store.get(target);
    if (!byProp) {
      if (!create) return undefined;
      byProp = new Map();
      store.set(target, byProp);
    }
    let m = byProp.get(prop);
    if (!m) {
      if (!create) return undefined;
      m = new Map();
      byProp.set(prop, m);
    }
    return m;
  };
  const getMetadata = (key: unknown, target: object, prop?: unknown): unknown => {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o) as object | null) {
      const m = table(o, prop, false);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
  const fns: Record<string, unknown> = {
    defineMetadata: (key: unknown, value: unknown, target: object, prop?: unknown) => void table(target, prop, true)!.set(key, value),
    getOwnMetadata: (key: unknown, target: object, prop?: unknown) => table(target, prop, false)?.get(key),
    hasOwnMetadata: (key: unknown, target: object, prop?: unknown) => table(target, prop, false)?.has(key) ?? false,
    getMetadata,
    hasMetadata: (key: unknown, target: object, prop?: unknown) => getMetadata(key, target, prop) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object, prop?: unknown) => void table(target, prop, true)!.set(key, value),
  };
  for (const [name, fn] of Object.entries(fns)) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}

/** Loads @peculiar/x509 once, with node's webcrypto as its crypto provider. */
export function loadX509(): Promise<X509Module> {
  loading ??= (async () => {
    installReflectMetadataShim();
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
