import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { EvsealError } from '../core/errors.js';

/**
 * An exclusive lock file (O_CREAT|O_EXCL). Two processes updating the same
 * endpoint state (replay window, trusted time) would otherwise lose each
 * other's writes. A lock left by a dead process is taken over.
 */
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
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readFileSync(path, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
        unlinkSync(path);
        continue;
      }
      throw new EvsealError('ERR_STATE', `endpoint state is locked by process ${holder} (${path})`);
    }
  }
  throw new EvsealError('ERR_STATE', `could not take lock ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
