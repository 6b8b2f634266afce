import { timingSafeEqual } from 'node:crypto';

const enc = new TextEncoder();
export const utf8 = (s: string): Uint8Array => enc.encode(s);
const dec = new TextDecoder('utf-8', { fatal: true });
export const fromUtf8 = (b: Uint8Array): string => dec.decode(b);

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Big-endian unsigned integer of `len` bytes (HPKE's I2OSP). */
export function i2osp(n: number | bigint, len: number): Uint8Array {
  let v = BigInt(n);
  if (v < 0n) throw new RangeError('i2osp: negative');
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new RangeError('i2osp: value too large');
  return out;
}

const EMPTY = new Uint8Array(0);

/** Length-prefixed (u32 big-endian) concatenation: unambiguous framing for signed data. */
export function lp(...parts: Uint8Array[]): Uint8Array {
  return prefixedLp(EMPTY, parts);
}

/**
 * prefix || lp(...parts) in one allocation (signed messages are framed this
 * way on every envelope, so the copy and the length encoding are done once).
 * For transient inputs (what is signed or verified): the buffer is not
 * zero-filled, since every byte is written, and a small one comes from
 * Node's shared pool rather than its own allocation.
 */
export function prefixedLp(prefix: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  let n = prefix.length;
  for (const p of parts) {
    if (p.length > 0xffffffff) throw new RangeError('lp: part too large');
    n += 4 + p.length;
  }
  const b = Buffer.allocUnsafe(n);
  const out = new Uint8Array(b.buffer, b.byteOffset, n);
  out.set(prefix, 0);
  let o = prefix.length;
  for (const p of parts) {
    const l = p.length;
    out[o] = l >>> 24;
    out[o + 1] = (l >>> 16) & 0xff;
    out[o + 2] = (l >>> 8) & 0xff;
    out[o + 3] = l & 0xff;
    out.set(p, o + 4);
    o += 4 + l;
  }
  return out;
}

/** Constant-time equality; unequal lengths return false without comparing contents. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * Best-effort zeroization. JavaScript gives no guarantee that copies made by
 * the engine or by OpenSSL are wiped; this only clears the buffer we own.
 */
export function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) b?.fill(0);
}

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export function fromHex(h: string): Uint8Array {
  if (h.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(h)) throw new RangeError('invalid hex');
  return new Uint8Array(Buffer.from(h, 'hex'));
}
