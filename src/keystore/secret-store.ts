import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { b64u, fromB64u } from '../core/base64url.js';
import { concat, equalBytes, utf8 } from '../core/bytes.js';
import { checkShape } from '../core/canonical-json.js';
import { EvsealError } from '../core/errors.js';
import { writeFileAtomic } from './atomic-file.js';
import { readJsonFile } from './json-file.js';

/**
 * Encryption at rest for an endpoint's secret files (identity key, private
 * prekeys, verification state, sessions).
 *
 * ID_DIR/keystore.json holds the public parameters: the scrypt salt and cost,
 * and the data key wrapped (AES-256-GCM) under the key scrypt derives from
 * the passphrase. Each secret file is then `MAGIC || nonce (12) ||
 * AES-256-GCM(data key, nonce, content, aad = the file's path inside ID_DIR)`,
 * so files cannot be swapped for one another. A changed passphrase only
 * rewraps the data key.
 *
 * Plaintext storage exists for development and must be chosen explicitly
 * (`--plaintext-keystore`); keystore.json then says so.
 */
const MAGIC = utf8('EVSEAL-KS1\n');
const WRAP_AAD = utf8('evseal/v1 keystore data key');
export const SCRYPT = { N: 1 << 15, r: 8, p: 1 } as const;
const SCRYPT_MAXMEM = 128 * 1024 * 1024;

interface KeystoreFile {
  v: 1;
  mode: 'scrypt' | 'plaintext';
  salt?: string;
  N?: number;
  r?: number;
  p?: number;
  wrapped?: string;
}

/** Derived key-encryption keys, cached per process by (salt, passphrase digest): scrypt is deliberately slow. */
const kekCache = new Map<string, Uint8Array>();

function kek(passphrase: string, salt: Uint8Array, N: number, r: number, p: number): Uint8Array {
  const id = b64u(createHash('sha256').update(salt).update(utf8(`${N}/${r}/${p}/`)).update(utf8(passphrase)).digest());
  let k = kekCache.get(id);
  if (!k) {
    k = new Uint8Array(scryptSync(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: SCRYPT_MAXMEM }));
    kekCache.set(id, k);
  }
  return k;
}

function gcmSeal(key: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const body = concat(c.update(pt), c.final());
  return concat(nonce, body, c.getAuthTag());
}

function gcmOpen(key: Uint8Array, aad: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (data.length < 28) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(data.subarray(data.length - 16));
    return concat(d.update(data.subarray(12, data.length - 16)), d.final());
  } catch {
    return undefined;
  }
}

export function passphraseFromEnv(): string | undefined {
  const p = process.env.EVSEAL_PASSPHRASE;
  return p === undefined || p === '' ? undefined : p;
}

export class SecretStore {
  readonly dir: string;
  readonly #dataKey: Uint8Array | undefined; // undefined in plaintext mode

  private constructor(dir: string, dataKey: Uint8Array | undefined) {
    this.dir = dir;
    this.#dataKey = dataKey;
  }

  get encrypted(): boolean {
    return this.#dataKey !== undefined;
  }

  /** Creates ID_DIR/keystore.json: encrypted under `passphrase`, or plaintext when explicitly asked. */
  static create(dir: string, o: { passphrase?: string; plaintext?: boolean }): SecretStore {
    const path = join(dir, 'keystore.json');
    if (existsSync(path)) throw new EvsealError('ERR_USAGE', `${dir} already has a keystore`);
    if (o.plaintext) {
      writeFileAtomic(path, JSON.stringify({ v: 1, mode: 'plaintext' }) + '\n', 0o644);
      return new SecretStore(dir, undefined);
    }
    if (!o.passphrase) {
      throw new EvsealError('ERR_USAGE', 'a passphrase is needed to encrypt the keystore (set EVSEAL_PASSPHRASE, or pass --plaintext-keystore for an unencrypted development keystore)');
    }
    const salt = new Uint8Array(randomBytes(16));
    const dataKey = new Uint8Array(randomBytes(32));
    const wrapped = gcmSeal(kek(o.passphrase, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p), WRAP_AAD, dataKey);
    const file: KeystoreFile = { v: 1, mode: 'scrypt', salt: b64u(salt), ...SCRYPT, wrapped: b64u(wrapped) };
    writeFileAtomic(path, JSON.stringify(file) + '\n', 0o644);
    return new SecretStore(dir, dataKey);
  }

  static open(dir: string, passphrase: string | undefined): SecretStore {
    const o = checkShape(
      readJsonFile(join(dir, 'keystore.json'), `${dir} has no keystore.json`),
      [['v', 'int'], ['mode', 'string'], ['salt', 'string', true], ['N', 'int', true], ['r', 'int', true], ['p', 'int', true], ['wrapped', 'string', true]],
      'keystore.json',
    ) as unknown as KeystoreFile;
    if (o.mode === 'plaintext') return new SecretStore(dir, undefined);
    if (o.mode !== 'scrypt' || !o.salt || !o.N || !o.r || !o.p || !o.wrapped) throw new EvsealError('ERR_STATE', 'keystore.json: bad parameters');
    if (!passphrase) throw new EvsealError('ERR_USAGE', `${dir} is encrypted: set EVSEAL_PASSPHRASE or enter the passphrase`);
    const dataKey = gcmOpen(kek(passphrase, fromB64u(o.salt), o.N, o.r, o.p), WRAP_AAD, fromB64u(o.wrapped));
    if (!dataKey) throw new EvsealError('ERR_USAGE', 'wrong passphrase for this keystore');
    return new SecretStore(dir, dataKey);
  }

  /** Reads a secret file (path relative to ID_DIR); undefined when it does not exist. */
  read(rel: string): Uint8Array | undefined {
    const path = join(this.dir, rel);
    if (!existsSync(path)) return undefined;
    const raw = new Uint8Array(readFileSync(path));
    if (!this.#dataKey) return raw;
    if (raw.length < MAGIC.length || !equalBytes(raw.subarray(0, MAGIC.length), MAGIC)) {
      throw new EvsealError('ERR_STATE', `${rel} is not an encrypted keystore file`);
    }
    const pt = gcmOpen(this.#dataKey, utf8(rel), raw.subarray(MAGIC.length));
    if (!pt) throw new EvsealError('ERR_STATE', `${rel} failed authentication (corrupted, or moved from another file)`);
    return pt;
  }

  readText(rel: string): string | undefined {
    const b = this.read(rel);
    return b === undefined ? undefined : Buffer.from(b).toString('utf8');
  }

  /** Writes atomically (temp + fsync + rename), encrypted unless the keystore is plaintext. */
  write(rel: string, data: Uint8Array | string): void {
    const pt = typeof data === 'string' ? utf8(data) : data;
    const out = this.#dataKey ? concat(MAGIC, gcmSeal(this.#dataKey, utf8(rel), pt)) : pt;
    const path = join(this.dir, rel);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileAtomic(path, out, 0o600);
  }

  delete(rel: string): void {
    try {
      unlinkSync(join(this.dir, rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
