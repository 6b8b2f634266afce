import { open as openFile, stat, type FileHandle } from 'node:fs/promises';
import { EvsealError } from '../core/errors.js';
import { readLeafCertificate } from '../core/x509/index.js';
import { MerkleTree, inclusionPath } from '../core/merkle.js';
import { parseManifest, type Manifest } from './manifest.js';
import { encodeSlot, parseSlot, slotLeaf, type Slot } from './slots.js';

/**
 * The package file (docs/firmware.md has the full description):
 *
 *   head (32) = "EVSEALFW" || u8 format 1 || u8 kind ('F' full, 'D' device) || 6 zero bytes
 *               || u64 metaLength || u64 sharedLength
 *   full package:   head || shared || meta(all slots)
 *   device package: head || meta(one slot + inclusion proof) || shared
 *
 *   meta = u32 len || manifest || u16 len || signature || u8 n || n × (u32 len || DER)
 *          || full:   u32 slotCount || slotCount × (u16 len || slot)
 *          || device: u32 slotIndex || u16 len || slot || u8 n || n × 32-byte proof hashes
 *   shared = Cobblestone-256 ciphertext of the image || sealed digest (48)
 *
 * The shared part is byte-identical for every device, so a CDN caches one
 * copy; a device fetches its own prefix (head + meta, a few KiB whatever the
 * fleet size) and the shared part.
 */
export const MAGIC = Buffer.from('EVSEALFW', 'ascii');
export const HEAD_SIZE = 32;
export const KIND_FULL = 0x46;
export const KIND_DEVICE = 0x44;
/** Bounds on what a reader allocates before anything is verified. */
export const MAX_FULL_META = 256 * 1024 * 1024;
export const MAX_DEVICE_META = 1024 * 1024;
/** AES-256-GCM of the 32-byte plaintext digest. */
export const SEALED_DIGEST_SIZE = 48;

export interface PackageIndex {
  packageId: string;
  version: string;
  model: string;
  /** the publisher's id (certificate CN), read without validation: for display and routing only */
  publisher: string;
  deviceIds: string[];
  /** byte range of the part every device downloads unchanged (ciphertext etc.) */
  shared: { offset: number; length: number };
}

export interface Head {
  kind: typeof KIND_FULL | typeof KIND_DEVICE;
  metaLength: number;
  sharedLength: number;
  metaOffset: number;
  sharedOffset: number;
}

export interface Meta {
  manifestBytes: Uint8Array;
  manifest: Manifest;
  signature: Uint8Array;
  chain: Uint8Array[];
  /** full: every slot; device: the one slot */
  slots: Uint8Array[];
  /** device packages only */
  slotIndex?: number;
  proof?: Uint8Array[];
}

const malformed = (why: string): EvsealError => new EvsealError('ERR_INVALID_INPUT', `firmware package: ${why}`);

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64BE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('length out of range');
  return Number(v);
}

export function encodeHead(kind: Head['kind'], metaLength: number, sharedLength: number): Buffer {
  const h = Buffer.alloc(HEAD_SIZE);
  MAGIC.copy(h, 0);
  h[8] = 1;
  h[9] = kind;
  h.writeBigUInt64BE(BigInt(metaLength), 16);
  h.writeBigUInt64BE(BigInt(sharedLength), 24);
  return h;
}

