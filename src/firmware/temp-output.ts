import { open as openFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { openSync, closeSync, fsyncSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * An output written to a temporary file beside its final name and renamed
 * into place only by `commit`: a crash or a refusal never leaves a partial
 * file under the final name, and `abort` deletes the temporary one.
 */
export interface TempOutput {
  fh: FileHandle;
  /**
   * Renames the file into place. `durable` first fsyncs the data and
   * afterwards the directory, so that after a crash the new name holds the
   * whole file (unpack needs this before it records the installed version).
   */
  commit(o: { durable: boolean }): Promise<void>;
  abort(): Promise<void>;
}

export async function createTempOutput(path: string, mode: number): Promise<TempOutput> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`);
  const fh = await openFile(tmp, 'wx', mode);
  let open = true;
  const close = async (): Promise<void> => {
    if (open) {
      open = false;
      await fh.close();
    }
  };
  return {
    fh,
    async commit({ durable }) {
      if (durable) await fh.sync();
      await close();
      await rename(tmp, path);
      if (!durable) return;
      const d = openSync(dirname(path), 'r');
      try {
        fsyncSync(d);
      } finally {
        closeSync(d);
      }
    },
    async abort() {
      await close().catch(() => {});
      await unlink(tmp).catch(() => {});
    },
  };
}
