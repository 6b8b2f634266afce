// `evseal audit verify` in-process: every edit, deletion, reordering or
// truncation of the entries (in an exported file or in the gateway's
// database) is reported; a truncation of entries and heads together is
// caught by a receipt's size and root, and a re-signed forgery by the
// pinned gateway key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import Database from 'better-sqlite3';
import { b64u } from '../../src/core/base64url.js';
import { MerkleTree } from '../../src/core/merkle.js';
import { AuditLog } from '../../src/gateway/audit/log.js';
import { encodeAuditExport, parseAuditExport, readAuditLog, verifyAuditLog, type AuditExport, type VerifyOptions } from '../../src/gateway/audit/export.js';
import { entryLeafHash, signTreeHead } from '../../src/gateway/audit/leaf.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/identity.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { AuditEntry, TreeHead } from '../../src/gateway/store/store.js';

const work = mkdtempSync(join(tmpdir(), 'evseal-audit-tamper-'));
after(() => rmSync(work, { recursive: true, force: true }));
const data = join(work, 'data');
const T0 = Date.parse('2026-03-01T12:00:00Z');
const entry = (i: number): AuditEntry => ({ time: T0 + i * 10, sender: `cp-${i}`, recipient: i % 2 ? 'psp-1' : 'fleet-1', kind: 'payment', size: 200 + i, msgId: `msg-${i}`, outcome: i % 3 ? 'accepted' : 'delivered' });

let base: AuditExport;
let gatewayKey = '';
const head = (size: number): TreeHead => base.treeHeads.find((h) => h.size === size) as TreeHead;

before(async () => {
  const store = new SqliteStore(data);
  const key = loadOrCreateGatewayKey(data, 'gw-audit');
  gatewayKey = key.publicKeyB64u;
  let t = T0;
  const log = await AuditLog.open(store, key, () => (t += 1000));
  let n = 0;
  for (const batch of [5, 7, 8, 13, 7]) {
    await store.appendAudit(Array.from({ length: batch }, () => entry(n++)));
    await log.sync();
  }
  base = await readAuditLog(store);
  await store.close();
});

const clone = (): AuditExport => structuredClone(base);
function refused(x: AuditExport, reason: RegExp, o: VerifyOptions = {}): void {
  assert.throws(() => verifyAuditLog(x, o), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_INVALID_INPUT');
    assert.match(e.message, /^audit log invalid: /);
    assert.match(e.message, reason);
    return true;
  });
}

test('the untouched log verifies, from the store and through the export file', () => {
  assert.deepEqual(base.treeHeads.map((h) => h.size), [0, 5, 12, 20, 33, 40]);
  const s = verifyAuditLog(base, { key: gatewayKey, expect: { size: 33, root: head(33).root } });
  assert.deepEqual({ size: s.size, heads: s.treeHeads, latest: s.latest?.size, unsigned: s.unsigned, gateway: s.gateway }, { size: 40, heads: 6, latest: 40, unsigned: 0, gateway: 'gw-audit' });
  const text = encodeAuditExport(base);
  assert.deepEqual(parseAuditExport(text), base);
  assert.equal(text.split('\n').length, 2); // one canonical line
});

test('an edit of any field of any entry breaks the first signed head that covers it', () => {
  const edits: [keyof AuditEntry, (e: AuditEntry) => AuditEntry][] = [
    ['time', (e) => ({ ...e, time: e.time + 1 })],
    ['sender', (e) => ({ ...e, sender: 'mallory' })],
    ['recipient', (e) => ({ ...e, recipient: 'psp-2' })],
    ['kind', (e) => ({ ...e, kind: 'credentials' })],
    ['size', (e) => ({ ...e, size: e.size + 1 })],
    ['msgId', (e) => ({ ...e, msgId: 'msg-x' })],
    ['outcome', (e) => ({ ...e, outcome: 'expired' })],
  ];
  for (const [field, edit] of edits) {
    for (const [i, range] of [[0, '0..4'], [7, '5..11'], [39, '33..39']] as const) {
      const x = clone();
      x.entries[i] = edit(x.entries[i] as AuditEntry);
      assert.throws(() => verifyAuditLog(x), { message: new RegExp(`entries ${range} do not match the signed tree head`) }, `${field} of entry ${i}`);
    }
  }
});

test('a deleted, swapped, inserted or truncated entry is reported', () => {
  let x = clone();
  x.entries.splice(7, 1);
  refused(x, /tree head at size 40 covers more entries than the log holds \(39\)/);

  x = clone();
  [x.entries[3], x.entries[15]] = [x.entries[15] as AuditEntry, x.entries[3] as AuditEntry];
  refused(x, /entries 0\.\.4 do not match/);

  x = clone();
  [x.entries[20], x.entries[21]] = [x.entries[21] as AuditEntry, x.entries[20] as AuditEntry]; // neighbours, both under head 33 only
  refused(x, /entries 20\.\.32 do not match/);

  x = clone();
  x.entries.splice(10, 0, { ...(x.entries[10] as AuditEntry) }); // a duplicate inserted, the last dropped: same length
  x.entries.pop();
  refused(x, /entries 5\.\.11 do not match/);

  x = clone();
  x.entries.length = 30;
  refused(x, /covers more entries than the log holds \(30\)/);
});

test('a truncation of entries and heads together is caught with a receipt (--expect), not without', () => {
  const x = clone();
  x.entries.length = 20;
  x.treeHeads = x.treeHeads.filter((h) => h.size <= 20);
  assert.equal(verifyAuditLog(x).size, 20); // self-consistent: nothing in the log itself says more existed
  refused(x, /holds 20 entries, fewer than the expected 33: it was truncated/, { expect: { size: 33, root: head(33).root } });
  assert.equal(verifyAuditLog(x, { expect: { size: 12, root: head(12).root } }).size, 20);
  refused(x, /first 12 entries do not have the expected root/, { expect: { size: 12, root: head(20).root } });
});