/** Parses a head and checks that the lengths add up to exactly `fileSize` (no truncation, nothing appended). */
export function parseHead(h: Buffer, fileSize: number): Head {
  if (h.length < HEAD_SIZE || !h.subarray(0, 8).equals(MAGIC)) throw malformed('not an evseal firmware package');
  if (h[8] !== 1) throw malformed('unsupported format version');
  const kind = h[9];
  if (kind !== KIND_FULL && kind !== KIND_DEVICE) throw malformed('unknown package kind');
  if (!h.subarray(10, 16).equals(Buffer.alloc(6))) throw malformed('reserved bytes set');
  const metaLength = u64(h, 16);
  const sharedLength = u64(h, 24);
  if (metaLength > (kind === KIND_FULL ? MAX_FULL_META : MAX_DEVICE_META)) throw malformed('metadata too large');
  if (HEAD_SIZE + metaLength + sharedLength !== fileSize) throw malformed('length does not match the file (truncated or extended)');
  return kind === KIND_FULL
    ? { kind, metaLength, sharedLength, sharedOffset: HEAD_SIZE, metaOffset: HEAD_SIZE + sharedLength }
    : { kind, metaLength, sharedLength, metaOffset: HEAD_SIZE, sharedOffset: HEAD_SIZE + metaLength };
}

