import { randomBytes } from 'node:crypto';
import { open as openFile } from 'node:fs/promises';
import { parseBundle } from '../core/bundle.js';
import { EvsealError, VerificationFailure } from '../core/errors.js';
import { MerkleTree } from '../core/merkle.js';
import { signWith } from '../core/signature.js';
import { toHex } from '../core/bytes.js';
import { pemToDer, certFingerprint } from '../core/x509/index.js';
import { ciphertextLength } from '../core/chunked/cobblestone.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { CONTENT_KEY_SIZE } from './content.js';
import { encryptImage } from './stream.js';
import { SUITE, encodeManifest, manifestCoreHash, type Manifest } from './manifest.js';
import { HEAD_SIZE, KIND_FULL, SEALED_DIGEST_SIZE, encodeFullMeta, encodeHead } from './package.js';
import { encodeSlot, p256PublicKey, sealSlot, slotLeaf, type Slot } from './slots.js';
import { createTempOutput } from './temp-output.js';
import { checkModel, parseVersion } from './version.js';

export interface Recipient {
  deviceId: string;
  certHash: Uint8Array;
  publicKey: Uint8Array;
}

/** Validates each recipient's certificate under the publisher's trust policy and CRLs. */
function resolveRecipients(publisher: Endpoint, recipients: { bundleJson?: string; certPem?: string }[]): Recipient[] {
  const chains = recipients.map((r, i) => {
    if ((r.bundleJson === undefined) === (r.certPem === undefined)) throw new EvsealError('ERR_USAGE', `recipient ${i}: give exactly one of bundleJson or certPem`);
    return r.bundleJson !== undefined ? parseBundle(r.bundleJson).chain : [pemToDer(r.certPem!, 'CERTIFICATE')];
  });
  let ids;
  try {
    ids = publisher.verifyChains(chains);
  } catch (e) {
    if (e instanceof VerificationFailure) throw new EvsealError('ERR_CERT_REJECTED', `recipient certificate refused: ${e.reason}${e.detail ? ` (${e.detail})` : ''}`);
    throw e;
  }
  const seenIds = new Set<string>();
  const seenCerts = new Set<string>();
  return ids.map((id) => {
    if (seenIds.has(id.id) || seenCerts.has(id.fingerprint)) throw new EvsealError('ERR_USAGE', `recipient ${id.id} given twice`);
    seenIds.add(id.id);
    seenCerts.add(id.fingerprint);
    return { deviceId: id.id, certHash: id.certHash, publicKey: p256PublicKey(id.publicKey, `recipient ${id.id}`) };
  });
}

/** Seals the content key to every recipient and builds the slot tree. */
export function wrapKeys(contentKey: Uint8Array, coreHash: Uint8Array, recipients: Recipient[]): { slots: Slot[]; root: Uint8Array } {
  const tree = new MerkleTree(30); // only the root is needed here: keep no inner nodes
  const slots = recipients.map((r) => {
    const s = sealSlot({ ...r, coreHash, contentKey });
    tree.append(slotLeaf(encodeSlot(s)));
    return s;
  });
  return { slots, root: tree.root() };
}

export async function packFirmware(o: {
  publisher: Endpoint;
  input: string;
  output: string;
  version: string;
  model: string;
  recipients: { bundleJson?: string; certPem?: string }[];
  onProgress?: (done: number, total: number) => void;
}): Promise<{ packageId: string; size: number; slots: number }> {
  parseVersion(o.version);
  checkModel(o.model);
  const me = o.publisher.id;
  if (me.file.role !== 'firmware-publisher') throw new EvsealError('ERR_USAGE', `--as must be a firmware-publisher identity (this one is ${me.file.role})`);
  if (o.recipients.length === 0) throw new EvsealError('ERR_USAGE', 'no recipients: give at least one --to or a --fleet file');
  const recipients = resolveRecipients(o.publisher, o.recipients);

  let inFh;
  try {
    inFh = await openFile(o.input, 'r');
  } catch (e) {
    throw new EvsealError('ERR_NOT_FOUND', `cannot read ${o.input}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const out = await createTempOutput(o.output, 0o644);
  const contentKey = randomBytes(CONTENT_KEY_SIZE);
  try {
    const size = (await inFh.stat()).size;
    const pid = randomBytes(16);
    const sharedLength = ciphertextLength(size) + SEALED_DIGEST_SIZE;
    // shared part (Cobblestone header, chunks, sealed digest) first; the head is written last.
    const ctDigest = await encryptImage({ input: inFh, size, output: out.fh, offset: HEAD_SIZE, contentKey, packageId: pid, onProgress: o.onProgress });

    const core: Omit<Manifest, 'slotsRoot'> = {
      v: 1,
      suite: SUITE,
      packageId: toHex(pid),
      model: o.model,
      version: o.version,
      created: Math.floor(Date.now() / 1000),
      size,
      ciphertext: 'sha256:' + toHex(ctDigest),
      publisher: certFingerprint(me.certDer),
      slots: recipients.length,
    };
    const { slots, root } = wrapKeys(contentKey, manifestCoreHash(core), recipients);
    const manifestBytes = encodeManifest({ ...core, slotsRoot: toHex(root) });
    const signature = signWith('manifest', me.privateKey, manifestBytes);
    const meta = encodeFullMeta({ manifestBytes, signature, chain: me.chain, slots });
    await out.fh.write(meta, 0, meta.length, HEAD_SIZE + sharedLength);
    await out.fh.write(encodeHead(KIND_FULL, meta.length, sharedLength), 0, HEAD_SIZE, 0);
    // Not fsynced: after a crash a publisher re-runs pack; a torn package is refused by every device.
    await out.commit({ durable: false });
    return { packageId: core.packageId, size, slots: slots.length };
  } catch (e) {
    await out.abort();
    throw e;
  } finally {
    contentKey.fill(0);
    await inFh.close();
  }
}
