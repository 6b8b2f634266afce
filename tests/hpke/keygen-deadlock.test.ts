// Node 20 deadlocks when a garbage collection during a JWK export of a key
// that generateKeyPairSync returned destroys the finished key-generation job:
// the job's destructor takes the key's lock, which the export holds. With a
// 1 MiB young generation, 20,000 generate-then-export pairs in plain Node
// hung in 6 runs out of 6. evseal's ephemeral X25519 keys and its signing
// keys never export from a generated KeyObject (groups.ts, algorithms.ts);
// this runs them as hard, under the same conditions, in a child process that
// must finish. The first test checks the mechanism itself: no key that
// generateKeyPairSync returned is ever exported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { X25519_GROUP } from '../../src/core/hpke/groups.js';
import { generateSigningKey } from '../../src/core/x509/algorithms.js';

test('no KeyObject is exported while evseal generates keys', () => {
  // every asymmetric KeyObject class's export, counted
  const protos = new Set(['x25519', 'ed25519'].flatMap((t) => Object.values(generateKeyPairSync(t as 'x25519')).map((k) => Object.getPrototypeOf(k) as { export: (...a: unknown[]) => unknown })));
  let exports = 0;
  const saved = [...protos].map((p) => [p, p.export] as const);
  for (const [p, f] of saved) {
    p.export = function (this: unknown, ...a: unknown[]) {
      exports++;
      return f.apply(this, a);
    };
  }
  try {
    // the counter works (on an imported key: exporting a generated one is the hazard)
    createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: 'hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo' }, format: 'jwk' }).export({ format: 'jwk' });
    assert.equal(exports, 1);
    exports = 0;
    for (let i = 0; i < 10; i++) X25519_GROUP.ephemeral();
    generateSigningKey('ecdsa-p256');
    generateSigningKey('ed25519');
    assert.equal(exports, 0);
  } finally {
    for (const [p, f] of saved) p.export = f;
  }
});

test('ephemeral and signing key generation never deadlock the process', () => {
  const fixture = join(import.meta.dirname, 'fixtures', 'keygen-loop.ts');
  const r = spawnSync(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', fixture, '20000'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.signal, null, `the child was killed (${r.signal}): it hung`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^done \d+\n$/);
});
