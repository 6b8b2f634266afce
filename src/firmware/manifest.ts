import { createHash } from 'node:crypto';
import { encodeCanonical, parseCanonical, type Shape } from '../core/canonical-json.js';
import { utf8 } from '../core/bytes.js';
import { EvsealError } from '../core/errors.js';
import { checkModel, parseVersion } from './version.js';

/**
 * The signed manifest (canonical JSON, keys in this order; signed with the
 * "evseal/v1 firmware manifest" signature context). Everything in it is
 * public: a CDN holding the package sees these fields and the size.
 */
export const SUITE = 'Cobblestone-256+DHKEM-P256-HKDF-SHA256-AES256GCM';

export interface Manifest {
  v: 1;
  suite: typeof SUITE;
  packageId: string; // 32 hex characters (16 random bytes)
  model: string;
  version: string;
  created: number; // seconds since the epoch
  size: number; // plaintext image bytes
  ciphertext: string; // 'sha256:' + hex over the shared part (Cobblestone ciphertext || sealed digest)
  publisher: string; // 'sha256:' + hex of the publisher's leaf certificate
  slots: number; // key slots in the tree
  slotsRoot: string; // hex RFC 9162 Merkle root over the slots
}

const CORE_SHAPE: Shape = [
  ['v', 'int'],
  ['suite', 'string'],
  ['packageId', 'string'],
  ['model', 'string'],
  ['version', 'string'],
  ['created', 'int'],
  ['size', 'int'],
  ['ciphertext', 'string'],
  ['publisher', 'string'],
  ['slots', 'int'],
];
const SHAPE: Shape = [...CORE_SHAPE, ['slotsRoot', 'string']];

const HEX32 = /^[0-9a-f]{32}$/;
const SHA256_REF = /^sha256:[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export function encodeManifest(m: Manifest): Uint8Array {
  return utf8(encodeCanonical(m as unknown as Record<string, unknown>, SHAPE));
}

/**
 * The hash every key slot's HPKE info binds: SHA-256 of the canonical
 * manifest without `slotsRoot` (the root is computed over the slots, so the
 * slots cannot commit to it; everything else, including the ciphertext
 * digest and the slot count, they do commit to).
 */
export function manifestCoreHash(m: Omit<Manifest, 'slotsRoot'>): Uint8Array {
  return new Uint8Array(createHash('sha256').update(encodeCanonical(m as unknown as Record<string, unknown>, CORE_SHAPE)).digest());
}

export function parseManifest(bytes: Uint8Array): Manifest {
  const o = parseCanonical(Buffer.from(bytes).toString('utf8'), SHAPE, 'firmware manifest');
  const bad = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `firmware manifest: ${why}`);
  };
  if (o.v !== 1) bad('unsupported version');
  if (o.suite !== SUITE) bad('unsupported suite');
  if (!HEX32.test(o.packageId as string)) bad('packageId');
  checkModel(o.model);
  parseVersion(o.version);
  if (!SHA256_REF.test(o.ciphertext as string)) bad('ciphertext digest');
  if (!SHA256_REF.test(o.publisher as string)) bad('publisher');
  if ((o.slots as number) < 1) bad('no key slots');
  if (!HEX64.test(o.slotsRoot as string)) bad('slotsRoot');
  return o as unknown as Manifest;
}
