import { open as openFile, type FileHandle } from 'node:fs/promises';
import { equalBytes, fromHex } from '../core/bytes.js';
import { EvsealError, VerificationFailure, type SecurityReason, type SecuritySink } from '../core/errors.js';
import { MerkleTree, verifyInclusion } from '../core/merkle.js';
import { verifyWith } from '../core/signature.js';
import { ciphertextLength } from '../core/chunked/cobblestone.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { securityLog } from '../keystore/security-log.js';
import { openDigest } from './content.js';
import { ImageRejected, decryptImage } from './stream.js';
import { readInstalled, writeInstalled } from './installed.js';
import { KIND_FULL, SEALED_DIGEST_SIZE, readHeadAndMetaFrom, type Head, type Meta } from './package.js';
import { p256PublicKey, parseSlot, slotInfo, slotLeaf, type Slot } from './slots.js';
import { manifestCoreHash, type Manifest } from './manifest.js';
import { createTempOutput } from './temp-output.js';
import { compareVersions } from './version.js';

export interface UnpackResult {
  version: string;
  model: string;
  size: number;
  /** the verified publisher's id (certificate CN) */
  publisher: string;
}

/** Every verification or decryption failure, whatever the cause: the cause goes to ID_DIR/security.log. */
class Rejected extends Error {
  constructor(
    readonly reason: SecurityReason,
    readonly detail: string,
  ) {
    super(reason);
  }
}

const rejectedError = (): EvsealError => new EvsealError('ERR_FIRMWARE_REJECTED', 'firmware package rejected');

/**
 * Checks everything that can be checked before decrypting, in this order:
 * structure and lengths, the publisher's chain (trust policy anchor allowed
 * for firmware-publisher, role, validity, CRL), that the manifest names that
 * certificate, the manifest signature, this device's key slot and its
 * inclusion in the signed slot root, the ciphertext length for the signed
 * size. Then model and version against the installed state.
 */
async function verifyPackage(ep: Endpoint, fh: FileHandle, installed: { model: string; version: string }, allowDowngrade: boolean): Promise<{ head: Head; meta: Meta; slot: Slot; publisher: string }> {
  let head: Head;
  let meta: Meta;
  try {
    ({ head, meta } = await readHeadAndMetaFrom(fh));
  } catch (e) {
    if (e instanceof EvsealError && e.code === 'ERR_INVALID_INPUT') throw new Rejected('malformed', e.message);
    throw e;
  }
  const m = meta.manifest;
  let publisher;
  try {
    publisher = ep.verifyChains([meta.chain], 'firmware-publisher')[0]!;
  } catch (e) {
    if (e instanceof VerificationFailure) throw new Rejected(e.reason, `publisher: ${e.detail ?? e.reason}`);
    throw e;
  }
  if (publisher.fingerprint !== m.publisher) throw new Rejected('identity-mismatch', 'manifest names another publisher certificate');
  if (!verifyWith('manifest', publisher.publicKey, meta.manifestBytes, meta.signature)) throw new Rejected('bad-signature', 'manifest signature');

  const me = ep.id;
  const root = fromHex(m.slotsRoot);
  let slot: Slot | undefined;
  if (head.kind === KIND_FULL) {
    const tree = new MerkleTree(30);
    for (const s of meta.slots) {
      tree.append(slotLeaf(s));
      if (slot === undefined) {
        const p = parseSlotOrReject(s);
        if (equalBytes(p.certHash, me.certHash)) slot = p;
      }
    }
    if (!equalBytes(tree.root(), root)) throw new Rejected('proof-invalid', 'slots do not hash to the signed root');
  } else {
    const s = meta.slots[0]!;
    if (!verifyInclusion(meta.slotIndex!, m.slots, slotLeaf(s), meta.proof!, root)) throw new Rejected('proof-invalid', 'slot inclusion proof');
    const p = parseSlotOrReject(s);
    if (equalBytes(p.certHash, me.certHash)) slot = p;
  }
  if (slot === undefined) throw new Rejected('wrong-recipient', 'no key slot for this device certificate');
  if (slot.deviceId !== me.file.id) throw new Rejected('wrong-recipient', 'key slot names another device id');
  if (head.sharedLength !== ciphertextLength(m.size) + SEALED_DIGEST_SIZE) throw new Rejected('malformed', 'ciphertext length does not match the signed size');

  // opened only to record a refusal: a successful unpack leaves no log handle open
  const log: SecuritySink = (e) => securityLog(me.dir).sink(e);
  if (m.model !== installed.model) {
    log({ event: 'firmware-refused', reason: 'policy-denied', detail: `model ${m.model}, device is ${installed.model}`, packageId: m.packageId });
    throw new EvsealError('ERR_FIRMWARE_MODEL', `firmware is for model ${m.model}, this device is ${installed.model}`);
  }
  if (!allowDowngrade && compareVersions(m.version, installed.version) <= 0) {
    log({ event: 'firmware-refused', reason: 'policy-denied', detail: `version ${m.version} not newer than ${installed.version}`, packageId: m.packageId });
    throw new EvsealError('ERR_FIRMWARE_ROLLBACK', `firmware ${m.version} is not newer than the installed ${installed.version} (--allow-downgrade to force)`);
  }
  return { head, meta, slot, publisher: publisher.id };
}

