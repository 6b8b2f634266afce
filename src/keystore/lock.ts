import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { EvsealError } from '../core/errors.js';

/**
 * An exclusive lock file (O_CREAT|O_EXCL). Two processes updating the same
 * endpoint state (replay window, trusted time) would otherwise lose each
 * other's writes. A busy lock is waited for (up to `LOCK_WAIT_MS`); a lock
 * left by a dead process is taken over.
 */
export const LOCK_WAIT_MS = 10_000;
export function withLock<T>(path: string, fn: () => T): T {
  acquire(path);
  try {
    return fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

export async function withLockAsync<T>(path: string, fn: () => Promise<T>): Promise<T> {
  acquire(path);
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

function acquire(path: string): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released between our open and read
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && !alive(holder)) {
      try {
        unlinkSync(path);
      } catch {
        /* someone else took it over first */
      }
      continue;
    }
    if (Date.now() >= deadline) throw new EvsealError('ERR_STATE', `${path} is locked by process ${holder}`);
    Atomics.wait(pause, 0, 0, 20); // a synchronous 20 ms sleep
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
