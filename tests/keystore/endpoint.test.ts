// Keystore behaviour: prekey rotation and deletion schedule, trusted time
// that senders cannot push ahead, and the state lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { PASSPHRASE, World } from '../helpers/world.js';
import { rotatePrekeys } from '../../src/keystore/identity-dir.js';
import { Endpoint } from '../../src/keystore/endpoint.js';
import { inspectEnvelope } from '../../src/core/envelope.js';
import { refreshCrl } from '../../src/keystore/ca-dir.js';
import { withState } from '../../src/keystore/endpoint-state.js';
import { SecretStore } from '../../src/keystore/secret-store.js';

const w = new World();
after(() => w.cleanup());
let ca = '', crl = '';
before(async () => {
  ca = await w.ca('ca');
  crl = join(ca, 'crl.pem');
});
const DAY = 86400_000;
const sec = () => Math.floor(w.now / 1000);
const privateKids = (dir: string) => readdirSync(join(dir, 'prekeys')).filter((f) => f.endsWith('.key.json')).map((f) => f.slice(0, -'.key.json'.length));
const bundleKids = (dir: string) => (JSON.parse(w.bundle(dir)).prekeys as { kid: string }[]).map((p) => p.kid);

test('prekeys rotate when due; private halves go only after grace + longest message lifetime', async () => {
  const cp = await w.identity(ca, 'charger', 'CP-rot');
  const prov = await w.identity(ca, 'provisioning', 'prov-rot');
  const first = bundleKids(cp);
  assert.equal(first.length, 2); // X-Wing and X25519
  assert.deepEqual(rotatePrekeys(cp, sec(), { passphrase: PASSPHRASE }).created, []); // not due yet
  const t0 = w.now;

  // Day 7.5: due. New prekeys are published beside the old ones (grace period).
  w.now = t0 + 7.5 * DAY;
  await refreshCrl(ca, { now: new Date(w.now) });
  const oldBundle = w.bundle(cp);
  const r1 = rotatePrekeys(cp, sec(), { passphrase: PASSPHRASE });
  assert.equal(r1.created.length, 2);
  assert.deepEqual(r1.deleted, []);
  assert.equal(bundleKids(cp).length, 4);
  // A sender with the old bundle still reaches the charger.
  const late = w.endpoint(prov, w.trust(ca), [crl]).seal(oldBundle, new Uint8Array([1]), { kind: 'credentials', lifetimeSec: 3 * 86400 });
  const lost = w.endpoint(prov, w.trust(ca), [crl]).seal(oldBundle, new Uint8Array([9]), { kind: 'credentials', lifetimeSec: 3 * 86400 });
  assert.ok(first.includes(inspectEnvelope(late).kid));
  // A sender with the new bundle uses the newest prekey.
  const fresh = w.endpoint(prov, w.trust(ca), [crl]).seal(w.bundle(cp), new Uint8Array([2]), { kind: 'credentials' });
  assert.ok(r1.created.includes(inspectEnvelope(fresh).kid));
  assert.deepEqual(w.endpoint(cp, w.trust(ca), [crl]).open(fresh).plaintext, new Uint8Array([2]));

  // Day 9.5: the old prekeys have expired (7 + 2 days) and left the bundle, but
  // their private halves stay while an envelope sealed to them may still be alive.
  w.now = t0 + 9.5 * DAY;
  await refreshCrl(ca, { now: new Date(w.now) });
  const r2 = rotatePrekeys(cp, sec(), { passphrase: PASSPHRASE });
  assert.deepEqual(r2.deleted, []);
  assert.deepEqual(bundleKids(cp).sort(), [...r1.created].sort());
  assert.ok(first.every((k) => privateKids(cp).includes(k)));
  assert.throws(() => w.endpoint(prov, w.trust(ca), [crl]).seal(oldBundle, new Uint8Array([3]), { kind: 'credentials' }), { code: 'ERR_BUNDLE_REJECTED' });
  assert.deepEqual(w.endpoint(cp, w.trust(ca), [crl]).open(late).plaintext, new Uint8Array([1]));

  // Day 12.5: expiry + 3-day maximum lifetime has passed: the old private prekeys are deleted.
  w.now = t0 + 12.5 * DAY;
  await refreshCrl(ca, { now: new Date(w.now) });
  const r3 = rotatePrekeys(cp, sec(), { passphrase: PASSPHRASE });
  assert.deepEqual([...r3.deleted].sort(), [...first].sort());
  for (const k of first) assert.equal(existsSync(join(cp, 'prekeys', `${k}.key.json`)), false);
  // An envelope sealed to them and not opened in time can no longer be opened
  // by anyone holding the endpoint's files (forward secrecy of one-shot envelopes).
  w.now = t0 + 10 * DAY; // even with the wall clock set back inside the envelope's lifetime
  assert.throws(() => w.endpoint(cp, w.trust(ca), [crl]).open(lost), { code: 'ERR_OPEN_FAILED' });
});

