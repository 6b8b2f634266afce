import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvsealError } from '../core/errors.js';
import { ReplayWindow } from '../core/replay.js';
import { TrustedClock } from '../core/trusted-time.js';
import { RevocationState } from '../core/x509/index.js';
import { writeFileAtomic } from './atomic-file.js';
import { withLock, withLockAsync } from './lock.js';

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

export function loadState(dir: string, wall: () => number): EndpointState {
  const path = join(dir, 'state.json');
  if (!existsSync(path)) {
    return { clock: new TrustedClock(0, wall), revocation: RevocationState.fromJSON(null), replay: new ReplayWindow() };
  }
  let j: { trustedTime?: unknown; revocation?: unknown; replay?: unknown };
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new EvsealError('ERR_STATE', `${path} is not valid JSON`);
  }
  if (typeof j.trustedTime !== 'number') throw new EvsealError('ERR_STATE', `${path}: bad trustedTime`);
  return {
    clock: new TrustedClock(j.trustedTime, wall),
    revocation: RevocationState.fromJSON(j.revocation),
    replay: ReplayWindow.fromJSON(j.replay),
  };
}

export function saveState(dir: string, s: EndpointState): void {
  s.replay.prune(Math.floor(s.clock.now().getTime() / 1000));
  writeFileAtomic(
    join(dir, 'state.json'),
    JSON.stringify({ trustedTime: s.clock.mark, revocation: s.revocation.toJSON(), replay: s.replay.toJSON() }) + '\n',
    0o600,
  );
}

/**
 * Load, mutate and save the state under the endpoint's lock. The state is
 * saved even when `fn` throws: CRLs and trusted time learnt on the way to a
 * refusal must not be forgotten (the replay window only changes on success).
 */
export function withState<T>(dir: string, wall: () => number, fn: (s: EndpointState) => T): T {
  return withLock(join(dir, 'state.lock'), () => {
    const s = loadState(dir, wall);
    try {
      return fn(s);
    } finally {
      saveState(dir, s);
    }
  });
}

export async function withStateAsync<T>(dir: string, wall: () => number, fn: (s: EndpointState) => Promise<T>): Promise<T> {
  return withLockAsync(join(dir, 'state.lock'), async () => {
    const s = loadState(dir, wall);
    try {
      return await fn(s);
    } finally {
      saveState(dir, s);
    }
  });
}
