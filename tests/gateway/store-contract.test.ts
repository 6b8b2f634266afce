// One contract for the GatewayStore interface, run against both backends:
// the embedded SQLite store and the cluster's PostgreSQL store (the real
// server on 127.0.0.1:5432, each run in a schema of its own, dropped after).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuditLog } from '../../src/gateway/audit/log.js';
import { readAuditLog, verifyAuditLog } from '../../src/gateway/audit/export.js';
import { PostgresStore } from '../../src/gateway/store/postgres.js';
import { PackageHolders } from '../../src/gateway/firmware/holders.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { AuditEntry, GatewayStore, NewMessage, QueuedMessage } from '../../src/gateway/store/store.js';
import { freshSchema, servicesMissing } from '../cluster/services.js';
import { StoreTokenBuckets } from '../../src/gateway/token-buckets.js';

// Awaited before any test or hook is registered, so that the hooks below run after every test.
const pgSkip = await servicesMissing({ pg: true });
const T0 = Date.parse('2026-03-01T12:00:00Z');
const tmp = mkdtempSync(join(tmpdir(), 'evseal-store-contract-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const drops: (() => Promise<void>)[] = [];
after(async () => {
  for (const d of drops) await d();
});

let n = 0;
const msg = (sender: string, recipient: string, msgId: string, o: Partial<NewMessage> = {}): NewMessage => ({
  msgId,
  sender,
  recipient,
  kind: 'credentials',
  format: 'envelope',
  body: `sealed-${msgId}-${n++}`,
  expires: T0 + 60_000,
  created: T0,
  ...o,
});
const audited = (m: NewMessage, outcome = 'accepted'): AuditEntry => ({ time: T0, sender: m.sender, recipient: m.recipient, kind: m.kind, size: m.body.length, msgId: m.msgId, outcome });
const auditOf = (outcome: string) => (m: QueuedMessage): AuditEntry => ({ time: T0 + 1, sender: m.sender, recipient: m.recipient, kind: m.kind, size: m.body.length, msgId: m.msgId, outcome });
const enq = (s: GatewayStore, ms: NewMessage[]) => s.enqueue(ms.map((m) => ({ msg: m, audit: audited(m) })));

type Open = () => Promise<GatewayStore>;

function contract(name: string, open: Open, skip: string | undefined): void {
  const t = (title: string, fn: (s: GatewayStore) => Promise<void>) =>
    test(`${name}: ${title}`, { skip }, async () => {
      const s = await open();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  t('stations and their CSMS state', async (s) => {
    assert.equal(await s.getStation('CP-1'), undefined);
    await s.putStation({ id: 'CP-2', passwordHash: 'h2', created: T0 });
    await s.putStation({ id: 'CP-1', certFingerprint: 'sha256:aa', created: T0 + 1 });
    await s.putStation({ id: 'CP-1', passwordHash: 'h1', created: T0 + 5 });
    assert.deepEqual(await s.getStation('CP-1'), { id: 'CP-1', passwordHash: 'h1', certFingerprint: undefined, created: T0 + 1 });
    assert.deepEqual((await s.listStations()).map((x) => x.id), ['CP-1', 'CP-2']);
    assert.equal(await s.getStationState('CP-1'), undefined);
    await s.putStationState('CP-1', { booted: true, n: 1 });
    await s.putStationState('CP-1', { booted: false });
    assert.deepEqual(await s.getStationState('CP-1'), { booted: false });
    // writes of several stations at once (a fleet reconnecting): each resolves once stored, with the state as passed
    // (a station's own writes are never concurrent: the CSMS applies them one after another)
    const state = { n: 2 };
    const writes = [s.putStationState('CP-2', state), s.putStationState('CP-3', { n: 3 })];
    state.n = 99; // changed after the call
    await Promise.all(writes);
    assert.deepEqual([await s.getStationState('CP-2'), await s.getStationState('CP-3')], [{ n: 2 }, { n: 3 }]);
    // many at once (a rollout's stations): registered ones only, with their state or none yet
    await s.putStation({ id: 'CP-4', passwordHash: 'h4', created: T0 });
    const many = await s.stationStates(['CP-1', 'CP-3', 'CP-4', 'CP-404', 'CP-2', 'CP-1']);
    assert.deepEqual([...many.entries()].sort(([a], [b]) => a.localeCompare(b)), [['CP-1', { booted: false }], ['CP-2', { n: 2 }], ['CP-4', undefined]]);
    assert.deepEqual(await s.stationStates([]), new Map());
  });

  t('enqueue: strictly increasing seqs, one acceptance per (sender, msgId), audited in the same commit', async (s) => {
    const a = msg('prov', 'CP-1', 'm1');
    const b = msg('prov', 'CP-1', 'm2');
    const r1 = await enq(s, [a, b, msg('prov', 'CP-1', 'm1')]);
    assert.equal(r1.results[0]!.duplicate, false);
    assert.equal(r1.results[1]!.duplicate, false);
    assert.ok(r1.results[1]!.seq > r1.results[0]!.seq);
    assert.deepEqual(r1.results[2], { seq: r1.results[0]!.seq, duplicate: true }, 'a repeat inside one batch is a duplicate');
    assert.deepEqual(r1.auditIndexes, [0, 1, undefined]);
    const r2 = await enq(s, [msg('prov', 'CP-1', 'm2'), msg('other', 'CP-1', 'm2')]);
    assert.deepEqual(r2.results[0], { seq: r1.results[1]!.seq, duplicate: true }, 'a resend is the earlier acceptance');
    assert.equal(r2.results[1]!.duplicate, false, 'msgIds are per sender');
    assert.deepEqual(r2.auditIndexes, [undefined, 2]);
    assert.equal(await s.auditSize(), 3);
    assert.deepEqual((await s.auditEntries(0, 3)).map((e) => e.msgId), ['m1', 'm2', 'm2']);
    assert.equal(await s.depth('CP-1'), 3);
    const q = await s.message(r1.results[0]!.seq);
    assert.equal(q?.body, a.body);
    assert.equal(q?.attempts, 0);
  });

  t('pending: in seq order, after a cursor, bounded, without the expired', async (s) => {
    const ms = [msg('p', 'R', 'a'), msg('q', 'R', 'b'), msg('p', 'X', 'c'), msg('p', 'R', 'd', { expires: T0 + 10 }), msg('q', 'R', 'e')];
    const { results } = await enq(s, ms);
    const seqs = results.map((r) => r.seq);
    const all = await s.pending('R', 0, 100, T0 + 100);
    assert.deepEqual(all.map((m) => m.msgId), ['a', 'b', 'e']);
    assert.deepEqual(all[0], { ...ms[0]!, seq: seqs[0]!, attempts: 0 });
    assert.deepEqual((await s.pending('R', seqs[0]!, 1, T0 + 100)).map((m) => m.msgId), ['b']);
    assert.deepEqual((await s.pending('R', 0, 100, T0)).map((m) => m.msgId), ['a', 'b', 'd', 'e'], 'not yet expired');
    assert.deepEqual(await s.pending('nobody', 0, 10, T0), []);
  });

  t('ack: removes only the recipient\'s messages, audits each in the order given, ignores unknown seqs', async (s) => {
    const { results } = await enq(s, [msg('p', 'R', 'a'), msg('p', 'R', 'b'), msg('p', 'S', 'c')]);
    const [a, b, c] = results.map((r) => r.seq) as [number, number, number];
    const r = await s.ack('R', [b, c, a, 999_999], auditOf('delivered'));
    assert.deepEqual(r.removed.map((m) => m.msgId), ['b', 'a'], 'c belongs to S');
    assert.deepEqual(r.auditIndexes, [3, 4]);
    assert.deepEqual((await s.auditEntries(3, 5)).map((e) => [e.msgId, e.outcome]), [['b', 'delivered'], ['a', 'delivered']]);
    assert.deepEqual((await s.ack('R', [a], auditOf('delivered'))).removed, [], 'a second ack removes nothing');
    const batch = await s.ackBatch([{ recipient: 'S', seqs: [c] }, { recipient: 'R', seqs: [] }], auditOf('delivered'));
    assert.deepEqual(batch.map((x) => x.removed.map((m) => m.msgId)), [['c'], []]);
    assert.deepEqual(batch[0]!.auditIndexes, [5]);
    assert.equal(await s.depth('R'), 0);
    assert.equal(await s.auditSize(), 6);
  });

  t('attempts, dead letters and the notice to the sender', async (s) => {
    const { results } = await enq(s, [msg('prov', 'R', 'poison'), msg('prov', 'R', 'fine')]);
    const seq = results[0]!.seq;
    assert.equal(await s.addAttempt('R', seq), 1);
    assert.equal(await s.addAttempt('R', seq), 2);
    assert.equal(await s.addAttempt('R', 123_456_789), 0);
    // another recipient can neither count attempts against R's message nor dead-letter it
    assert.equal(await s.addAttempt('other', seq), 0);
    assert.equal(await s.deadLetter('other', seq, 'not theirs', auditOf('dead-lettered'), T0 + 4), undefined);
    const m = await s.deadLetter('R', seq, 'did not open', auditOf('dead-lettered'), T0 + 5);
    assert.equal(m?.msgId, 'poison');
    assert.equal(await s.deadLetter('R', seq, 'again', auditOf('dead-lettered'), T0 + 6), undefined);
    assert.deepEqual((await s.pending('R', 0, 10, T0)).map((x) => x.msgId), ['fine']);
    const dead = await s.deadLetters('R');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.reason, 'did not open');
    assert.equal(dead[0]!.attempts, 2);
    assert.equal((await s.deadLetters()).length, 1);
    assert.deepEqual(await s.deadLetters('other'), []);
    const ns = await s.notices('prov', 0);
    assert.deepEqual(ns.map((x) => [x.type, x.msgId, x.peer, x.reason, x.created]), [['dead-letter', 'poison', 'R', 'did not open', T0 + 5]]);
    await s.ackNotices('other', ns[0]!.seq); // only the notice's own recipient acknowledges it
    assert.equal(await s.forgetNotices(T0 + 5), 0, 'kept until strictly older than the cut');
    assert.equal((await s.notices('prov', 0)).length, 1);
    await s.ackNotices('prov', ns[0]!.seq);
    assert.deepEqual(await s.notices('prov', 0), []);
    assert.equal((await s.auditEntries(2, 3))[0]!.outcome, 'dead-lettered');
  });

  t('expiry: drops, notifies and audits; the dedup record lasts until expiry', async (s) => {
    await enq(s, [msg('p', 'R', 'short', { expires: T0 + 10 }), msg('p', 'R', 'long', { expires: T0 + 1000 })]);
    assert.deepEqual(await s.expire(T0 + 5, auditOf('expired')), []);
    assert.deepEqual((await enq(s, [msg('p', 'R', 'short', { expires: T0 + 10 })])).results[0]!.duplicate, true, 'still remembered before expiry');
    const shortSeq = await s.acceptedSeq('p', 'short');
    assert.ok(shortSeq !== undefined && shortSeq > 0, 'acceptedSeq names the seq of a remembered message');
    assert.equal(await s.acceptedSeq('q', 'short'), undefined, 'per sender');
    const gone = await s.expire(T0 + 10, auditOf('expired'));
    assert.equal(await s.acceptedSeq('p', 'short'), undefined, 'forgotten with the dedup record');
    assert.equal(typeof (await s.acceptedSeq('p', 'long')), 'number');
    assert.deepEqual(gone.map((m) => m.msgId), ['short']);
    assert.deepEqual((await s.notices('p', 0)).map((x) => [x.type, x.msgId]), [['expired', 'short']]);
    assert.equal(await s.forgetNotices(T0 + 11), 1, 'an unacknowledged notice goes after its retention');
    assert.deepEqual(await s.notices('p', 0), []);
    assert.equal((await s.auditEntries(2, 3))[0]!.outcome, 'expired');
    assert.equal(await s.depth('R'), 1);
    const again = await enq(s, [msg('p', 'R', 'short', { expires: T0 + 500 })]);
    assert.equal(again.results[0]!.duplicate, false, 'after expiry the record is gone');
  });

  t('directory: bundles, roles, one-time prekeys claimed exactly once, CRLs by number', async (s) => {
    assert.equal(await s.getBundle('psp-1'), undefined);
    await s.putBundle('psp-1', 'psp', '{"v":1}', T0);
    await s.putBundle('psp-1', 'psp', '{"v":2}', T0 + 1);
    assert.equal(await s.getBundle('psp-1'), '{"v":2}');
    assert.equal(await s.bundleRole('psp-1'), 'psp');
    assert.equal(await s.addOneTimePrekeys('psp-1', [{ kid: 'k1', json: 'j1' }, { kid: 'k2', json: 'j2' }, { kid: 'k1', json: 'j1' }]), 2);
    assert.equal(await s.claimOneTimePrekey('psp-1'), 'j1');
    assert.equal(await s.addOneTimePrekeys('psp-1', [{ kid: 'k1', json: 'j1' }, { kid: 'k3', json: 'j3' }]), 2, 'a claimed kid is never taken back');
    assert.equal(await s.claimOneTimePrekey('psp-1'), 'j2');
    assert.equal(await s.claimOneTimePrekey('psp-1'), 'j3');
    assert.equal(await s.claimOneTimePrekey('psp-1'), undefined);
    assert.equal(await s.countOneTimePrekeys('psp-1'), 0);
    assert.equal(await s.putCrl('op', 5n, 'crl5'), true);
    assert.equal(await s.putCrl('op', 5n, 'crl5b'), false);
    assert.equal(await s.putCrl('op', 4n, 'crl4'), false);
    assert.equal(await s.putCrl('op', 2n ** 70n, 'big'), true);
    assert.equal(await s.putCrl('a-psp', 1n, 'p1'), true);
    assert.deepEqual(await s.listCrls(), [
      { anchor: 'a-psp', crlNumber: 1n, pem: 'p1' },
      { anchor: 'op', crlNumber: 2n ** 70n, pem: 'big' },
    ]);
  });

  t('audit entries, tree heads and settings', async (s) => {
    const e = (i: number): AuditEntry => ({ time: T0 + i, sender: 's', recipient: 'r', kind: 'k', size: i, msgId: `m${i}`, outcome: 'refused' });
    assert.equal(await s.auditSize(), 0);
    assert.deepEqual(await s.appendAudit([e(0), e(1)]), [0, 1]);
    assert.deepEqual(await s.appendAudit([e(2)]), [2]);
    assert.deepEqual(await s.appendAudit([]), []);
    assert.deepEqual(await s.auditEntries(1, 3), [e(1), e(2)]);
    assert.equal(await s.latestTreeHead(), undefined);
    await s.putTreeHead({ size: 1, root: 'r1', time: T0, sig: 's1' });
    await s.putTreeHead({ size: 3, root: 'r3', time: T0 + 2, sig: 's3' });
    assert.deepEqual(await s.latestTreeHead(), { size: 3, root: 'r3', time: T0 + 2, sig: 's3' });
    assert.deepEqual((await s.treeHeads()).map((h) => h.size).filter((x) => x === 3), [3]);
    assert.equal(await s.getSetting('audit.gateway'), undefined);
    await s.putSetting('audit.gateway', 'gw');
    await s.putSetting('audit.gateway', 'gw2');
    assert.equal(await s.getSetting('audit.gateway'), 'gw2');
    // the first writer of a key wins; later ones read its value
    assert.equal(await s.putSettingIfAbsent('firmware.url-key', 'k1'), 'k1');
    assert.equal(await s.putSettingIfAbsent('firmware.url-key', 'k2'), 'k1');
    // compare and set: absent, then the value held, never a stale one
    assert.equal(await s.replaceSetting('rollout.r1', undefined, 'A1'), true);
    assert.equal(await s.replaceSetting('rollout.r1', undefined, 'B1'), false);
    assert.equal(await s.replaceSetting('rollout.r1', 'A1', 'B1'), true);
    assert.equal(await s.replaceSetting('rollout.r1', 'A1', 'A2'), false);
    assert.equal(await s.getSetting('rollout.r1'), 'B1');
    // removal, unconditional or of exactly the value held; one of two removals of a key sees it
    assert.equal(await s.deleteSetting('rollout.r1', 'A1'), false);
    assert.equal(await s.getSetting('rollout.r1'), 'B1');
    const both = await Promise.all([s.deleteSetting('rollout.r1', 'B1'), s.deleteSetting('rollout.r1', 'B1')]);
    assert.deepEqual(both.sort(), [false, true]);
    assert.equal(await s.getSetting('rollout.r1'), undefined);
    await s.putSetting('rollout.r2', 'x');
    assert.equal(await s.deleteSetting('rollout.r2'), true);
    assert.equal(await s.deleteSetting('rollout.r2'), false);
    // a prefix is matched literally: LIKE and GLOB characters in it are plain characters
    for (const k of ['p.a', 'p.b', 'p_c', 'p%', 'q.a', 'p']) await s.putSetting(k, `v-${k}`);
    assert.deepEqual(await s.settingsWithPrefix('p.'), [['p.a', 'v-p.a'], ['p.b', 'v-p.b']]);
    assert.deepEqual(await s.settingsWithPrefix('p%'), [['p%', 'v-p%']]);
    assert.deepEqual(await s.settingsWithPrefix('p_'), [['p_c', 'v-p_c']]);
    assert.deepEqual(await s.settingsWithPrefix('zz'), []);
    // several at once: those set, each once
    assert.deepEqual(new Map(await s.getSettings(['p.b', 'nope', 'p.a', 'p.a'])), new Map([['p.a', 'v-p.a'], ['p.b', 'v-p.b']]));
    assert.deepEqual(await s.getSettings([]), []);
    // where a store versions its settings (PostgreSQL), a write makes a new version and nothing else does
    if (s.settingVersions) {
      const v1 = new Map(await s.settingVersions('p.'));
      assert.deepEqual([...v1.keys()], ['p.a', 'p.b']);
      await s.putSetting('q.a', 'other');
      await s.getSetting('p.a');
      assert.deepEqual(new Map(await s.settingVersions('p.')), v1, 'reads and other keys leave versions alone');
      await s.putSetting('p.b', 'v2');
      const v2 = new Map(await s.settingVersions('p.'));
      assert.equal(v2.get('p.a'), v1.get('p.a'));
      assert.notEqual(v2.get('p.b'), v1.get('p.b'));
      await s.putSetting('p.b', 'v2');
      assert.notEqual(new Map(await s.settingVersions('p.')).get('p.b'), v2.get('p.b'), 'the same value written again is a new version too');
    }
  });

  t('firmware package holders: one record per node, deletion marked for the whole cluster', async (s) => {
    const pid = 'ab'.repeat(16);
    const digest = new Uint8Array(32).fill(7);
    const a = new PackageHolders(s, () => 'http://a:1');
    const b = new PackageHolders(s, () => 'http://b:1');
    await a.record(pid, digest);
    await b.record(pid, digest);
    assert.deepEqual((await a.of(pid)).map((h) => h.node).sort(), ['http://a:1', 'http://b:1']);
    assert.deepEqual(await a.others(pid), ['http://b:1']);
    assert.deepEqual((await a.of(pid))[0]!.sha256, digest);
    // a node forgetting its copy leaves the other's record
    await b.forget(pid);
    assert.deepEqual(await a.others(pid), []);
    assert.deepEqual((await b.of(pid)).map((h) => h.node), ['http://a:1']);
    // deleted: marked, every record cleared; an upload again lifts the mark
    assert.equal(await b.forgetEverywhere(pid, T0), true);
    assert.equal(await a.deleted(pid), true);
    assert.deepEqual(await a.of(pid), []);
    assert.deepEqual(await a.all(), { held: new Map(), deleted: new Set([pid]) });
    // a copy recorded after the deletion does not lift the mark; an upload does
    await a.record(pid, digest);
    assert.equal(await b.deleted(pid), true);
    await a.record(pid, digest, { undelete: true });
    assert.equal(await b.deleted(pid), false);
    assert.deepEqual(await b.others(pid), ['http://a:1']);
    // a record of the earlier form (the address alone) is still a holder, one without a digest
    const old = 'cd'.repeat(16);
    await s.putSetting(`package-holder.${old}`, 'http://c:1');
    assert.deepEqual(await a.of(old), [{ node: 'http://c:1' }]);
    assert.deepEqual([...(await a.all()).held.keys()].sort(), [pid, old].sort());
  });

  t('firmware package holders: a node forgotten loses every record; one back records what it holds', async (s) => {
    const [p1, p2, p3] = ['a1', 'b2', 'c3'].map((x) => x.repeat(16)) as [string, string, string];
    const digest = new Uint8Array(32).fill(9);
    const a = new PackageHolders(s, () => 'http://a:1');
    const b = new PackageHolders(s, () => 'http://b:1');
    for (const p of [p1, p2]) await b.record(p, digest);
    await a.record(p1, digest);
    assert.equal(await a.forgetNode('http://b:1'), 2);
    assert.deepEqual((await a.of(p1)).map((h) => h.node), ['http://a:1'], "a's record stays");
    assert.deepEqual(await a.of(p2), []);
    assert.equal(await a.forgetNode('http://b:1'), 0);
    // b back: records what it holds and has no record of, except a package deleted meanwhile
    await a.record(p3, digest);
    await a.forgetEverywhere(p3, T0);
    const digests: string[] = [];
    assert.deepEqual(await b.recordHeld([p1, p2, p3], async (p) => (digests.push(p), digest)), [p1, p2]);
    assert.deepEqual(digests, [p1, p2]);
    assert.deepEqual((await a.of(p1)).map((h) => h.node).sort(), ['http://a:1', 'http://b:1']);
    assert.deepEqual((await a.of(p2))[0], { node: 'http://b:1', sha256: digest });
    assert.deepEqual(await a.of(p3), []);
    assert.deepEqual(await b.recordHeld([p1, p2, p3], async () => digest), [], 'recorded already');
  });

  t('the audit log over this store verifies end to end and survives a reopen', async (s) => {
    const key = { id: 'gw-contract', ...generateKeyPairSync('ed25519') };
    let t = T0;
    const log = await AuditLog.open(s, key, () => (t += 1000));
    const { auditIndexes } = await enq(s, [msg('p', 'R', 'a'), msg('p', 'R', 'b')]);
    const head = await log.sync();
    assert.equal(head.size, 2);
    const receipt = log.receipt(auditIndexes[1]!, head);
    assert.equal(receipt.index, 1);
    await s.appendAudit([{ time: T0, sender: 'x', recipient: 'y', kind: 'k', size: 1, msgId: 'z', outcome: 'refused' }]);
    await log.sync();
    const summary = verifyAuditLog(await readAuditLog(s), { expect: { size: head.size, root: head.root } });
    assert.equal(summary.size, 3);
    assert.equal(summary.unsigned, 0);
    assert.equal((await AuditLog.open(s, key, () => (t += 1000))) instanceof AuditLog, true, 'a reopen checks the stored head against the entries');
  });
}

const sqlOpen: Open = async () => new SqliteStore(mkdtempSync(join(tmp, 'sqlite-')));
contract('sqlite', sqlOpen, undefined);

test('sqlite: a station state still being batched reads back at once, and is written at close', async () => {
  const dir = mkdtempSync(join(tmp, 'sqlite-close-'));
  const a = new SqliteStore(dir);
  const pending = a.putStationState('CP-9', { booted: true });
  assert.deepEqual(await a.getStationState('CP-9'), { booted: true });
  await a.close();
  await pending;
  const b = new SqliteStore(dir);
  assert.deepEqual(await b.getStationState('CP-9'), { booted: true });
  await b.close();
});

const pgOpen: Open = async () => {
  const sc = freshSchema('contract');
  drops.push(() => sc.drop());
  return PostgresStore.open({ url: sc.url });
};
contract('postgres', pgOpen, pgSkip);

test('postgres: two nodes appending at once keep one gap-free audit log, commit-ordered seqs and one acceptance per message', { skip: pgSkip }, async () => {
  const sc = freshSchema('nodes');
  drops.push(() => sc.drop());
  const [a, b] = await Promise.all([PostgresStore.open({ url: sc.url }), PostgresStore.open({ url: sc.url })]);
  try {
    assert.equal(await a.schemaVersion(), 2, 'two nodes starting together migrate once');
    const rounds = 25;
    const work = (s: PostgresStore, tag: string) =>
      Promise.all(
        Array.from({ length: rounds }, (_, i) =>
          // the same (sender, msgId) from both nodes: exactly one of the two is fresh
          enq(s, [msg('p', 'R', `shared-${i}`), msg(`${tag}-sender`, 'R', `own-${i}`)]),
        ),
      );
    const [ra, rb] = await Promise.all([work(a, 'a'), work(b, 'b')]);
    const fresh = [...ra, ...rb].flatMap((r) => r.results.filter((x) => !x.duplicate).map((x) => x.seq));
    assert.equal(fresh.length, rounds * 3, 'each shared message accepted once, each own message once');
    assert.equal(new Set(fresh).size, fresh.length);
    for (let i = 0; i < rounds; i++) assert.equal(ra[i]!.results[0]!.seq, rb[i]!.results[0]!.seq, 'both nodes name the one acceptance');
    const size = await a.auditSize();
    assert.equal(size, rounds * 3);
    const entries = await b.auditEntries(0, size);
    assert.equal(entries.length, size, 'no gap in the audit indexes');
    const pending = await a.pending('R', 0, 1000, T0);
    assert.deepEqual(pending.map((m) => m.seq), [...fresh].sort((x, y) => x - y));
    // seq order is audit order: the i-th accepted entry is the i-th seq
    assert.deepEqual(entries.map((e) => `${e.sender}/${e.msgId}`), pending.map((m) => `${m.sender}/${m.msgId}`));
  } finally {
    await a.close();
    await b.close();
  }
});

test('postgres: migrations are recorded, re-running them is a no-op, a newer schema is refused', { skip: pgSkip }, async () => {
  const sc = freshSchema('migr');
  drops.push(() => sc.drop());
  const s1 = await PostgresStore.open({ url: sc.url });
  await s1.putSetting('k', 'v');
  await s1.close();
  const s2 = await PostgresStore.open({ url: sc.url });
  assert.equal(await s2.getSetting('k'), 'v');
  assert.equal(await s2.schemaVersion(), 2);
  await s2.close();
  const pgmod = await import('pg');
  const c = new pgmod.default.Client({ connectionString: sc.url.replace(/[?&]schema=.*/, ''), options: `-c search_path=${sc.schema}` });
  await c.connect();
  // a database at version 1 (before the quotas) is brought to 2, its data kept
  await c.query('DROP TABLE quotas');
  await c.query('DELETE FROM evseal_migrations WHERE version = 2');
  const s3 = await PostgresStore.open({ url: sc.url });
  assert.equal(await s3.schemaVersion(), 2);
  assert.equal(await s3.getSetting('k'), 'v');
  await s3.quotaSpend('q', 2, 1);
  assert.equal(Math.round(await s3.quotaTokens('q', 2, 1)), 1);
  await s3.close();
  await c.query("INSERT INTO evseal_migrations (version, name, applied) VALUES (999, 'future', 0)");
  await c.end();
  await assert.rejects(PostgresStore.open({ url: sc.url }), /schema version 999, newer/);
});

test('postgres: budgets for the whole cluster: spent through one node, seen through another; debt floored at one burst; refilled by the server clock; full ones swept', { skip: pgSkip }, async () => {
  const sc = freshSchema('quota');
  drops.push(() => sc.drop());
  const [a, b] = await Promise.all([PostgresStore.open({ url: sc.url }), PostgresStore.open({ url: sc.url })]);
  const log = pino({ level: 'silent' });
  try {
    const login = (s: PostgresStore) => new StoreTokenBuckets(s, { prefix: 'login ', burst: 3, perMinute: 1, log });
    const [la, lb] = [login(a), login(b)];
    assert.equal(await la.wait('10.0.0.1 CP-1'), 0, 'never spent: a full budget');
    await la.spend('10.0.0.1 CP-1');
    await lb.spend('10.0.0.1 CP-1');
    assert.equal(await lb.wait('10.0.0.1 CP-1'), 0, 'one left');
    await la.spend('10.0.0.1 CP-1');
    const w = await lb.wait('10.0.0.1 CP-1');
    assert.ok(w >= 59 && w <= 60, `one per minute: the next in a minute (${w})`);
    // ten more at once through both nodes: each counted, the debt stops at one burst (3 tokens short, 4 to the next)
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? la : lb).spend('10.0.0.1 CP-1')));
    const debt = await la.wait('10.0.0.1 CP-1');
    assert.ok(debt >= 239 && debt <= 240, `floored at one burst of debt (${debt})`);
    // other keys, and the same key under another prefix, are budgets of their own
    assert.equal(await la.wait('10.0.0.2 CP-1'), 0);
    assert.equal(await new StoreTokenBuckets(a, { prefix: 'otk ', burst: 3, perMinute: 1, log }).wait('10.0.0.1 CP-1'), 0);
    // refill by the server's clock: one token per ms
    const fast = new StoreTokenBuckets(b, { prefix: 'fast ', burst: 2, perMinute: 60_000, log });
    for (let i = 0; i < 3; i++) await fast.spend('k');
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(await fast.wait('k'), 0);
    // the sweep removes the full bucket, not the spent one
    assert.equal(await a.quotaSweep(), 1);
    const w2 = await la.wait('10.0.0.1 CP-1');
    assert.ok(w2 >= 238 && w2 <= 240, `kept (${w2})`);
  } finally {
    await a.close();
    await b.close();
  }
});
