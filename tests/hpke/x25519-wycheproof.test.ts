// Wycheproof X25519 (XdhComp) vectors, read in place from ../shared/vectors/wycheproof/.
//
// Policy for the cases Wycheproof marks "acceptable":
// - all-zero shared secret (flags ZeroSharedSecret / LowOrderPublic): REJECTED. Our X25519 throws,
//   DHKEM decap throws the opaque ERR_OPEN_FAILED and encap to such a key throws ERR_CRYPTO
//   (RFC 7748 §6.1, RFC 9180 §7.1.4).
// - everything else (Twist, NonCanonicalPublic, SmallPublicKey with a non-zero result,
//   EdgeCase*): ACCEPTED, and the result must equal the RFC 7748 value Wycheproof gives
//   (non-canonical u is reduced mod p and the top bit masked, as RFC 7748 §5 requires).
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EvsealError } from '../../src/core/errors.js';
import { x25519 } from '../../src/core/hpke/groups.js';
import { DHKEM_X25519, HKDF_SHA256 } from '../../src/core/hpke/index.js';

const FILE = fileURLToPath(new URL('../../../shared/vectors/wycheproof/x25519_test.json', import.meta.url));

interface Case {
  tcId: number;
  comment: string;
  flags: string[];
  public: string;
  private: string;
  shared: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const ZERO = '00'.repeat(32);
const KEM_SUITE_ID = new Uint8Array([0x4b, 0x45, 0x4d, 0x00, 0x20]);

/** DHKEM(X25519) ExtractAndExpand from a known DH value (RFC 9180 §4.1), via the public KDF API. */
function kemSecret(dh: Uint8Array, enc: Uint8Array, pkR: Uint8Array): string {
  const prk = HKDF_SHA256.labeledExtract(KEM_SUITE_ID, new Uint8Array(0), 'eae_prk', dh);
  return hex(HKDF_SHA256.labeledExpand(KEM_SUITE_ID, prk, 'shared_secret', new Uint8Array([...enc, ...pkR]), 32));
}

const isOpenFailed = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED' && e.message === 'decryption failed';
const isCrypto = (e: unknown): boolean => e instanceof EvsealError && e.code === 'ERR_CRYPTO';

test('Wycheproof x25519_test.json', { skip: existsSync(FILE) ? false : `vectors not found at ${FILE}` }, () => {
  const doc = JSON.parse(readFileSync(FILE, 'utf8')) as { numberOfTests: number; testGroups: { curve: string; tests: Case[] }[] };
  const cases = doc.testGroups.flatMap((g) => {
    assert.equal(g.curve, 'curve25519');
    return g.tests;
  });
  assert.equal(cases.length, doc.numberOfTests);

  let valid = 0;
  let acceptedNonZero = 0;
  let rejectedZero = 0;
  for (const c of cases) {
    const where = `tcId ${c.tcId} (${c.comment}; ${c.flags.join(',')})`;
    const sk = h(c.private);
    const pk = h(c.public);
    assert.notEqual(c.result, 'invalid', `${where}: this file has no invalid cases`);
    if (c.shared === ZERO) {
      assert.equal(c.result, 'acceptable', where);
      assert.ok(c.flags.includes('ZeroSharedSecret'), where);
      assert.throws(() => x25519(sk, pk), where);
      assert.throws(() => DHKEM_X25519.decap(pk, sk), isOpenFailed, where);
      assert.throws(() => DHKEM_X25519.encap(pk), isCrypto, where);
      rejectedZero++;
      continue;
    }
    // Zero-result flags only ever come with a zero result.
    assert.ok(!c.flags.includes('ZeroSharedSecret') && !c.flags.includes('LowOrderPublic'), where);
    assert.equal(hex(x25519(sk, pk)), c.shared, where);
    // The KEM uses the same DH: decapsulating `public` as enc gives ExtractAndExpand(shared).
    const pkR = DHKEM_X25519.publicKeyFromPrivate(sk);
    assert.equal(hex(DHKEM_X25519.decap(pk, sk)), kemSecret(h(c.shared), pk, pkR), where);
    if (c.result === 'valid') valid++;
    else acceptedNonZero++;
  }
  assert.equal(cases.length, 518);
  assert.equal(valid, 264, 'valid cases computed');
  assert.equal(acceptedNonZero, 223, 'acceptable non-zero cases accepted and computed');
  assert.equal(rejectedZero, 31, 'all-zero (low-order) cases rejected');
});
