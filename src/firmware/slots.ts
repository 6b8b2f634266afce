import type { KeyObject } from 'node:crypto';
import { concat, utf8 } from '../core/bytes.js';
import { EvsealError } from '../core/errors.js';
import { isValidId } from '../core/roles.js';
import { seal as hpkeSeal, suite as hpkeSuite } from '../core/hpke/index.js';
import { leafHash } from '../core/merkle.js';

/**
 * A key slot: the package's content key sealed with HPKE (RFC 9180, base
 * mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to one device's
 * long-lived certified key. Binary form, also the Merkle leaf data:
 *
 *   u8 len(deviceId) || deviceId (ASCII) || certHash (32) || enc (65) || ct (48)
 *
 * HPKE info = "evseal/v1 firmware key slot" || 0x00 || manifest core hash (32)
 *             || certHash (32) || deviceId; the AAD is empty.
 */
export const SLOT_SUITE = hpkeSuite(0x0010, 0x0001, 0x0002);
const ENC = 65;
const CT = 48;
const INFO_CONTEXT = utf8('evseal/v1 firmware key slot\0');

export interface Slot {
  deviceId: string;
  certHash: Uint8Array;
  enc: Uint8Array;
  ct: Uint8Array;
}

export function slotInfo(coreHash: Uint8Array, certHash: Uint8Array, deviceId: string): Uint8Array {
  return concat(INFO_CONTEXT, coreHash, certHash, utf8(deviceId));
}

export function sealSlot(o: { deviceId: string; certHash: Uint8Array; publicKey: Uint8Array; coreHash: Uint8Array; contentKey: Uint8Array }): Slot {
  const { enc, ct } = hpkeSeal(SLOT_SUITE, o.publicKey, slotInfo(o.coreHash, o.certHash, o.deviceId), undefined, o.contentKey);
  return { deviceId: o.deviceId, certHash: o.certHash, enc, ct };
}

export function encodeSlot(s: Slot): Uint8Array {
  const id = utf8(s.deviceId);
  return concat(new Uint8Array([id.length]), id, s.certHash, s.enc, s.ct);
}

export function parseSlot(b: Uint8Array): Slot {
  const n = b[0] ?? 0;
  if (b.length !== 1 + n + 32 + ENC + CT) throw new EvsealError('ERR_INVALID_INPUT', 'firmware key slot: bad length');
  const deviceId = Buffer.from(b.subarray(1, 1 + n)).toString('latin1');
  if (!isValidId(deviceId)) throw new EvsealError('ERR_INVALID_INPUT', 'firmware key slot: bad device id');
  let p = 1 + n;
  const take = (k: number): Uint8Array => b.slice(p, (p += k));
  return { deviceId, certHash: take(32), enc: take(ENC), ct: take(CT) };
}

/** The SEC1 uncompressed point of a P-256 certificate key, the DHKEM(P-256) public key form. */
export function p256PublicKey(key: KeyObject, who: string): Uint8Array {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new EvsealError('ERR_USAGE', `${who}: firmware key slots need an ECDSA P-256 identity key (Ed25519 identities cannot receive firmware)`);
  }
  const j = key.export({ format: 'jwk' });
  return new Uint8Array(Buffer.concat([Buffer.from([4]), Buffer.from(j.x as string, 'base64url'), Buffer.from(j.y as string, 'base64url')]));
}

export const slotLeaf = (encoded: Uint8Array): Uint8Array => leafHash(encoded);
