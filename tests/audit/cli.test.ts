// `evseal audit export|verify` as a user runs them: the built CLI
// (dist/cli/main.js; `npm run build` first) against a gateway data directory
// and an exported file. Exit 0 when valid; 1 with one line
// "evseal: audit log invalid: <reason> [ERR_INVALID_INPUT]"; 2 on bad usage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64u } from '../../src/core/base64url.js';
import { AuditLog } from '../../src/gateway/audit/log.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/identity.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { Receipt } from '../../src/gateway/context.js';

const bin = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'evseal-audit-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
const data = join(work, 'data');
const file = join(work, 'audit.json');
let key = '';
let receipt: Receipt;

function evseal(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: work, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const INVALID = /^evseal: audit log invalid: .+ \[ERR_INVALID_INPUT\]\n$/;

before(async () => {
  const store = new SqliteStore(data);
  const k = loadOrCreateGatewayKey(data);
  key = k.publicKeyB64u;
  let t = Date.parse('2026-03-01T12:00:00Z');
  const log = await AuditLog.open(store, k, () => (t += 1000));
  for (let i = 0; i < 3; i++) {
    const idx = await store.appendAudit(Array.from({ length: 4 }, (_, j) => ({ time: t, sender: `cp-${i}`, recipient: 'psp-1', kind: 'payment', size: 64 + j, msgId: `m-${i}-${j}`, outcome: 'accepted' })));
    const head = await log.sync();
    if (i === 1) receipt = log.receipt(idx[0] as number, head);
  }
  await store.close();
});

test('every audit command has --help', () => {
  for (const args of [['audit', 'export'], ['audit', 'verify']]) {
    const r = evseal(...args, '--help');
    assert.equal(r.status, 0, args.join(' '));
    assert.match(r.stdout, new RegExp(`^Usage: evseal ${args.join(' ')}`));
  }
});

test('export, then verify the file and the store; pinned key and a receipt both hold', () => {
  const ex = evseal('audit', 'export', '--data', data, '--out', file);
  assert.equal(ex.status, 0, ex.stderr);
  assert.equal(ex.stdout, `exported 12 entries and 4 tree heads to ${file}\n`);

  const v = evseal('audit', 'verify', '--file', file);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^audit log valid: 12 entries, 4 signed tree heads \(gateway 'gateway'\)\nlatest tree head: size 12, root [A-Za-z0-9_-]{43}, 2026-03-01T12:00:0\d\.000Z\n$/);

  const j = evseal('audit', 'verify', '--data', data, '--key', key, '--expect', `${receipt.size}:${receipt.root}`, '--json');
  assert.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { valid: boolean; size: number; treeHeads: number; unsigned: number; publicKey: string };
  assert.deepEqual([out.valid, out.size, out.treeHeads, out.unsigned, out.publicKey], [true, 12, 4, 0, key]);
});

test('a tampered file or another key: exit 1 with one line', () => {
  const edited = join(work, 'edited.json');
  writeFileSync(edited, readFileSync(file, 'utf8').replace('"msgId":"m-1-2"', '"msgId":"m-1-9"'));
  let r = evseal('audit', 'verify', '--file', edited, '--json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, INVALID);
  assert.match(r.stderr, /entries 4\.\.7 do not match the signed tree head at size 8/);
  assert.equal((JSON.parse(r.stdout) as { valid: boolean }).valid, false);

  const other = b64u(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }));
  r = evseal('audit', 'verify', '--file', file, '--key', other);
  assert.equal(r.status, 1);
  assert.match(r.stderr, INVALID);
  assert.match(r.stderr, /signed with another key/);
});

test('bad usage exits 2; a missing store exits 1', () => {
  let r = evseal('audit', 'verify', '--data', data, '--file', file);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /exactly one of --data DIR or --file FILE \[ERR_USAGE\]/);
  r = evseal('audit', 'verify', '--data', join(work, 'nowhere'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^evseal: no gateway store in .* \[ERR_NOT_FOUND\]\n$/);
});
