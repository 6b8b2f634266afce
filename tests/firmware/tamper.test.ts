// Every tamper case is refused with one opaque error, the precise reason in
// the device's security log, no output file (nor temp file) left behind and
// the installed version unchanged.
import { test, before, after } from 'node:test';
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { FirmwareWorld, MODEL, noOutput } from './fixture.js';
import { packFirmware } from '../../src/firmware/pack.js';
import { unpackFirmware } from '../../src/firmware/unpack.js';
import { HEAD_SIZE, devicePrefix, encodeFullMeta, encodeHead, parseHead, parseMeta, readPackageIndex, KIND_FULL } from '../../src/firmware/package.js';
import { encodeManifest } from '../../src/firmware/manifest.js';
import { parseSlot } from '../../src/firmware/slots.js';
import { readInstalled, writeInstalled } from '../../src/firmware/installed.js';
import { signWith } from '../../src/core/signature.js';
import { certFingerprint } from '../../src/core/x509/index.js';
import { EvsealError } from '../../src/core/errors.js';
import { revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import { CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK_SIZE } from '../../src/core/chunked/cobblestone.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';

let w: FirmwareWorld;
let pub: Endpoint;
let dev: Endpoint;
let full: Buffer;
let device: Buffer;
let image: Buffer;

async function packWith(publisher: Endpoint, img: Buffer, version = '2.0'): Promise<Buffer> {
  const input = w.writeFile(`img-${randomBytes(4).toString('hex')}.bin`, img);
  const out = `${input}.evfw`;
  await packFirmware({ publisher, input, output: out, version, model: MODEL, recipients: w.bundles() });
  return readFileSync(out);
}

before(async () => {
  w = await FirmwareWorld.create(2);
  pub = w.publisherEp();
  dev = w.deviceEp(w.devices[0]!);
  image = randomBytes(3 * CHUNK_SIZE + 100);
  full = await packWith(pub, image);
  const pkg = w.writeFile('full.evfw', full);
  const index = await readPackageIndex(pkg);
  device = Buffer.concat([await devicePrefix(pkg, index, 'CP-001'), full.subarray(index.shared.offset, index.shared.offset + index.shared.length)]);
});
after(() => w.cleanup());

/** Offsets of the sections of a device package, walked as docs/firmware.md describes them. */
function deviceLayout(b: Buffer) {
  let p = HEAD_SIZE;
  const manifestLen = b.readUInt32BE(p);
  const manifest = p + 4;
  p = manifest + manifestLen;
  const sigLen = b.readUInt16BE(p);
  const signature = p + 2;
  p = signature + sigLen;
  const n = b[p++]!;
  for (let i = 0; i < n; i++) p += 4 + b.readUInt32BE(p);
  p += 4; // slot index
  const slotLen = b.readUInt16BE(p);
  const slot = p + 2;
  p = slot + slotLen;
  const proofCount = b[p]!;
  const proof = p + 1;
  const shared = proof + 32 * proofCount;
  return { manifest, manifestLen, signature, slot, slotLen, proof, proofCount, shared };
}

let n = 0;
/** Unpacks `bytes` on `ep`; expects `code` and (for opaque refusals) `reason` in the log. */
async function refused(bytes: Uint8Array, reason: RegExp | undefined, o: { ep?: Endpoint; dir?: string; code?: string } = {}): Promise<void> {
  const ep = o.ep ?? dev;
  const dir = o.dir ?? w.devices[0]!;
  const input = w.writeFile(`t-${++n}.evfw`, bytes);
  const out = w.path(`t-${n}.bin`);
  const before = readInstalled(dir);
  const logBefore = readFileSync(join(dir, 'security.log'), { flag: 'a+' }).length;
  await assert.rejects(
    unpackFirmware({ endpoint: ep, input, output: out }),
    (e: unknown) => e instanceof EvsealError && e.code === (o.code ?? 'ERR_FIRMWARE_REJECTED') && (o.code !== undefined || e.message === 'firmware package rejected'),
  );
  assert.ok(noOutput(out), 'no output and no temp file left');
  assert.deepEqual(readInstalled(dir), before);
  if (reason) {
    const log = readFileSync(join(dir, 'security.log'), 'utf8').slice(logBefore);
    assert.match(log, /"event":"firmware-refused"/);
    assert.match(log, reason);
  }
}

const flip = (b: Buffer, at: number, mask = 1): Buffer => {
  const c = Buffer.from(b);
  c[at]! ^= mask;
  return c;
};

test('the untouched packages install (control)', async () => {
  for (const bytes of [full, device]) {
    writeInstalled(w.devices[0]!, { model: MODEL, version: '1.0' });
    const input = w.writeFile(`ok-${++n}.evfw`, bytes);
    await unpackFirmware({ endpoint: dev, input, output: w.path(`ok-${n}.bin`) });
    assert.ok(readFileSync(w.path(`ok-${n}.bin`)).equals(image));
  }
  writeInstalled(w.devices[0]!, { model: MODEL, version: '1.0' });
});

test('header: any byte of the 32-byte head', async () => {
  for (const at of [0, 7, 8, 9, 10, 15, 16, 23, 24, 31]) {
    await refused(flip(full, at), /"reason":"malformed"/);
    await refused(flip(device, at), /"reason":"malformed"/);
  }
});

test('manifest and signature', async () => {
  const L = deviceLayout(device);
  const m = device.subarray(L.manifest, L.manifest + L.manifestLen).toString('utf8');
  const at = L.manifest + m.indexOf(MODEL); // a value byte: still canonical JSON, so the signature catches it
  await refused(flip(device, at, 0x02), /"reason":"bad-signature"/);
  await refused(flip(device, L.manifest + 1), /"reason":"malformed"/); // a structural byte
  await refused(flip(device, L.signature + 5), /"reason":"bad-signature"/);
  const fm = full.indexOf(Buffer.from(`"model":"${MODEL}"`));
  await refused(flip(full, fm + 10, 0x02), /"reason":"bad-signature"/);
});

test('slot and inclusion proof', async () => {
  const L = deviceLayout(device);
  assert.ok(L.proofCount >= 1);
  for (const off of [1, 10, L.slotLen - 1]) await refused(flip(device, L.slot + off), /"reason":"(proof-invalid|malformed)"/);
  await refused(flip(device, L.proof + 3), /"reason":"proof-invalid"/);
  // In a full package, another device's slot changes the root too.
  const h = parseHead(full.subarray(0, HEAD_SIZE), full.length);
  const meta = parseMeta(KIND_FULL, full.subarray(h.metaOffset));
  const other = full.indexOf(Buffer.from(meta.slots[1]!), h.metaOffset);
  await refused(flip(full, other + 40), /"reason":"proof-invalid"/);
});

test('any modified byte of the shared part (property over positions)', async () => {
  const L = deviceLayout(device);
  const sharedLen = device.length - L.shared;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: sharedLen - 1 }), fc.integer({ min: 0, max: 7 }), async (at, bit) => {
      await refused(flip(device, L.shared + at, 1 << bit), /"reason":"(decrypt-failed|digest-mismatch)"/);
    }),
    { numRuns: 25 },
  );
  // the Cobblestone header, the last chunk's tag and the sealed digest specifically
  for (const at of [0, 30, sharedLen - 49, sharedLen - 1]) await refused(flip(device, L.shared + at), /"reason":"(decrypt-failed|digest-mismatch)"/);
});