class Writer {
  readonly parts: Buffer[] = [];
  u8(n: number): void {
    this.parts.push(Buffer.from([n]));
  }
  u16(n: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    this.parts.push(b);
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.parts.push(b);
  }
  bytes(b: Uint8Array): void {
    this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  #p = 0;
  constructor(readonly b: Buffer) {}
  #need(n: number): void {
    if (this.#p + n > this.b.length) throw malformed('metadata truncated');
  }
  u8(): number {
    this.#need(1);
    return this.b[this.#p++]!;
  }
  u16(): number {
    this.#need(2);
    const v = this.b.readUInt16BE(this.#p);
    this.#p += 2;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.b.readUInt32BE(this.#p);
    this.#p += 4;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.#need(n);
    return new Uint8Array(this.b.subarray(this.#p, (this.#p += n)));
  }
  end(): void {
    if (this.#p !== this.b.length) throw malformed('trailing bytes in metadata');
  }
}

function encodeCommon(w: Writer, m: { manifestBytes: Uint8Array; signature: Uint8Array; chain: Uint8Array[] }): void {
  w.u32(m.manifestBytes.length);
  w.bytes(m.manifestBytes);
  w.u16(m.signature.length);
  w.bytes(m.signature);
  w.u8(m.chain.length);
  for (const c of m.chain) {
    w.u32(c.length);
    w.bytes(c);
  }
}

export function encodeFullMeta(m: { manifestBytes: Uint8Array; signature: Uint8Array; chain: Uint8Array[]; slots: Slot[] }): Buffer {
  const w = new Writer();
  encodeCommon(w, m);
  w.u32(m.slots.length);
  for (const s of m.slots) {
    const e = encodeSlot(s);
    w.u16(e.length);
    w.bytes(e);
  }
  return w.done();
}

export function encodeDeviceMeta(m: { manifestBytes: Uint8Array; signature: Uint8Array; chain: Uint8Array[]; slot: Uint8Array; slotIndex: number; proof: Uint8Array[] }): Buffer {
  const w = new Writer();
  encodeCommon(w, m);
  w.u32(m.slotIndex);
  w.u16(m.slot.length);
  w.bytes(m.slot);
  w.u8(m.proof.length);
  for (const h of m.proof) w.bytes(h);
  return w.done();
}

/** Structure only: nothing here is verified (see unpack.ts for the order of checks). */
export function parseMeta(kind: Head['kind'], b: Buffer): Meta {
  const r = new Reader(b);
  const manifestBytes = r.bytes(r.u32());
  const manifest = parseManifest(manifestBytes);
  const signature = r.bytes(r.u16());
  const n = r.u8();
  if (n < 1 || n > 2) throw malformed('chain must hold 1 or 2 certificates');
  const chain: Uint8Array[] = [];
  for (let i = 0; i < n; i++) chain.push(r.bytes(r.u32()));
  if (kind === KIND_FULL) {
    const count = r.u32();
    if (count !== manifest.slots) throw malformed('slot count differs from the manifest');
    const slots: Uint8Array[] = [];
    for (let i = 0; i < count; i++) slots.push(r.bytes(r.u16()));
    r.end();
    return { manifestBytes, manifest, signature, chain, slots };
  }
  const slotIndex = r.u32();
  const slot = r.bytes(r.u16());
  const p = r.u8();
  const proof: Uint8Array[] = [];
  for (let i = 0; i < p; i++) proof.push(r.bytes(32));
  r.end();
  return { manifestBytes, manifest, signature, chain, slots: [slot], slotIndex, proof };
}

/** Reads head and metadata of a package file (constant memory in the image size). */
export async function readHeadAndMeta(path: string): Promise<{ head: Head; meta: Meta }> {
  const fh = await openFile(path, 'r');
  try {
    return await readHeadAndMetaFrom(fh);
  } finally {
    await fh.close();
  }
}

export async function readHeadAndMetaFrom(fh: FileHandle): Promise<{ head: Head; meta: Meta }> {
  const size = (await fh.stat()).size;
  if (size < HEAD_SIZE) throw malformed('too short');
  const headBytes = Buffer.alloc(HEAD_SIZE);
  await readFully(fh, headBytes, 0);
  const head = parseHead(headBytes, size);
  const mb = Buffer.alloc(head.metaLength);
  await readFully(fh, mb, head.metaOffset);
  return { head, meta: parseMeta(head.kind, mb) };
}

export async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw malformed('file shorter than its head says');
    done += bytesRead;
  }
}

function publisherId(chain: Uint8Array[]): string {
  try {
    return readLeafCertificate(chain[0]!).id;
  } catch {
    throw malformed('publisher certificate unreadable');
  }
}

export async function readPackageIndex(path: string): Promise<PackageIndex> {
  const { head, meta } = await readHeadAndMeta(path);
  return packageIndex(head, meta);
}

/** The public index of an already parsed package. */
export function packageIndex(head: Head, meta: Meta): PackageIndex {
  return {
    packageId: meta.manifest.packageId,
    version: meta.manifest.version,
    model: meta.manifest.model,
    publisher: publisherId(meta.chain),
    deviceIds: meta.slots.map((s) => parseSlot(s).deviceId),
    shared: { offset: head.sharedOffset, length: head.sharedLength },
  };
}

/** One parsed full package kept with its Merkle tree, so serving many devices reads the slots once. */
let cached: { key: string; meta: Meta; tree: MerkleTree; byId: Map<string, number> } | undefined;

/**
 * The per-device prefix: public header + signed manifest + chain + this
 * device's slot + inclusion proof. devicePrefix ‖ bytes[shared.offset,
 * shared.offset+shared.length) of the package file is a complete "device
 * package" that unpackFirmware accepts.
 */
export async function devicePrefix(path: string, index: PackageIndex, deviceId: string): Promise<Uint8Array> {
  const st = await stat(path);
  const key = `${path}|${st.size}|${st.mtimeMs}|${index.packageId}`;
  if (cached?.key !== key) {
    const { head, meta } = await readHeadAndMeta(path);
    if (head.kind !== KIND_FULL) throw new EvsealError('ERR_USAGE', 'device prefixes are cut from a full package');
    if (meta.manifest.packageId !== index.packageId) throw new EvsealError('ERR_USAGE', 'index is for another package');
    const tree = new MerkleTree();
    const byId = new Map<string, number>();
    meta.slots.forEach((s, i) => {
      tree.append(slotLeaf(s));
      byId.set(parseSlot(s).deviceId, i);
    });
    cached = { key, meta, tree, byId };
  }
  const { meta, tree, byId } = cached;
  const i = byId.get(deviceId);
  if (i === undefined) throw new EvsealError('ERR_NOT_FOUND', `no key slot for device ${deviceId} in package ${index.packageId}`);
  const proof = inclusionPath(i, tree.size, (level, idx) => tree.node(level, idx)!);
  const m = encodeDeviceMeta({ ...meta, slot: meta.slots[i]!, slotIndex: i, proof });
  return new Uint8Array(Buffer.concat([encodeHead(KIND_DEVICE, m.length, index.shared.length), m]));
}
