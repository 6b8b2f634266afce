// RFC 9180 Appendix A test vectors, read in place from ../shared/vectors/hpke/.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EvsealError } from '../../src/core/errors.js';
import { setSequenceForTesting } from '../../src/core/hpke/context.js';
import { open, seal, setupRecipient, setupSender, suite, type Kem, type Suite } from '../../src/core/hpke/index.js';

const VECTORS = fileURLToPath(new URL('../../../shared/vectors/hpke/rfc9180-appendix-a.json', import.meta.url));

interface Vector {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  ikmE: string;
  ikmR: string;
  ikmS?: string;
  pkEm: string;
  skEm: string;
  pkRm: string;
  skRm: string;
  pkSm?: string;
  skSm?: string;
  psk?: string;
  psk_id?: string;
  enc: string;
  shared_secret: string;
  key_schedule_context: string;
  secret: string;
  key: string;
  base_nonce: string;
  exporter_secret: string;
  encryptions: { aad: string; ct: string; nonce: string; pt: string }[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}

const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

const SUPPORTED_KEMS = new Set([0x0010, 0x0020]);
// What the file holds (verified when this test was written): 28 vectors = 7 suites x 4 modes.
// Exercised: X25519/SHA-256 with AES-128-GCM, ChaCha20-Poly1305 and export-only (12), P-256/SHA-256
// with AES-128-GCM and ChaCha20-Poly1305 (8), P-256/SHA-512 with AES-128-GCM (4) = 24.
// Skipped: P-521/SHA-512/AES-256-GCM (4): DHKEM(P-521) is not implemented.
const EXPECTED_TOTAL = 28;
const EXPECTED_EXERCISED = 24;
const EXPECTED_ENCRYPTIONS = 120; // 6 per vector, none for the 4 export-only ones
const EXPECTED_EXPORTS = 72; // 3 per vector

function modeOpts(v: Vector): { psk?: Uint8Array; pskId?: Uint8Array } {
  return v.psk !== undefined ? { psk: h(v.psk), pskId: h(v.psk_id!) } : {};
}

function checkKem(kem: Kem, v: Vector): void {
  const e = kem.deriveKeyPair(h(v.ikmE));
  assert.equal(hex(e.privateKey), v.skEm, 'skEm');
  assert.equal(hex(e.publicKey), v.pkEm, 'pkEm');
  const r = kem.deriveKeyPair(h(v.ikmR));
  assert.equal(hex(r.privateKey), v.skRm, 'skRm');
  assert.equal(hex(r.publicKey), v.pkRm, 'pkRm');
  assert.equal(hex(kem.publicKeyFromPrivate(h(v.skRm))), v.pkRm);
  assert.equal(hex(kem.publicKeyFromPrivate(h(v.skEm))), v.pkEm);
  const auth = v.mode === 2 || v.mode === 3;
  if (auth) {
    const s = kem.deriveKeyPair(h(v.ikmS!));
    assert.equal(hex(s.privateKey), v.skSm, 'skSm');
    assert.equal(hex(s.publicKey), v.pkSm, 'pkSm');
    const ea = kem.authEncap!(h(v.pkRm), h(v.skSm!), h(v.ikmE));
    assert.equal(hex(ea.enc), v.enc, 'enc');
    assert.equal(hex(ea.sharedSecret), v.shared_secret, 'shared_secret (AuthEncap)');
    assert.equal(hex(kem.authDecap!(h(v.enc), h(v.skRm), h(v.pkSm!))), v.shared_secret, 'shared_secret (AuthDecap)');
  } else {
    const ea = kem.encap(h(v.pkRm), h(v.ikmE));
    assert.equal(hex(ea.enc), v.enc, 'enc');
    assert.equal(hex(ea.sharedSecret), v.shared_secret, 'shared_secret (Encap)');
    assert.equal(hex(kem.decap(h(v.enc), h(v.skRm))), v.shared_secret, 'shared_secret (Decap)');
  }
}

/** The key schedule recomputed through the suite KDF's public labeled functions (§5.1). */
function checkKeySchedule(s: Suite, v: Vector): void {
  const sid = new Uint8Array([0x48, 0x50, 0x4b, 0x45, 0, v.kem_id, 0, v.kdf_id, v.aead_id >> 8, v.aead_id & 0xff]);
  const E = new Uint8Array(0);
  const pskIdHash = s.kdf.labeledExtract(sid, E, 'psk_id_hash', v.psk_id !== undefined ? h(v.psk_id) : E);
  const infoHash = s.kdf.labeledExtract(sid, E, 'info_hash', h(v.info));
  const ksc = new Uint8Array([v.mode, ...pskIdHash, ...infoHash]);
  assert.equal(hex(ksc), v.key_schedule_context, 'key_schedule_context');
  const secret = s.kdf.labeledExtract(sid, h(v.shared_secret), 'secret', v.psk !== undefined ? h(v.psk) : E);
  assert.equal(hex(secret), v.secret, 'secret');
  assert.equal(hex(s.kdf.labeledExpand(sid, secret, 'key', ksc, s.aead.nK)), v.key, 'key');
  assert.equal(hex(s.kdf.labeledExpand(sid, secret, 'base_nonce', ksc, s.aead.nN)), v.base_nonce, 'base_nonce');
  assert.equal(hex(s.kdf.labeledExpand(sid, secret, 'exp', ksc, s.kdf.nH)), v.exporter_secret, 'exporter_secret');
}

const present = existsSync(VECTORS);

test('RFC 9180 Appendix A vectors', { skip: present ? false : `vectors not found at ${VECTORS}` }, () => {
  const all = JSON.parse(readFileSync(VECTORS, 'utf8')) as Vector[];
  assert.equal(all.length, EXPECTED_TOTAL);
  let exercised = 0;
  let skipped = 0;
  let encryptions = 0;
  let exports = 0;
  const modes = new Map<string, number>();
  for (const v of all) {
    if (!SUPPORTED_KEMS.has(v.kem_id)) {
      skipped++;
      continue;
    }
    const label = `mode ${v.mode} kem 0x${v.kem_id.toString(16)} kdf ${v.kdf_id} aead 0x${v.aead_id.toString(16)}`;
    const s = suite(v.kem_id, v.kdf_id, v.aead_id);
    try {
      checkKem(s.kem, v);
      checkKeySchedule(s, v);

      const auth = v.mode === 2 || v.mode === 3;
      const psk = modeOpts(v);
      const info = h(v.info);
      const { enc, ctx } = setupSender(s, h(v.pkRm), { info, ...psk, randomness: h(v.ikmE), ...(auth ? { skS: h(v.skSm!) } : {}) });
      assert.equal(hex(enc), v.enc, 'setupSender enc');
      const rctx = setupRecipient(s, h(v.enc), h(v.skRm), { info, ...psk, ...(auth ? { pkS: h(v.pkSm!) } : {}) });

      const baseNonce = BigInt('0x' + (v.base_nonce || '0'));
      for (const e of v.encryptions) {
        const seq = Number(BigInt('0x' + e.nonce) ^ baseNonce);
        setSequenceForTesting(ctx, seq);
        assert.equal(hex(ctx.seal(h(e.pt), h(e.aad))), e.ct, `ct seq ${seq}`);
        setSequenceForTesting(rctx, seq);
        assert.equal(hex(rctx.open(h(e.ct), h(e.aad))), e.pt, `pt seq ${seq}`);
        // The sequence number advanced: the same ciphertext does not open twice.
        assert.throws(() => rctx.open(h(e.ct), h(e.aad)), (err: unknown) => err instanceof EvsealError && err.code === 'ERR_OPEN_FAILED');
        encryptions++;
      }
      if (v.encryptions.length > 0 && v.mode === 0) {
        // Single-shot API = a fresh context at seq 0.
        const e0 = v.encryptions[0]!;
        const one = seal(s, h(v.pkRm), info, h(e0.aad), h(e0.pt), { randomness: h(v.ikmE) });
        assert.equal(hex(one.enc), v.enc);
        assert.equal(hex(one.ct), e0.ct);
        assert.equal(hex(open(s, h(v.enc), h(v.skRm), info, h(e0.aad), h(e0.ct))), e0.pt);
      }
      if (s.aead.nK === 0) {
        assert.throws(() => ctx.seal(ascii('x')), (err: unknown) => err instanceof EvsealError && err.code === 'ERR_USAGE');
        assert.throws(() => rctx.open(new Uint8Array(16)), (err: unknown) => err instanceof EvsealError && err.code === 'ERR_USAGE');
        if (v.mode === 0) {
          assert.throws(() => seal(s, h(v.pkRm), info, undefined, ascii('x')), (err: unknown) => err instanceof EvsealError && err.code === 'ERR_USAGE');
          assert.throws(() => open(s, h(v.enc), h(v.skRm), info, undefined, new Uint8Array(16)), (err: unknown) => err instanceof EvsealError && err.code === 'ERR_USAGE');
        }
      }
      for (const x of v.exports) {
        assert.equal(hex(ctx.export(h(x.exporter_context), x.L)), x.exported_value, 'sender export');
        assert.equal(hex(rctx.export(h(x.exporter_context), x.L)), x.exported_value, 'recipient export');
        exports++;
      }
    } catch (e) {
      if (e instanceof Error) e.message = `${label}: ${e.message}`;
      throw e;
    }
    exercised++;
    const key = `${v.kem_id}/${v.kdf_id}/${v.aead_id}`;
    modes.set(key, (modes.get(key) ?? 0) | (1 << v.mode));
  }
  assert.equal(exercised, EXPECTED_EXERCISED, 'vectors exercised');
  assert.equal(skipped, EXPECTED_TOTAL - EXPECTED_EXERCISED, 'vectors skipped (P-521)');
  assert.equal(encryptions, EXPECTED_ENCRYPTIONS, 'encryptions checked');
  assert.equal(exports, EXPECTED_EXPORTS, 'exports checked');
  // Every exercised suite was seen in all four modes.
  assert.equal(modes.size, 6);
  for (const m of modes.values()) assert.equal(m, 0b1111);
});

test('sequence number overflow is ERR_CRYPTO and nothing is sealed', () => {
  const s = suite(0x0020, 0x0001, 0x0001);
  const kp = s.kem.generateKeyPair();
  const { enc, ctx } = setupSender(s, kp.publicKey);
  const r = setupRecipient(s, enc, kp.privateKey);
  setSequenceForTesting(ctx, Number.MAX_SAFE_INTEGER - 1);
  setSequenceForTesting(r, Number.MAX_SAFE_INTEGER - 1);
  const last = ctx.seal(ascii('last'));
  assert.equal(Buffer.from(r.open(last)).toString(), 'last');
  assert.throws(() => ctx.seal(ascii('one too many')), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_CRYPTO');
  assert.throws(() => r.open(last), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_CRYPTO');
});

test('PSK input checks (RFC 9180 §5.1, §9.5)', () => {
  const s = suite(0x0020, 0x0001, 0x0003);
  const kp = s.kem.generateKeyPair();
  const psk = new Uint8Array(32).fill(7);
  const usage = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_USAGE';
  assert.throws(() => setupSender(s, kp.publicKey, { psk }), usage);
  assert.throws(() => setupSender(s, kp.publicKey, { pskId: ascii('id') }), usage);
  assert.throws(() => setupSender(s, kp.publicKey, { psk: psk.subarray(0, 31), pskId: ascii('id') }), usage);
  assert.throws(() => setupRecipient(s, new Uint8Array(32), kp.privateKey, { psk }), usage);
  assert.throws(() => setupRecipient(s, new Uint8Array(32), kp.privateKey, { pskId: ascii('id') }), usage);
  // X-Wing is not an authenticated KEM.
  const xs = suite(0x647a, 0x0001, 0x0002);
  const xkp = xs.kem.generateKeyPair();
  assert.throws(() => setupSender(xs, xkp.publicKey, { skS: xkp.privateKey }), usage);
  assert.throws(() => setupRecipient(xs, new Uint8Array(1120), xkp.privateKey, { pkS: xkp.publicKey }), usage);
  // Unsupported ids.
  assert.throws(() => suite(0x0011, 1, 1), usage);
  assert.throws(() => suite(0x0020, 4, 1), usage);
  assert.throws(() => suite(0x0020, 1, 4), usage);
  assert.equal(suite(0x0020, 1, 1), suite(0x0020, 1, 1));
  // Export length bound: 255 * Nh.
  const { ctx } = setupSender(s, kp.publicKey);
  assert.equal(ctx.export(ascii('c'), 255 * 32).length, 255 * 32);
  assert.throws(() => ctx.export(ascii('c'), 255 * 32 + 1), usage);
});