test('a log rewritten and re-signed with another key passes only without --key; a receipt still catches it', () => {
  const forger = generateKeyPairSync('ed25519');
  const x = clone();
  x.entries[25] = { ...(x.entries[25] as AuditEntry), recipient: 'someone-else' };
  x.gateway.publicKey = b64u(forger.publicKey.export({ type: 'spki', format: 'der' }));
  // recompute honest-looking roots for the rewritten entries, then sign them
  const re = rootsOf(x);
  x.treeHeads = x.treeHeads.map((h) => signTreeHead(x.gateway.id, forger.privateKey, { size: h.size, root: re(h.size), time: h.time }));
  assert.equal(verifyAuditLog(x).size, 40);
  refused(x, /signed with another key/, { key: gatewayKey });
  refused(x, /first 33 entries do not have the expected root/, { expect: { size: 33, root: head(33).root } });

  // and its heads must still go forward in time
  const y = structuredClone(x);
  y.treeHeads[3] = signTreeHead(y.gateway.id, forger.privateKey, { size: 20, root: re(20), time: T0 });
  refused(y, /tree head at size 20 is older than the one at size 12/);
});

/** The root of the first `size` entries of x, as a forger computes it. */
function rootsOf(x: AuditExport): (size: number) => string {
  return (size) => {
    const tree = new MerkleTree();
    for (const e of x.entries.slice(0, size)) tree.append(entryLeafHash(e));
    return b64u(tree.root());
  };
}

test('tree heads edited, reordered or missing are reported', () => {
  let x = clone();
  [x.treeHeads[2], x.treeHeads[3]] = [x.treeHeads[3] as TreeHead, x.treeHeads[2] as TreeHead];
  refused(x, /tree head at size 12 follows the one at size 20: heads out of order or repeated/);

  for (const edit of [(h: TreeHead) => ({ ...h, root: head(20).root }), (h: TreeHead) => ({ ...h, time: h.time + 1 }), (h: TreeHead) => ({ ...h, size: 13 }), (h: TreeHead) => ({ ...h, sig: head(20).sig })]) {
    x = clone();
    x.treeHeads[2] = edit(x.treeHeads[2] as TreeHead);
    refused(x, /tree head at size 1[23] is not signed by gateway 'gw-audit'/);
  }

  x = clone();
  x.gateway.id = 'gw-other';
  refused(x, /tree head at size 0 is not signed by gateway 'gw-other'/);

  x = clone();
  x.treeHeads = [];
  refused(x, /40 entries and no signed tree head/);

  // Entries after the latest head are reported as not yet signed: a crash between commit and sync looks the same.
  x = clone();
  x.entries.push(entry(40));
  assert.equal(verifyAuditLog(x).unsigned, 1);
});

test('the export file has one encoding: anything else is refused before verification', () => {
  const text = encodeAuditExport(base);
  assert.throws(() => parseAuditExport(text.replace('{"v":1,', '{"v":1, ')), { code: 'ERR_INVALID_INPUT', message: /canonical/ });
  assert.throws(() => parseAuditExport(text.replace('{"v":1,', '{"v":2,')), { code: 'ERR_INVALID_INPUT', message: /unsupported version/ });
  assert.throws(() => parseAuditExport(text.replace('"outcome":"delivered"}', '"outcome":"delivered","note":"x"}')), { code: 'ERR_INVALID_INPUT', message: /entry 0/ });
  assert.throws(() => parseAuditExport(text.replace('"size":200,', '"size":-1,')), { code: 'ERR_INVALID_INPUT', message: /size must be int/ });
  assert.throws(() => parseAuditExport(text.slice(0, 100)), { code: 'ERR_INVALID_INPUT', message: /not JSON/ });
});

/** A copy of the data directory with `sql` run on its database, read back the way `evseal audit verify --data` reads it. */
async function tamperedStore(name: string, sql: string): Promise<AuditExport> {
  const dir = join(work, name);
  cpSync(data, dir, { recursive: true });
  const db = new Database(join(dir, 'evseal.db'));
  db.exec(sql);
  db.close();
  const store = new SqliteStore(dir);
  try {
    return await readAuditLog(store);
  } finally {
    await store.close();
  }
}

test('the database: an edited, deleted, swapped or truncated row is reported', async () => {
  refused(await tamperedStore('edit', "UPDATE audit SET recipient = 'mallory' WHERE idx = 17"), /entries 12\.\.19 do not match/);
  refused(await tamperedStore('delete', 'DELETE FROM audit WHERE idx = 8'), /covers more entries than the log holds \(38\)/);
  refused(
    await tamperedStore('swap', 'UPDATE audit SET idx = -1 WHERE idx = 3; UPDATE audit SET idx = 3 WHERE idx = 9; UPDATE audit SET idx = 9 WHERE idx = -1'),
    /entries 0\.\.4 do not match/,
  );
  refused(await tamperedStore('truncate', 'DELETE FROM audit WHERE idx >= 35'), /covers more entries than the log holds \(35\)/);
  const both = await tamperedStore('truncate-both', 'DELETE FROM audit WHERE idx >= 20; DELETE FROM tree_heads WHERE size > 20');
  assert.equal(verifyAuditLog(both).size, 20);
  refused(both, /fewer than the expected 33/, { expect: { size: 33, root: head(33).root } });
  refused(await tamperedStore('head-time', `UPDATE tree_heads SET time = ${T0} WHERE size = 33`), /tree head at size 33 is not signed/);
});
