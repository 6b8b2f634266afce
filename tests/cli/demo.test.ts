// The README's main job (`npm run demo`) and the CLI walk-through run end to end.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';

test('npm run walkthrough (the CLI walk-through) completes', () => {
  const r = spawnSync(process.execPath, ['scripts/walkthrough.mjs'], { encoding: 'utf8', timeout: 540_000 });
  assert.equal(r.status, 0, r.stdout.slice(-2000) + r.stderr);
  assert.match(r.stdout, /walk-through complete: every step behaved as described/);
  assert.match(r.stdout, /contains the passphrase in clear: false/);
});

test('npm run demo (every flow through the gateway) completes, and the scan finds no secret', () => {
  const r = spawnSync(process.execPath, ['dist/demo/main.js'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr);
  assert.match(r.stdout, /demo complete: every flow worked and no secret reached the gateway/);
  assert.match(r.stdout, /positive control \(a planted base64 copy\): found/);
  assert.doesNotMatch(r.stdout, /LEAKED|FAIL/);
  // One line per flow in the summary, all ok.
  assert.equal((r.stdout.match(/^ {2}ok {3}\d/gm) ?? []).length, 9);
  assert.match(r.stdout, /^ {2}ok {3}7\. firmware:/m);
  assert.match(r.stdout, /of which the gateway's firmware store: gateway\/firmware\/[0-9a-f]{32}\.evfw/);
});