test('truncation (property over cut points) and appended data', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: device.length - 1 }), async (cut) => {
      await refused(device.subarray(0, cut), /"reason":"malformed"/);
    }),
    { numRuns: 20 },
  );
  await refused(full.subarray(0, full.length - 1), /"reason":"malformed"/);
  await refused(Buffer.concat([device, Buffer.from([0])]), /"reason":"malformed"/);
  await refused(Buffer.concat([full, randomBytes(SEALED_CHUNK_SIZE)]), /"reason":"malformed"/);
});

test('reordered chunks', async () => {
  const L = deviceLayout(device);
  const c = (i: number): Buffer => device.subarray(L.shared + HEADER_SIZE + i * SEALED_CHUNK_SIZE, L.shared + HEADER_SIZE + (i + 1) * SEALED_CHUNK_SIZE);
  const swapped = Buffer.concat([device.subarray(0, L.shared + HEADER_SIZE), c(1), c(0), device.subarray(L.shared + HEADER_SIZE + 2 * SEALED_CHUNK_SIZE)]);
  assert.equal(swapped.length, device.length);
  await refused(swapped, /"reason":"decrypt-failed","detail":"image chunk 0"/);
  const dup = Buffer.concat([device.subarray(0, L.shared + HEADER_SIZE), c(0), c(0), device.subarray(L.shared + HEADER_SIZE + 2 * SEALED_CHUNK_SIZE)]);
  await refused(dup, /"reason":"decrypt-failed","detail":"image chunk 1"/);
});

