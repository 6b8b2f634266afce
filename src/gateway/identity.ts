import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64u, fromB64u } from '../core/base64url.js';
import { EvsealError } from '../core/errors.js';
import { generateSigningKey } from '../core/x509/algorithms.js';
import { writeFileAtomic } from '../keystore/atomic-file.js';

/**
 * The gateway's own signing key. It signs answers to challenges and audit
 * tree heads (receipts), nothing else: the gateway never holds a content key
 * or a CA key. Ed25519, created on first start in DATA/gateway-key.pem.
 */
export interface GatewayKey {
  id: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** base64url of the SPKI DER: how endpoints and auditors pin this key */
  publicKeyB64u: string;
}

export const DEFAULT_GATEWAY_ID = 'gateway';
export const GATEWAY_KEY_FILE = 'gateway-key.pem';

export function loadOrCreateGatewayKey(dataDir: string, id: string = DEFAULT_GATEWAY_ID): GatewayKey {
  if (id === '') throw new EvsealError('ERR_USAGE', 'the gateway id must not be empty');
  const path = join(dataDir, GATEWAY_KEY_FILE);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new EvsealError('ERR_STATE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    pem = generateSigningKey('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    // temp file + rename: a crash never leaves a torn key that would stop the next start
    writeFileAtomic(path, pem, 0o600);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new EvsealError('ERR_STATE', `${path} is not a private key`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new EvsealError('ERR_STATE', `${path} is not an Ed25519 key`);
  const publicKey = createPublicKey(privateKey);
  return { id, privateKey, publicKey, publicKeyB64u: b64u(publicKey.export({ type: 'spki', format: 'der' })) };
}

/** A gateway public key given as base64url SPKI DER (pinned by an endpoint or an auditor). */
export function publicKeyFromB64u(s: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(fromB64u(s, what)), format: 'der', type: 'spki' });
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', `${what}: not a base64url SPKI public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new EvsealError('ERR_INVALID_INPUT', `${what}: not an Ed25519 key`);
  // OpenSSL ignores trailing bytes after the DER; one key, one accepted string
  if (b64u(key.export({ type: 'spki', format: 'der' })) !== s) throw new EvsealError('ERR_INVALID_INPUT', `${what}: not a canonical SPKI encoding`);
  return key;
}
