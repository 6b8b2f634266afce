// Entries handed to the audit log by the committer (AuditLog.committed, as
// the router does) instead of being read back from the store: the tree,
// heads and proofs come out the same, gaps (entries appended by someone
// else) are read from the store, and a handed entry that differs from the
// stored one is caught when the log is reopened.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AuditLog, checkInclusion } from '../../src/gateway/audit/log.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/identity.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { AuditEntry } from '../../src/gateway/store/store.js';

const root = mkdtempSync(join(tmpdir(), 'evseal-audit-handoff-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const T0 = Date.parse('2026-03-01T12:00:00Z');
const entry = (i: number): AuditEntry => ({ time: T0 + i, sender: `cp-${i % 5}`, recipient: 'psp-1', kind: 'payment', size: 10 + i, msgId: `m${i}`, outcome: 'accepted' });

async function open(dir: string) {
  const store = new SqliteStore(dir);
  let t = T0;
  const log = await AuditLog.open(store, loadOrCreateGatewayKey(dir, 'gw-test'), () => (t += 1000));
  return { store, log };
}

test('handed entries, read-back entries and gaps between them give the same roots as reading everything', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.record({ n: fc.integer({ min: 1, max: 40 }), handed: fc.boolean() }), { minLength: 1, maxLength: 8 }), async (steps) => {
      const a = await open(join(root, `p${dirs++}`));
      const b = await open(join(root, `p${dirs++}`));
      try {
        let next = 0;
        for (const { n, handed } of steps) {
          const es = Array.from({ length: n }, () => entry(next++));
          const ia = await a.store.appendAudit(es);
          await b.store.appendAudit(es);
          // a: some batches handed over (sync told how far), others left for the store read
          if (handed) a.log.committed(ia.map((index, k) => ({ index, entry: es[k]! })));
          const ha = handed ? await a.log.sync(ia[ia.length - 1]! + 1) : await a.log.sync();
          const hb = await b.log.sync();
          assert.equal(ha.size, hb.size);
          assert.equal(ha.root, hb.root);
        }
        const size = next;
        const i = size - 1;
        const path = await a.log.inclusionProof(i, size);
        const head = (await a.store.latestTreeHead())!;
        assert.equal(checkInclusion(entry(i), i, head, path), true);
      } finally {
        await a.store.close();
        await b.store.close();
      }
    }),
    { numRuns: 15 },
  );
});

test('sync(upTo) covers at least upTo; entries appended by others below it are read from the store', async () => {
  const { store, log } = await open(join(root, `p${dirs++}`));
  try {
    const other = await store.appendAudit([entry(0), entry(1)]); // e.g. a connection refusal: never handed over
    const mine = await store.appendAudit([entry(2)]);
    log.committed([{ index: mine[0]!, entry: entry(2) }]);
    const h = await log.sync(mine[0]! + 1);
    assert.deepEqual(other, [0, 1]);
    assert.equal(h.size, 3);
    const reread = await open(join(root, `p${dirs++}`));
    await reread.store.appendAudit([entry(0), entry(1), entry(2)]);
    assert.equal((await reread.log.sync()).root, h.root);
    await reread.store.close();
  } finally {
    await store.close();
  }
});

test('a handed entry that is not what the store holds is refused when the log is reopened', async () => {
  const dir = join(root, `p${dirs++}`);
  const first = await open(dir);
  const [idx] = await first.store.appendAudit([entry(0)]);
  first.log.committed([{ index: idx!, entry: { ...entry(0), size: 999 } }]); // a committer that lied
  await first.log.sync(idx! + 1);
  await first.store.close(); // writes the pending head
  await assert.rejects(open(dir), (e: Error & { code?: string }) => e.code === 'ERR_STATE');
});