test('a sender whose clock runs ahead cannot push the recipient\'s trusted time forward', async () => {
  const cp = await w.identity(ca, 'charger', 'CP-clock');
  const prov = await w.identity(ca, 'provisioning', 'prov-clock');
  await refreshCrl(ca, { now: new Date(w.now) });
  const fast = Endpoint.load(prov, { trust: w.trust(ca), crls: [crl], wall: () => w.now + 299_000, passphrase: PASSPHRASE });
  const me = w.endpoint(cp, w.trust(ca), [crl]);
  for (let i = 0; i < 6; i++) {
    // Each envelope is created 299 s ahead of the recipient's wall clock: accepted (skew 300 s)...
    me.open(fast.seal(w.bundle(cp), new Uint8Array([i]), { kind: 'credentials' }));
  }
  // ...but the mark never passes the recipient's own wall clock.
  const mark = JSON.parse(SecretStore.open(cp, PASSPHRASE).readText('state.json') as string).trustedTime;
  assert.ok(mark <= w.now, `mark ${mark} is ahead of wall ${w.now}`);
});

test('concurrent processes wait for the state lock instead of failing', async () => {
  const cp = await w.identity(ca, 'charger', 'CP-lock');
  // Another process holds the lock for ~300 ms.
  const holder = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    fs.writeFileSync(${JSON.stringify(join(cp, 'state.lock'))}, String(process.pid), { flag: 'wx' });
    process.stdout.write('locked\\n');
    setTimeout(() => { fs.unlinkSync(${JSON.stringify(join(cp, 'state.lock'))}); }, 300);
  `]);
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  const t = Date.now();
  withState(SecretStore.open(cp, PASSPHRASE), w.wall, () => undefined);
  assert.ok(Date.now() - t >= 200, 'did not wait for the lock');
  await new Promise((r) => holder.once('exit', r));
});

test('open: when beforeCommit cannot keep the plaintext, no replay record is kept and the envelope opens again', async () => {
  const cp = await w.identity(ca, 'charger', 'CP-bc');
  const prov = await w.identity(ca, 'provisioning', 'prov-bc');
  const env = w.endpoint(prov, w.trust(ca), [crl]).seal(w.bundle(cp), new Uint8Array([42]), { kind: 'credentials' });
  const ep = w.endpoint(cp, w.trust(ca), [crl]);
  assert.throws(() => ep.open(env, { beforeCommit: () => { throw new Error('disk full'); } }), /disk full/);
  let kept: Uint8Array | undefined;
  assert.deepEqual(ep.open(env, { beforeCommit: (o) => (kept = o.plaintext) }).plaintext, new Uint8Array([42]));
  assert.deepEqual(kept, new Uint8Array([42]));
  assert.throws(() => ep.open(env), { code: 'ERR_OPEN_FAILED' }); // now it is a replay
});
