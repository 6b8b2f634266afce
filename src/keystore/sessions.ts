import { EvsealError } from '../core/errors.js';
import { Ratchet } from '../core/session/ratchet.js';
import { checkShape } from '../core/canonical-json.js';
import type { SecretStore } from './secret-store.js';

/**
 * Persisted session state: sessions/HANDLE.json in the encrypted keystore,
 * one file per session, written atomically. The handle is
 * `fromCert.id` of the handshake (the initiator's certificate hash and the
 * session id, both base64url), so a peer cannot pick an id that collides
 * with another peer's session.
 *
 * Ordering rule: a ratchet that has produced a ciphertext is saved before the
 * ciphertext is handed to the caller, so a crash can never make the endpoint
 * reuse a message key; a received message's plaintext is released only after
 * the advanced state is saved.
 */
export interface SessionRecord {
  v: 1;
  side: 'initiator' | 'responder';
  /** cert: the peer's leaf certificate (DER, base64url), validated again at every session message */
  peer: { id: string; role: string; operator: string; fingerprint: string; cert: string };
  kind: string;
  created: number;
  ratchet: unknown;
}

const HANDLE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/;

export function sessionHandle(fromCert: string, id: string): string {
  const h = `${fromCert}.${id}`;
  if (!HANDLE.test(h)) throw new EvsealError('ERR_INVALID_INPUT', 'bad session handle');
  return h;
}

const rel = (handle: string) => {
  if (!HANDLE.test(handle)) throw new EvsealError('ERR_USAGE', `not a session handle: ${JSON.stringify(handle)}`);
  return `sessions/${handle}.json`;
};

export function saveSession(store: SecretStore, handle: string, rec: SessionRecord): void {
  store.write(rel(handle), JSON.stringify(rec) + '\n');
}

export function sessionExists(store: SecretStore, handle: string): boolean {
  return store.read(rel(handle)) !== undefined;
}

export function loadSession(store: SecretStore, handle: string): { rec: SessionRecord; ratchet: Ratchet } {
  const text = store.readText(rel(handle));
  if (text === undefined) throw new EvsealError('ERR_NOT_FOUND', `no session ${handle}`);
  const o = checkShape(
    JSON.parse(text),
    [['v', 'int'], ['side', 'string'], ['peer', 'object'], ['kind', 'string'], ['created', 'int'], ['ratchet', 'object']],
    'session record',
  ) as unknown as SessionRecord;
  return { rec: o, ratchet: Ratchet.fromJSON(o.ratchet) };
}
