// Property-based tests (fast-check) over the core envelope API with
// in-memory state: round trip, tamper, replay and reorder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { join } from 'node:path';
import { PASSPHRASE, World } from '../helpers/world.js';
import { parseBundle, verifyBundle, type VerifiedBundle } from '../../src/core/bundle.js';
import { openEnvelope, sealEnvelope, type Recipient, type Sender } from '../../src/core/envelope.js';
import { ReplayWindow } from '../../src/core/replay.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';
import { RevocationState, type TrustPolicy } from '../../src/core/x509/index.js';
import { loadIdentity } from '../../src/keystore/identity-dir.js';
import { readFileSync } from 'node:fs';
import { SUITE_NAMES } from '../../src/core/suites.js';

const w = new World();
after(() => w.cleanup());
let policy: TrustPolicy;
let revocation: RevocationState;
let sender: Sender;
let me: Recipient;
let bundle: VerifiedBundle;
const now = () => new Date(w.now);

before(async () => {
  const ca = await w.ca('ca');
  const cp = await w.identity(ca, 'charger', 'CP-1', { suites: [...SUITE_NAMES] });
  const prov = await w.identity(ca, 'provisioning', 'prov-1', { suites: [...SUITE_NAMES] });
  policy = w.trust(ca);
  revocation = RevocationState.fromJSON(null);
  revocation.addCrl(readFileSync(join(ca, 'crl.pem'), 'utf8'), policy);
  const s = loadIdentity(prov, PASSPHRASE);
  sender = { chain: s.chain, info: s.file, privateKey: s.privateKey, suites: s.file.suites };
  const r = loadIdentity(cp, PASSPHRASE);
  me = { info: r.file, prekeys: r.prekeys, suites: r.file.suites };
  bundle = verifyBundle(parseBundle(w.bundle(cp)), { policy, revocation, now: now() });
});

const ctx = (replay: ReplayWindow) => ({ policy, revocation, now: now(), replay, rolePolicy: DEFAULT_ROLE_POLICY, maxLifetimeSec: 259200, skewSec: 300 });
const seal = (pt: Uint8Array, suites = sender.suites) =>
  sealEnvelope({ ...sender, suites }, bundle, pt, { kind: 'credentials', now: now(), lifetimeSec: 3600, rolePolicy: DEFAULT_ROLE_POLICY });

test('round trip for any payload and any suite', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(...SUITE_NAMES), (pt, suite) => {
      const env = seal(pt, [suite]);
      assert.deepEqual(openEnvelope(env, me, ctx(new ReplayWindow())).plaintext, pt);
    }),
    { numRuns: 60 },
  );
});

test('any single-character change anywhere in an envelope is refused, and the original still opens after', () => {
  const env = seal(new TextEncoder().encode('apn-password: hunter2'), ['X25519-SHA256-AES256GCM']);
  const replay = new ReplayWindow();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_{}":,= ';
  fc.assert(
    fc.property(fc.nat({ max: env.length - 1 }), fc.constantFrom(...alphabet), (pos, ch) => {
      fc.pre(env[pos] !== ch);
      const t = env.slice(0, pos) + ch + env.slice(pos + 1);
      assert.throws(() => openEnvelope(t, me, ctx(replay)), { code: 'ERR_OPEN_FAILED' });
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.nat({ max: env.length - 1 }), fc.nat({ max: 64 }), (pos, len) => {
      fc.pre(len > 0);
      const t = env.slice(0, pos) + env.slice(pos + len);
      assert.throws(() => openEnvelope(t, me, ctx(replay)), { code: 'ERR_OPEN_FAILED' });
    }),
    { numRuns: 200 },
  );
  assert.equal(replay.size, 0);
  assert.equal(new TextDecoder().decode(openEnvelope(env, me, ctx(replay)).plaintext), 'apn-password: hunter2');
});

test('envelopes open in any order, each exactly once; replays interleaved anywhere are refused', () => {
  const envs = Array.from({ length: 6 }, (_, i) => seal(new Uint8Array([i])));
  fc.assert(
    fc.property(fc.array(fc.nat({ max: envs.length - 1 }), { minLength: 1, maxLength: 20 }), (order) => {
      const replay = new ReplayWindow();
      const opened = new Set<number>();
      for (const i of order) {
        if (opened.has(i)) {
          assert.throws(() => openEnvelope(envs[i] as string, me, ctx(replay)), { code: 'ERR_OPEN_FAILED' });
        } else {
          assert.deepEqual(openEnvelope(envs[i] as string, me, ctx(replay)).plaintext, new Uint8Array([i]));
          opened.add(i);
        }
      }
      assert.equal(replay.size, opened.size);
    }),
    { numRuns: 50 },
  );
});

test('parse then serialise is the identity: an envelope has exactly one encoding', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (pt) => {
      const env = seal(pt, ['X25519-SHA256-AES256GCM']);
      assert.equal(JSON.stringify(JSON.parse(env)), env);
      const spaced = JSON.stringify(JSON.parse(env), null, 1);
      assert.throws(() => openEnvelope(spaced, me, ctx(new ReplayWindow())), { code: 'ERR_OPEN_FAILED' });
    }),
    { numRuns: 30 },
  );
});
