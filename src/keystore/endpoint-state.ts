import { join } from 'node:path';
import { EvsealError } from '../core/errors.js';
import { ReplayWindow } from '../core/replay.js';
import { TrustedClock } from '../core/trusted-time.js';
import { RevocationState } from '../core/x509/index.js';
import { withLock } from './lock.js';
import type { SecretStore } from './secret-store.js';

/**
 * An endpoint's mutable verification state, persisted in ID_DIR/state.json:
 * the trusted-time high-water mark, the CRLs seen (and their highest
 * numbers), and the replay window.
 */
export interface EndpointState {
  clock: TrustedClock;
  revocation: RevocationState;
  replay: ReplayWindow;
}

export function loadState(store: SecretStore, wall: () => number): EndpointState {
  const text = store.readText('state.json');
  if (text === undefined) {
    return { clock: new TrustedClock(0, wall), revocation: RevocationState.fromJSON(null), replay: new ReplayWindow() };
  }
  let j: { trustedTime?: unknown; revocation?: unknown; replay?: unknown };
  try {
    j = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_STATE', 'state.json is not valid JSON');
  }
  if (typeof j.trustedTime !== 'number') throw new EvsealError('ERR_STATE', 'state.json: bad trustedTime');
  return {
    clock: new TrustedClock(j.trustedTime, wall),
    revocation: RevocationState.fromJSON(j.revocation),
    replay: ReplayWindow.fromJSON(j.replay),
  };
}

export function saveState(store: SecretStore, s: EndpointState): void {
  s.replay.prune(Math.floor(s.clock.now().getTime() / 1000));
  store.write('state.json', JSON.stringify({ trustedTime: s.clock.mark, revocation: s.revocation.toJSON(), replay: s.replay.toJSON() }) + '\n');
}

/**
 * Load, mutate and save the state under the endpoint's lock. The state is
 * saved even when `fn` throws: CRLs and trusted time learnt on the way to a
 * refusal must not be forgotten (the replay window only changes on success).
 */
export function withState<T>(store: SecretStore, wall: () => number, fn: (s: EndpointState) => T): T {
  return withLock(join(store.dir, 'state.lock'), () => {
    const s = loadState(store, wall);
    try {
      return fn(s);
    } finally {
      saveState(store, s);
    }
  });
}

/**
 * Load the state under the endpoint's lock for reading only: what `fn`
 * learns (CRL files loaded, trusted time observed) is not written back. For
 * checks made on every session message, which should not cost a state write
 * and fsync each; the CRL files are read again next time, and the operations
 * that accept new input (opening envelopes, accepting sessions) save.
 */
export function withStateRead<T>(store: SecretStore, wall: () => number, fn: (s: EndpointState) => T): T {
  return withLock(join(store.dir, 'state.lock'), () => fn(loadState(store, wall)));
}