function parseSlotOrReject(b: Uint8Array): ReturnType<typeof parseSlot> {
  try {
    return parseSlot(b);
  } catch (e) {
    throw new Rejected('malformed', (e as Error).message);
  }
}

/**
 * Verifies, decrypts and installs a package (full or device package): the
 * image goes to a temporary file beside `output` and is renamed into place
 * only after the final chunk, the ciphertext digest and the plaintext digest
 * all check; any failure deletes it. The installed version is then recorded.
 */
export async function unpackFirmware(o: {
  endpoint: Endpoint;
  input: string;
  output: string;
  allowDowngrade?: boolean;
  onProgress?: (done: number, total: number) => void;
}): Promise<UnpackResult> {
  const ep = o.endpoint;
  const me = ep.id;
  p256PublicKey(me.privateKey, `identity ${me.file.id}`); // refuses Ed25519 identities up front
  const installed = readInstalled(me.dir);
  if (installed === undefined) throw new EvsealError('ERR_STATE', `no installed firmware record in ${me.dir} (run evseal firmware device-init)`);
  let fh: FileHandle;
  try {
    fh = await openFile(o.input, 'r');
  } catch (e) {
    throw new EvsealError('ERR_NOT_FOUND', `cannot read ${o.input}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let packageId: string | undefined;
  try {
    const v = await verifyPackage(ep, fh, installed, o.allowDowngrade === true);
    const m = v.meta.manifest;
    packageId = m.packageId;
    const slot = v.slot;
    let contentKey: Uint8Array;
    try {
      contentKey = ep.openKeySlot(slot.enc, slot.ct, slotInfo(manifestCoreHash(m), slot.certHash, slot.deviceId));
    } catch (e) {
      if (e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED') throw new Rejected('decrypt-failed', 'key slot');
      throw e;
    }
    try {
      await decryptTo(fh, v.head, m, contentKey, o.output, o.onProgress);
    } finally {
      contentKey.fill(0);
    }
    writeInstalled(me.dir, { model: m.model, version: m.version });
    return { version: m.version, model: m.model, size: m.size, publisher: v.publisher };
  } catch (e) {
    if (e instanceof Rejected) {
      securityLog(me.dir).sink({ event: 'firmware-refused', reason: e.reason, detail: e.detail, ...(packageId ? { packageId } : {}) });
      throw rejectedError();
    }
    throw e;
  } finally {
    await fh.close();
  }
}

/** Decrypts into a temporary output and keeps it only if every digest checks. */
async function decryptTo(fh: FileHandle, head: Head, m: Manifest, contentKey: Uint8Array, output: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  const out = await createTempOutput(output, 0o644);
  try {
    const pid = fromHex(m.packageId);
    let r;
    try {
      r = await decryptImage({ input: fh, offset: head.sharedOffset, size: m.size, output: out.fh, contentKey, packageId: pid, onProgress });
    } catch (e) {
      if (e instanceof ImageRejected) throw new Rejected('decrypt-failed', e.detail);
      throw e;
    }
    let digest: Uint8Array;
    try {
      digest = openDigest(contentKey, pid, r.sealedDigest);
    } catch {
      throw new Rejected('decrypt-failed', 'sealed digest');
    }
    if (!equalBytes(r.ciphertextDigest, fromHex(m.ciphertext.slice('sha256:'.length)))) throw new Rejected('digest-mismatch', 'ciphertext digest');
    if (!equalBytes(r.plaintextDigest, digest)) throw new Rejected('digest-mismatch', 'plaintext digest');
    await out.commit({ durable: true });
  } catch (e) {
    await out.abort();
    throw e;
  }
}
