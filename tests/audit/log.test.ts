// The gateway's audit log over a real SqliteStore: signed heads, receipts,
// proofs across the in-memory/recomputed node boundary (blocks of 256),
// serialized syncs, reopening, refusal of a store edited while down, and the
// gateway key file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { b64u } from '../../src/core/base64url.js';
import { emptyRoot, MerkleTree, rootAt } from '../../src/core/merkle.js';
import { entryLeafHash } from '../../src/gateway/audit/leaf.js';
import { AuditLog, checkConsistency, checkInclusion, verifyReceipt } from '../../src/gateway/audit/log.js';
import { readAuditLog, verifyAuditLog } from '../../src/gateway/audit/export.js';
import { GATEWAY_KEY_FILE, loadOrCreateGatewayKey, publicKeyFromB64u } from '../../src/gateway/identity.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { AuditEntry, TreeHead } from '../../src/gateway/store/store.js';

const root = mkdtempSync(join(tmpdir(), 'evseal-audit-log-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `d${dirs++}`);

const T0 = Date.parse('2026-03-01T12:00:00Z');
const entry = (i: number, outcome = 'accepted'): AuditEntry => ({ time: T0 + i, sender: `cp-${i % 7}`, recipient: 'psp-1', kind: 'payment', size: 100 + i, msgId: `m${i}`, outcome });
const clock = () => {
  let t = T0;
  return () => (t += 1000);
};

async function openLog(dir: string) {
  const store = new SqliteStore(dir);
  const key = loadOrCreateGatewayKey(dir, 'gw-test');
  const log = await AuditLog.open(store, key, clock());
  return { store, key, log };
}

test('a new log signs the empty tree; receipts verify for the covered indexes only', async () => {
  const { store, key, log } = await openLog(freshDir());
  const h0 = await store.latestTreeHead();
  assert.ok(h0);
  assert.equal(h0.size, 0);
  assert.equal(h0.root, b64u(emptyRoot()));

  // The store appends entries itself inside a mailbox transaction; sync picks them up.
  const { auditIndexes } = await store.enqueue([
    { msg: { msgId: 'a', sender: 'cp-1', recipient: 'psp-1', kind: 'payment', format: 'envelope', body: 'x'.repeat(10), expires: T0 + 60_000, created: T0 }, audit: entry(0) },
    { msg: { msgId: 'b', sender: 'cp-1', recipient: 'psp-1', kind: 'payment', format: 'envelope', body: 'y'.repeat(12), expires: T0 + 60_000, created: T0 }, audit: entry(1) },
  ]);
  const head = await log.sync();
  assert.equal(head.size, 2);
  assert.deepEqual(await store.latestTreeHead(), head);
  for (const i of auditIndexes) {
    const r = log.receipt(i as number, head);
    assert.equal(verifyReceipt(r, key.publicKey, 'gw-test'), true);
    assert.equal(verifyReceipt(r, key.publicKey, 'other-gateway'), false);
    assert.equal(verifyReceipt(r, generateKeyPairSync('ed25519').publicKey, 'gw-test'), false);
    for (const forged of [{ ...r, size: r.size + 1 }, { ...r, time: r.time + 1 }, { ...r, root: b64u(emptyRoot()) }, { ...r, index: r.size }, { ...r, index: -1 }]) {
      assert.equal(verifyReceipt(forged, key.publicKey, 'gw-test'), false, JSON.stringify(forged));
    }
  }
  assert.throws(() => log.receipt(2, head), { code: 'ERR_USAGE' });
  // No new entries: the same head, no new signature.
  assert.deepEqual(await log.sync(), head);
  assert.equal((await store.treeHeads()).length, 2);
  await store.close();
});

test('inclusion and consistency proofs verify for every head, across block boundaries', async () => {
  const { store, log } = await openLog(freshDir());
  const heads: TreeHead[] = [(await store.latestTreeHead()) as TreeHead];
  const all: AuditEntry[] = [];
  // Batch sizes chosen so heads land on, just before and just after multiples of 256.
  for (const batch of [1, 2, 5, 120, 127, 1, 255, 1, 1, 254, 3]) {
    const es = Array.from({ length: batch }, (_, j) => entry(all.length + j));
    await store.appendAudit(es);
    all.push(...es);
    heads.push(await log.sync());
  }
  assert.equal(heads.at(-1)?.size, 770);
  const sizes = heads.map((h) => h.size);
  for (const h of heads.slice(1)) {
    const probe = new Set([0, 1, h.size - 1, h.size - 2, 255, 256, 257, 511, 512, 513, Math.floor(h.size / 3)].filter((i) => i >= 0 && i < h.size));
    for (const i of probe) {
      const path = await log.inclusionProof(i, h.size);
      assert.equal(checkInclusion(all[i] as AuditEntry, i, h, path), true, `inclusion ${i}/${h.size}`);
      assert.equal(checkInclusion({ ...(all[i] as AuditEntry), outcome: 'delivered' }, i, h, path), false);
      if (i + 1 < h.size) assert.equal(checkInclusion(all[i] as AuditEntry, i + 1, h, path), false);
    }
  }
  for (const a of heads) {
    for (const b of heads) {
      if (a.size > b.size) continue;
      const path = await log.consistencyProof(a.size, b.size);
      assert.equal(checkConsistency(a, b, path), true, `consistency ${a.size}->${b.size}`);
      if (a.size > 0 && a.size < b.size) assert.equal(checkConsistency({ size: a.size, root: b.root }, b, path), false);
    }
  }
  assert.deepEqual(sizes, [...sizes].sort((x, y) => x - y));
  // Any (index, size), not only the signed sizes: roots from a full in-memory tree of the same entries.
  const full = new MerkleTree();
  for (const e of all) full.append(entryLeafHash(e));
  const node = (level: number, index: number) => full.node(level, index) as Uint8Array;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: all.length }), fc.nat(), fc.nat(), async (size, a, b) => {
      const index = a % size;
      const from = b % (size + 1);
      const at = { size, root: b64u(rootAt(size, node)) };
      assert.equal(checkInclusion(all[index] as AuditEntry, index, at, await log.inclusionProof(index, size)), true);
      assert.equal(checkConsistency({ size: from, root: b64u(rootAt(from, node)) }, at, await log.consistencyProof(from, size)), true);
    }),
    { numRuns: 200 },
  );
  await assert.rejects(log.inclusionProof(0, 771), { code: 'ERR_INVALID_INPUT' });
  await assert.rejects(log.inclusionProof(5, 5), { code: 'ERR_INVALID_INPUT' });
  await assert.rejects(log.consistencyProof(6, 5), { code: 'ERR_INVALID_INPUT' });
  await store.close();
});

