import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { readPackageIndex, type PackageIndex } from '../firmware/package.js';
import type { GatewayClient } from './gateway-client.js';

const CHUNK = 256 * 1024;
/** Chunks in flight: enough to keep a loopback or LAN link busy, with memory bounded by CHUNK × WINDOW. */
const WINDOW = 4;

export interface UploadResult {
  index: PackageIndex;
  size: number;
  /** bytes sent now (0 when the gateway already held the whole package) */
  sent: number;
  /** bytes the gateway already held from an earlier, interrupted upload */
  resumedAt: number;
}

/**
 * Uploads a firmware package to the gateway over the endpoint connection,
 * in chunks, resuming after the bytes the gateway already holds, then has
 * it check the whole file's SHA-256. The file is read once, streaming: the
 * digest covers the held bytes too, so a resumed upload is checked end to
 * end. Idempotent by package id: a package the gateway holds is not sent again.
 */
export async function uploadFirmware(gc: GatewayClient, path: string, onProgress?: (done: number, total: number) => void): Promise<UploadResult> {
  const index = await readPackageIndex(path);
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const start = await gc.firmwareHeld(index.packageId);
    if (start.complete) {
      onProgress?.(size, size);
      return { index, size, sent: 0, resumedAt: size };
    }
    const resumedAt = Math.min(start.held, size);
    const hash = createHash('sha256');
    const inFlight: Promise<unknown>[] = [];
    let acked = resumedAt;
    onProgress?.(acked, size);
    for (let pos = 0; pos < size; ) {
      const n = Math.min(pos < resumedAt ? Math.min(CHUNK, resumedAt - pos) : CHUNK, size - pos);
      const buf = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
        if (bytesRead === 0) throw new Error(`${path} shrank while it was uploaded`);
        got += bytesRead;
      }
      hash.update(buf);
      if (pos >= resumedAt) {
        if (inFlight.length >= WINDOW) await inFlight.shift();
        const sent = gc.firmwareChunk(index.packageId, size, pos, buf).then(() => {
          acked += n;
          onProgress?.(acked, size);
        });
        sent.catch(() => undefined); // awaited below, in order; a failure must not count as unhandled meanwhile
        inFlight.push(sent);
      }
      pos += n;
    }
    await Promise.all(inFlight);
    await gc.firmwareCommit(index.packageId, hash.digest());
    return { index, size, sent: size - resumedAt, resumedAt };
  } finally {
    await fh.close();
  }
}