test('wrong device: not a recipient, or another device\'s package', async () => {
  const outsider = w.deviceEp(w.outsider);
  await refused(full, /"reason":"wrong-recipient"/, { ep: outsider, dir: w.outsider });
  await refused(device, /"reason":"wrong-recipient"/, { ep: w.deviceEp(w.devices[1]!), dir: w.devices[1]! });
});

/** The package re-signed by `forger` (its chain and fingerprint in the manifest): a well-formed package from the wrong signer. */
function resign(forger: Endpoint): Buffer {
  const h = parseHead(full.subarray(0, HEAD_SIZE), full.length);
  const meta = parseMeta(KIND_FULL, full.subarray(h.metaOffset));
  const manifestBytes = encodeManifest({ ...meta.manifest, publisher: certFingerprint(forger.id.certDer) });
  const signature = signWith('manifest', forger.id.privateKey, manifestBytes);
  const m = encodeFullMeta({ manifestBytes, signature, chain: forger.id.chain, slots: meta.slots.map(parseSlot) });
  return Buffer.concat([encodeHead(KIND_FULL, m.length, h.sharedLength), full.subarray(h.sharedOffset, h.sharedOffset + h.sharedLength), m]);
}

test('publisher with the wrong role, or from an anchor not allowed for firmware', async () => {
  // A charger certificate (its anchor may certify chargers) signing a manifest.
  const charger = w.endpoint(w.devices[1]!, w.publisherTrust(), []);
  await refused(resign(charger), /"reason":"role-mismatch"/);
  // A firmware-publisher certified by a CA the device trusts only for chargers.
  const rogueDir = await w.identity(w.cas.rogue, 'firmware-publisher', 'rogue-pub', { alg: 'ecdsa-p256' });
  const rogue = w.publisherEp(rogueDir);
  await refused(await packWith(rogue, image), /"reason":"anchor-not-allowed"/);
  // control: the resign helper itself produces an acceptable package when the signer is legitimate
  writeInstalled(w.devices[0]!, { model: MODEL, version: '1.0' });
  const input = w.writeFile('resigned.evfw', resign(pub));
  await unpackFirmware({ endpoint: dev, input, output: w.path('resigned.bin') });
  writeInstalled(w.devices[0]!, { model: MODEL, version: '1.0' });
});

test('revoked publisher, missing CRL (fails closed), and the explicit opt-out', async () => {
  const dir = await w.identity(w.cas.maker, 'firmware-publisher', 'fw-pub-2', { alg: 'ecdsa-p256' });
  const bytes = await packWith(w.publisherEp(dir), image);
  // a device that has never seen the maker's CRL (CRLs are remembered in state.json)
  const fresh = await w.identity(w.cas.op, 'charger', 'CP-FRESH', { alg: 'ecdsa-p256' });
  writeInstalled(fresh, { model: MODEL, version: '1.0' });
  await refused(bytes, /"reason":"crl-missing"/, { ep: w.deviceEp(fresh, { crls: [join(w.cas.op, 'crl.pem')] }), dir: fresh });
  // Waiving revocation explicitly (another device: this one has seen the maker CRL by now)
  writeInstalled(w.devices[1]!, { model: MODEL, version: '1.0' });
  const waived = w.endpoint(w.devices[1]!, w.deviceTrust(), [join(w.cas.op, 'crl.pem')], { revocationCheck: false });
  await unpackFirmware({ endpoint: waived, input: w.writeFile('waived.evfw', bytes), output: w.path('waived.bin') });
  await revokeWithCaDir(w.cas.maker, readFileSync(join(dir, 'cert.pem'), 'utf8'), { now: new Date(w.now - 1000) });
  await refused(bytes, /"reason":"cert-revoked"/, { ep: w.deviceEp(w.devices[0]!) });
});

test('refusals stay opaque: one code and message for every cause', async () => {
  const log = [w.devices[0]!, w.path('id-CP-FRESH')].map((d) => readFileSync(join(d, 'security.log'), 'utf8')).join('');
  const reasons = new Set([...log.matchAll(/"event":"firmware-refused","reason":"([a-z-]+)"/g)].map((m) => m[1]));
  for (const r of ['malformed', 'bad-signature', 'proof-invalid', 'decrypt-failed', 'role-mismatch', 'anchor-not-allowed', 'crl-missing', 'cert-revoked']) assert.ok(reasons.has(r), r);
});