test('concurrent appends and syncs never interleave: every head covers what came before its call, and the log verifies', async () => {
  const { store, key, log } = await openLog(freshDir());
  // All appends run before the first sync reads the size: one signature serves all twenty callers.
  const burst = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const [idx] = await store.appendAudit([entry(i)]);
      const h = await log.sync();
      assert.ok((idx as number) < h.size);
      return h;
    }),
  );
  assert.ok(burst.every((h) => h.size === 20));
  assert.equal((await store.treeHeads()).length, 2); // the empty head and one for the burst

  // Appends that land while a sync is running are covered by the next one.
  let n = 20;
  const waves = await Promise.all(
    Array.from({ length: 30 }, async (_, i) => {
      await new Promise((r) => setImmediate(r));
      const idx = n++;
      await store.appendAudit([entry(idx)]);
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
      const h = await log.sync();
      return { idx, h };
    }),
  );
  for (const { idx, h } of waves) assert.ok(idx < h.size, `entry ${idx} not covered by head ${h.size}`);
  const x = await readAuditLog(store);
  assert.equal(verifyAuditLog(x, { key: key.publicKeyB64u }).size, 50);
  await store.close();
});

test('reopening continues the log; entries left unsigned by a crash get a head at open', async () => {
  const dir = freshDir();
  let { store, log } = await openLog(dir);
  await store.appendAudit([entry(0), entry(1), entry(2)]);
  const before = await log.sync();
  await store.appendAudit([entry(3)]); // committed, then the process dies before sync
  await store.close();

  ({ store, log } = await openLog(dir));
  const h = await store.latestTreeHead();
  assert.equal(h?.size, 4);
  assert.equal(checkConsistency(before, h as TreeHead, await log.consistencyProof(before.size, 4)), true);
  await store.close();
});

test('open refuses a store edited, truncated or signed by another key while the gateway was down', async () => {
  const dir = freshDir();
  const { store } = await openLog(dir);
  await store.appendAudit([entry(0), entry(1), entry(2)]);
  await store.close();
  const { store: s2, log } = await openLog(dir);
  await s2.appendAudit([entry(3)]);
  await log.sync();
  await s2.close();

  const db = new Database(join(dir, 'evseal.db'));
  db.prepare("UPDATE audit SET outcome = 'delivered' WHERE idx = 1").run();
  db.close();
  await assert.rejects(openLog(dir), { code: 'ERR_STATE', message: /do not match the tree head at size 4/ });

  const db2 = new Database(join(dir, 'evseal.db'));
  db2.prepare("UPDATE audit SET outcome = 'accepted' WHERE idx = 1").run();
  db2.prepare('DELETE FROM audit WHERE idx = 3').run();
  db2.close();
  await assert.rejects(openLog(dir), { code: 'ERR_STATE', message: /covers 4 entries but the store holds 3/ });

  const db3 = new Database(join(dir, 'evseal.db'));
  db3.prepare("INSERT INTO audit (idx, time, sender, recipient, kind, size, msg_id, outcome) VALUES (3, ?, 'cp-3', 'psp-1', 'payment', 103, 'm3', 'accepted')").run(T0 + 3);
  db3.close();
  const again = await openLog(dir); // restored exactly: accepted again
  await again.store.close();

  rmSync(join(dir, GATEWAY_KEY_FILE));
  await assert.rejects(openLog(dir), { code: 'ERR_STATE', message: /another key/ });
});

test('the gateway key: created once as a 0600 Ed25519 PEM, then loaded; its SPKI round-trips', () => {
  const dir = freshDir();
  const k1 = loadOrCreateGatewayKey(dir);
  assert.equal(k1.id, 'gateway');
  assert.equal(statSync(join(dir, GATEWAY_KEY_FILE)).mode & 0o777, 0o600);
  const k2 = loadOrCreateGatewayKey(dir, 'gw-2');
  assert.equal(k2.publicKeyB64u, k1.publicKeyB64u);
  assert.equal(k2.id, 'gw-2');
  assert.ok(publicKeyFromB64u(k1.publicKeyB64u, 'key').equals(k1.publicKey));
  assert.throws(() => publicKeyFromB64u(k1.publicKeyB64u + 'A', 'key'), { code: 'ERR_INVALID_INPUT' });
  assert.throws(() => loadOrCreateGatewayKey(dir, ''), { code: 'ERR_USAGE' });

  writeFileSync(join(dir, GATEWAY_KEY_FILE), 'not a key');
  assert.throws(() => loadOrCreateGatewayKey(dir), { code: 'ERR_STATE' });
  writeFileSync(join(dir, GATEWAY_KEY_FILE), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  assert.throws(() => loadOrCreateGatewayKey(dir), { code: 'ERR_STATE', message: /Ed25519/ });
});
