// Which node holds a rollout, for two rollout managers (two cluster nodes) over
// one store: started with the same id on both at once, one starts it and the
// other answers the same rollout (one set of calls goes out); another owner
// cannot take the id; the rollout of a node that is gone is taken over by
// exactly one node; the node it was taken from drops it, whether at its next
// write of the rollout or at its next look at the store. And a package
// uploaded again after a deletion is not dropped as a copy of the deleted one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { PackageIndex } from '../../src/firmware/package.js';
import { PackageHolders } from '../../src/gateway/firmware/holders.js';
import { PackageStore } from '../../src/gateway/firmware/packages.js';
import { PackageReplication } from '../../src/gateway/firmware/replication.js';
import { PostgresStore } from '../../src/gateway/store/postgres.js';
import { SqliteStore } from '../../src/gateway/store/sqlite.js';
import type { GatewayStore } from '../../src/gateway/store/store.js';
import { EvsealError } from '../../src/core/errors.js';
import { owner, PID, rolloutWorld } from './rollout-world.js';
import { freshSchema, servicesMissing } from '../cluster/services.js';

const tmp = mkdtempSync(join(tmpdir(), 'evseal-rollout-holders-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const holderOf = async (store: Pick<GatewayStore, 'getSetting'>, id: string) => (JSON.parse((await store.getSetting(`rollout.${id}`))!) as { node: string }).node;

test('the same rollout id started on two nodes at once: one starts it, the other answers it; another owner cannot take the id', async () => {
  const { store, calls, a, b } = await rolloutWorld(tmp);
  const req = { id: 'r-1', packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 };
  const [ra, rb] = await Promise.all([a.m.start(owner, req), b.m.start(owner, req)]);
  assert.equal(calls.length, 1, `one set of calls: ${calls.join(', ')}`);
  assert.equal(ra.created, rb.created);
  assert.equal(ra.requestId, rb.requestId);
  await Promise.all([a.m.flush(), b.m.flush()]);
  const holder = await holderOf(store, 'r-1');
  assert.equal(calls[0]!.split(':')[0], holder.slice('http://'.length));
  assert.equal(existsSync(a.file('r-1')), holder === 'http://a');
  assert.equal(existsSync(b.file('r-1')), holder === 'http://b');
  await assert.rejects(b.m.start({ ...owner, id: 'prov-2' }, { ...req, id: 'r-1' }), (e: EvsealError) => e.code === 'ERR_INVALID_INPUT');
  await store.close();
});

test("a gone node's open rollout is taken over by one node; the node it was taken from drops it", async () => {
  const { store, a, b } = await rolloutWorld(tmp);
  const r = await a.m.start(owner, { id: 'r-2', packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 });
  await a.m.flush();
  // nobody is gone: nothing moves
  assert.deepEqual(await b.m.syncHolders(new Set()), []);
  assert.deepEqual(await b.m.syncHolders(new Set(['http://elsewhere'])), []);
  // a is gone for b
  assert.deepEqual(await b.m.syncHolders(new Set(['http://a'])), ['r-2']);
  assert.equal(await holderOf(store, 'r-2'), 'http://b');
  assert.ok(existsSync(b.file('r-2')));
  assert.deepEqual(await b.m.syncHolders(new Set(['http://a'])), [], 'taken once');
  // b now applies the station's reports
  b.m.firmwareStatus('CP-1', 'Downloading', r.requestId);
  await b.m.flush();
  assert.equal((await b.m.get(owner, 'r-2')).stations['CP-1']!.status, 'Downloading');
  // a, not gone after all, applies a report and writes the rollout: its write finds b's copy, and a drops it
  a.m.firmwareStatus('CP-1', 'Downloaded', r.requestId);
  await a.m.flush();
  assert.equal(existsSync(a.file('r-2')), false);
  assert.equal(await holderOf(store, 'r-2'), 'http://b');
  assert.equal((await a.m.get(owner, 'r-2')).stations['CP-1']!.status, 'Downloading', "a answers from b's copy");
  await store.close();
});

test('a node back after a takeover drops the rollout at its first look at the store', async () => {
  const { store, a, b } = await rolloutWorld(tmp);
  await a.m.start(owner, { id: 'r-3', packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 });
  await a.m.flush();
  assert.deepEqual(await b.m.syncHolders(new Set(['http://a'])), ['r-3']);
  assert.ok(existsSync(a.file('r-3')));
  assert.deepEqual(await a.m.syncHolders(new Set()), []);
  assert.equal(existsSync(a.file('r-3')), false);
  assert.equal(await holderOf(store, 'r-3'), 'http://b');
  await store.close();
});

test('on one node (a store of its own) a rollout stays held across a restart under another address', async () => {
  const { store, node } = await rolloutWorld(tmp);
  const first = node('solo', { shared: false, address: 'http://127.0.0.1:9220' });
  const r = await first.m.start(owner, { id: 'r-4', packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 });
  await first.m.flush();
  // the same data directory, listening on another port
  const again = node('solo', { shared: false, address: 'http://127.0.0.1:9333' });
  again.m.firmwareStatus('CP-1', 'Downloading', r.requestId);
  await again.m.flush();
  assert.ok(existsSync(again.file('r-4')));
  assert.equal((await again.m.get(owner, 'r-4')).stations['CP-1']!.status, 'Downloading');
  assert.equal(await holderOf(store, 'r-4'), 'http://127.0.0.1:9333');
  await store.close();
});

test("a package uploaded again is not taken, between its commit and its record, for a copy of the deleted one", async () => {
  const dir = mkdtempSync(join(tmp, 'upload-again-'));
  const store = new SqliteStore(join(dir, 'store'));
  const packages = new PackageStore({ dataDir: join(dir, 'data') });
  const holders = new PackageHolders(store, () => 'http://a:1');
  const replication = new PackageReplication({ packages, holders, log: pino({ level: 'silent' }), now: Date.now });
  try {
    await holders.forgetEverywhere(PID, 1); // deleted before
    const index = { packageId: PID, version: '2', model: 'M', publisher: 'pub', deviceIds: [], shared: { offset: 0, length: 1 } } satisfies PackageIndex;
    await replication.commit(PID, new Uint8Array(32), async () => {
      writeFileSync(packages.path(PID), 'the new upload'); // as the commit's rename puts it in place
      // the sweep (or a deletion announced late) looks at it now, while the mark is still there
      await replication.dropIfDeleted(PID);
      return index;
    });
    assert.ok(existsSync(packages.path(PID)), 'the new upload is kept');
    assert.equal(await holders.deleted(PID), false);
    assert.deepEqual((await holders.of(PID)).map((h) => h.node), ['http://a:1']);
  } finally {
    await replication.close();
    await store.close();
  }
});

test("two writes of a rollout's copy in flight at once leave the store with its latest state", async () => {
  const { store, a } = await rolloutWorld(tmp);
  const r = await a.m.start(owner, { id: 'r-5', packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 });
  await a.m.flush();
  // the store answers the first of the next writes last (as a pool of connections may)
  const replace = store.replaceSetting.bind(store);
  let calls = 0;
  store.replaceSetting = async (...args) => {
    if (calls++ === 0) await new Promise((res) => setTimeout(res, 50));
    return replace(...args);
  };
  a.m.firmwareStatus('CP-1', 'Downloading', r.requestId);
  const first = a.m.flush();
  a.m.firmwareStatus('CP-1', 'Downloaded', r.requestId);
  await Promise.all([first, a.m.flush()]);
  const copy = JSON.parse((await store.getSetting('rollout.r-5'))!) as { rollout: { stations: Record<string, { status: string }> } };
  assert.equal(copy.rollout.stations['CP-1']!.status, 'Downloaded');
  await store.close();
});

test('a rollout start sorts its stations in one store lookup: queued, never booted, not registered, not in the package', async () => {
  const { store, calls, a } = await rolloutWorld(tmp, { devices: ['CP-1', 'CP-2', 'CP-3'] });
  await store.putStation({ id: 'CP-2', passwordHash: 'x', created: 0 });
  let lookups = 0;
  const states = store.stationStates.bind(store);
  store.stationStates = async (ids) => (lookups++, states(ids));
  const r = await a.m.start(owner, { id: 'r-6', packageId: PID, stations: ['CP-1', 'CP-2', 'CP-3', 'CP-4'], lifetimeMs: 60_000 });
  assert.deepEqual(Object.fromEntries(Object.entries(r.stations).map(([s, p]) => [s, p.status])), { 'CP-1': 'Queued', 'CP-2': 'NeverBooted', 'CP-3': 'UnknownStation', 'CP-4': 'NotInPackage' });
  assert.equal(lookups, 1);
  assert.deepEqual(calls, ['a:CP-1']);
  await a.m.flush();
  await store.close();
});

test("over PostgreSQL, a node's look at the store fetches only the rollout copies written since its last look", { skip: await servicesMissing({ pg: true }) }, async () => {
  const sc = freshSchema('copies');
  const pgStore = await PostgresStore.open({ url: sc.url });
  try {
    const { store, a, b } = await rolloutWorld(tmp, { store: pgStore });
    for (const id of ['r-7', 'r-8']) await a.m.start(owner, { id, packageId: PID, stations: ['CP-1'], lifetimeMs: 60_000 });
    await a.m.flush();
    const fetched: string[][] = [];
    const getSettings = store.getSettings.bind(store);
    store.getSettings = async (keys) => (fetched.push([...keys].sort()), getSettings(keys));
    await b.m.syncHolders(new Set());
    assert.deepEqual(fetched, [['rollout.r-7', 'rollout.r-8']], 'the first look reads every copy');
    await b.m.syncHolders(new Set());
    assert.equal(fetched.length, 1, 'nothing written since: nothing read');
    a.m.firmwareStatus('CP-1', 'Downloading', (await a.m.get(owner, 'r-8')).requestId);
    await a.m.flush();
    await b.m.syncHolders(new Set());
    assert.deepEqual(fetched[1], ['rollout.r-8'], 'only the copy written since');
    // what b answers from, and takes over, is the copy as written last
    assert.deepEqual(await b.m.syncHolders(new Set(['http://a'])), ['r-7', 'r-8']);
    assert.equal((await b.m.get(owner, 'r-8')).stations['CP-1']!.status, 'Downloading');
    await b.m.flush();
  } finally {
    await pgStore.close();
    await sc.drop();
  }
});

test("a large rollout's changes are written together, paced, not one whole rollout per change", async () => {
  const devices = ['CP-1', ...Array.from({ length: 50_000 }, (_, i) => `CP-X${i}`)];
  const { store, a } = await rolloutWorld(tmp, { devices });
  const r = await a.m.start(owner, { id: 'r-9', packageId: PID, stations: devices, lifetimeMs: 60_000 }); // CP-X…: never registered
  await a.m.flush(); // a whole write of 50,001 stations: the next waits about nine times as long as it took
  const statusOnDisk = () => (JSON.parse(readFileSync(a.file('r-9'), 'utf8')) as { stations: Record<string, { status: string }> }).stations['CP-1']!.status;
  const writes: string[] = [];
  const replace = store.replaceSetting.bind(store);
  store.replaceSetting = async (key, expected, value) => (writes.push(key), replace(key, expected, value));
  for (const s of ['Downloading', 'Downloaded', 'Installing']) {
    a.m.firmwareStatus('CP-1', s, r.requestId);
    await new Promise((res) => setImmediate(res));
  }
  assert.equal(statusOnDisk(), 'Queued', 'not written at once');
  assert.deepEqual(writes, []);
  await a.m.flush();
  assert.equal(statusOnDisk(), 'Installing', 'the three together');
  assert.deepEqual(writes, ['rollout.r-9']);
  await store.close();
});
