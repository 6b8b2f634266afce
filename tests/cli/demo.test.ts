// The README's main job (`npm run demo`) runs end to end: every step of the
// walk-through behaves as it says, refusals included.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';

test('npm run demo (the CLI walk-through) completes', () => {
  const r = spawnSync(process.execPath, ['scripts/walkthrough.mjs'], { encoding: 'utf8', timeout: 540_000 });
  assert.equal(r.status, 0, r.stdout.slice(-2000) + r.stderr);
  assert.match(r.stdout, /walk-through complete: every step behaved as described/);
  assert.match(r.stdout, /contains the passphrase in clear: false/);
});
