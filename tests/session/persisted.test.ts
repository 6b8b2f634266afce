// Sessions persisted in the endpoint keystore: forward secrecy against a full
// copy of the endpoint's files, post-compromise security, crash safety and
// delivery through the Endpoint API.
import { test, before, after } from 'node:test';
import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { PASSPHRASE, World } from '../helpers/world.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import { SecretStore } from '../../src/keystore/secret-store.js';
import { loadSession } from '../../src/keystore/sessions.js';
import { rotatePrekeys } from '../../src/keystore/identity-dir.js';
import { refreshCrl, revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import { acceptSession } from '../../src/core/session/handshake.js';
import { ratchetMessageHeader } from '../../src/core/session/ratchet.js';
import { loadIdentity } from '../../src/keystore/identity-dir.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';
import { RevocationState } from '../../src/core/x509/index.js';
import { b64u } from '../../src/core/base64url.js';

const w = new World();
after(() => w.cleanup());
let ca = '', crl = '', toolDir = '', cpDir = '';
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const DAY = 86400_000;

before(async () => {
  ca = await w.ca('ca');
  crl = join(ca, 'crl.pem');
  toolDir = await w.identity(ca, 'service-tool', 'tool-1');
  cpDir = await w.identity(ca, 'charger', 'CP-1');
});
const tool = (): Endpoint => w.endpoint(toolDir, w.trust(ca), [crl]);
const charger = (dir = cpDir): Endpoint => w.endpoint(dir, w.trust(ca), [crl]);

function open(): { handle: string; first: string } {
  const { handle, message } = tool().startSession(w.bundle(cpDir), enc('get-config'), { kind: 'command' });
  const a = charger().acceptSession(message);
  assert.equal(a.handle, handle);
  assert.equal(dec(a.payload), 'get-config');
  assert.equal(a.peer.role, 'service-tool');
  return { handle, first: message };
}

/** Every secret the charger's persisted ratchet holds now, plus the next receiving message key. */
function secretsOf(dir: string, handle: string): Uint8Array[] {
  const { ratchet } = loadSession(SecretStore.open(dir, PASSPHRASE), handle);
  const s = ratchet.secretsForTesting();
  return [...s, ...s.filter((k) => k.length === 32).map((ck) => new Uint8Array(createHmac('sha256', ck).update(Buffer.from([1])).digest()))];
}

function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...allFiles(p));
    else out.push(p);
  }
  return out;
}

test('a persisted conversation with out-of-order delivery', () => {
  const { handle } = open();
  const c1 = charger().sessionEncrypt(handle, enc('config: a=1'));
  const c2 = charger().sessionEncrypt(handle, enc('config: b=2'));
  assert.equal(dec(tool().sessionDecrypt(handle, c2)), 'config: b=2');
  assert.equal(dec(tool().sessionDecrypt(handle, c1)), 'config: a=1');
  assert.throws(() => tool().sessionDecrypt(handle, c1), { code: 'ERR_OPEN_FAILED' });
  const t1 = tool().sessionEncrypt(handle, enc('reset'));
  assert.equal(dec(charger().sessionDecrypt(handle, t1)), 'reset');
});

test('forward secrecy: a full copy of the endpoint files decrypts no earlier message, and holds none of its keys', async () => {
  const t0 = w.now;
  const { handle, first } = open();
  const recorded: { from: 'tool' | 'cp'; msg: Uint8Array }[] = [];
  const keys: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    const fromTool = i % 2 === 0;
    if (!fromTool) keys.push(...secretsOf(cpDir, handle));
    const m = fromTool ? tool().sessionEncrypt(handle, enc(`t${i}`)) : charger().sessionEncrypt(handle, enc(`c${i}`));
    recorded.push({ from: fromTool ? 'tool' : 'cp', msg: m });
    if (fromTool) keys.push(...secretsOf(cpDir, handle));
    assert.equal(dec(fromTool ? charger().sessionDecrypt(handle, m) : tool().sessionDecrypt(handle, m)), fromTool ? `t${i}` : `c${i}`);
  }
  // Advance: two more DH steps, then let the prekey deletion schedule run.
  for (let i = 0; i < 2; i++) {
    charger().sessionDecrypt(handle, tool().sessionEncrypt(handle, enc('more')));
    tool().sessionDecrypt(handle, charger().sessionEncrypt(handle, enc('more')));
  }
  w.now = t0 + 13 * DAY;
  await refreshCrl(ca, { now: new Date(w.now) });
  rotatePrekeys(cpDir, Math.floor((t0 + 7.5 * DAY) / 1000), { passphrase: PASSPHRASE });
  rotatePrekeys(cpDir, Math.floor(w.now / 1000), { passphrase: PASSPHRASE });
  // The attacker's copy: every file, including temp, lock and log files.
  const copy = w.path('stolen-cp');
  cpSync(cpDir, copy, { recursive: true });
  // No earlier message from the tool decrypts, not even with replay checks off.
  for (const r of recorded.filter((x) => x.from === 'tool')) {
    assert.throws(() => charger(copy).sessionDecrypt(handle, r.msg), { code: 'ERR_OPEN_FAILED' });
  }
  // The first message cannot be re-accepted: its prekey's private half is gone.
  const id = loadIdentity(copy, PASSPHRASE);
  const revocation = RevocationState.fromJSON(null);
  revocation.addCrl(readFileSync(crl, 'utf8'), w.trust(ca));
  assert.throws(
    () => acceptSession(first, { info: id.file, prekeys: id.prekeys, suites: id.file.suites, certHash: id.certHash }, {
      policy: w.trust(ca), revocation, now: new Date(t0), replay: 'skip', rolePolicy: DEFAULT_ROLE_POLICY, maxLifetimeSec: 259200, skewSec: 300,
    }),
    { code: 'ERR_OPEN_FAILED' },
  );
  // None of the keys that protected those messages is in any file, raw or decrypted.
  const store = SecretStore.open(copy, PASSPHRASE);
  const haystacks: Buffer[] = [];
  for (const f of allFiles(copy)) {
    const raw = readFileSync(f);
    haystacks.push(raw);
    const relPath = f.slice(copy.length + 1);
    if (raw.subarray(0, 10).toString() === 'EVSEAL-KS1') haystacks.push(Buffer.from(store.read(relPath) as Uint8Array));
  }
  assert.ok(keys.length >= 12);
  for (const k of keys) {
    const forms = [Buffer.from(k), Buffer.from(b64u(k)), Buffer.from(Buffer.from(k).toString('hex')), Buffer.from(Buffer.from(k).toString('base64'))];
    for (const h of haystacks) for (const f of forms) assert.equal(h.includes(f), false, 'an old key was found in the copied files');
  }
  w.now = t0;
});

test('post-compromise security: a stolen state stops decrypting once both sides took new DH steps', () => {
  const { handle } = open();
  tool().sessionDecrypt(handle, charger().sessionEncrypt(handle, enc('hello')));
  const stolen = w.path('stolen-pcs');
  cpSync(cpDir, stolen, { recursive: true });
  // The copy still reads the next message on the current chain...
  const m0 = tool().sessionEncrypt(handle, enc('m0'));
  assert.equal(dec(charger(stolen).sessionDecrypt(handle, m0)), 'm0');
  charger().sessionDecrypt(handle, m0);
  // ...but after B→A and A→B (two DH steps with fresh keys the copy never saw), it is locked out.
  tool().sessionDecrypt(handle, charger().sessionEncrypt(handle, enc('b')));
  const m1 = tool().sessionEncrypt(handle, enc('secret after healing'));
  assert.equal(dec(charger().sessionDecrypt(handle, m1)), 'secret after healing');
  assert.throws(() => charger(stolen).sessionDecrypt(handle, m1), { code: 'ERR_OPEN_FAILED' });
});

function child(op: 'encrypt' | 'decrypt', dir: string, handle: string, arg: string, fault?: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'tests/session/crash-child.ts', op, dir, join(ca, 'ca.pem'), crl, handle, arg, String(w.now)], {
    encoding: 'utf8',
    env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE, ...(fault ? { EVSEAL_FAULT: fault } : {}) },
    timeout: 120_000,
  });
}

test('crash safety: killed between encrypt and send, or between receive and store, nothing is reused or lost', () => {
  const { handle } = open();
  // 1. Killed after encrypting, before the state was saved: the ciphertext never left,
  //    and the next run encrypts from the saved state.
  const k1 = child('encrypt', cpDir, handle, 'lost in the crash', 'session-encrypt:before-save');
  assert.equal(k1.signal, 'SIGKILL');
  assert.equal(k1.stdout, '');
  // 2. Saved, then killed before sending (the process dies right after returning).
  const sent = child('encrypt', cpDir, handle, 'never sent');
  assert.equal(sent.status, 0, sent.stderr);
  const a = Buffer.from(sent.stdout, 'base64url');
  // 3. The next message after a restart uses the next message number: no key or nonce reuse.
  const next = child('encrypt', cpDir, handle, 'after restart');
  const b = Buffer.from(next.stdout, 'base64url');
  const ha = ratchetMessageHeader(a);
  const hb = ratchetMessageHeader(b);
  assert.equal(Buffer.compare(Buffer.from(ha.dh), Buffer.from(hb.dh)), 0);
  assert.equal(hb.n, ha.n + 1);
  // The tool receives the later one; the unsent one is a lost message, not a break.
  assert.equal(dec(tool().sessionDecrypt(handle, b)), 'after restart');
  // 4. The tool is killed after decrypting, before storing: the message is not lost —
  //    redelivered, it decrypts again from the unchanged state.
  const m = charger().sessionEncrypt(handle, enc('deliver me'));
  const k2 = child('decrypt', toolDir, handle, b64u(m), 'session-decrypt:before-save');
  assert.equal(k2.signal, 'SIGKILL');
  const again = child('decrypt', toolDir, handle, b64u(m));
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, 'deliver me');
  // Stored now: a third delivery is a replay.
  assert.throws(() => tool().sessionDecrypt(handle, m), { code: 'ERR_OPEN_FAILED' });
});

test('a replayed first message is refused, so it cannot re-run its command', () => {
  const { first } = open();
  assert.throws(() => charger().acceptSession(first), { code: 'ERR_OPEN_FAILED' });
});

test('peers: wrong role, another CA, revoked initiators are refused', async () => {
  // A CA and charger of their own: earlier tests moved CP-1's trusted time forward.
  const ca2 = await w.ca('peers-ca');
  const crl2 = join(ca2, 'crl.pem');
  const cp2 = await w.identity(ca2, 'charger', 'CP-peers');
  const ep = (dir: string) => w.endpoint(dir, w.trust(ca2), [crl2]);
  // A fleet backend may not open a command session to a charger.
  const fleet = await w.identity(ca2, 'fleet', 'fleet-1');
  assert.throws(() => ep(fleet).startSession(w.bundle(cp2), enc('unlock-connector 1'), { kind: 'command' }), { code: 'ERR_POLICY_DENIED' });
  // A tool from another CA.
  const other = await w.ca('other-ca');
  const stranger = await w.identity(other, 'service-tool', 'tool-x');
  const m = w.endpoint(stranger, w.trust(ca2), [crl2]).startSession(w.bundle(cp2), enc('unlock-connector 1'), { kind: 'command' }).message;
  assert.throws(() => ep(cp2).acceptSession(m), { code: 'ERR_OPEN_FAILED' });
  // A revoked tool.
  const revoked = await w.identity(ca2, 'service-tool', 'tool-revoked');
  const m2 = ep(revoked).startSession(w.bundle(cp2), enc('unlock-connector 1'), { kind: 'command' }).message;
  await revokeWithCaDir(ca2, readFileSync(join(revoked, 'cert.pem'), 'utf8'), { now: new Date(w.now) });
  assert.throws(() => ep(cp2).acceptSession(m2), { code: 'ERR_OPEN_FAILED' });
  const log = readFileSync(join(cp2, 'security.log'), 'utf8');
  assert.match(log, /"reason":"chain-invalid"/);
  assert.match(log, /"reason":"cert-revoked"/);
});

test('a peer revoked after the handshake gets no further session message through, either way', async () => {
  const ca3 = await w.ca('later-ca');
  const crl3 = join(ca3, 'crl.pem');
  const cp3 = await w.identity(ca3, 'charger', 'CP-later');
  const tool3 = await w.identity(ca3, 'service-tool', 'tool-later');
  const ep = (dir: string) => w.endpoint(dir, w.trust(ca3), [crl3]);
  const { handle, message } = ep(tool3).startSession(w.bundle(cp3), enc('get-config'), { kind: 'command' });
  ep(cp3).acceptSession(message);
  assert.equal(dec(ep(tool3).sessionDecrypt(handle, ep(cp3).sessionEncrypt(handle, enc('HeartbeatInterval=300')))), 'HeartbeatInterval=300');
  const queued = ep(tool3).sessionEncrypt(handle, enc('reset Hard')); // sealed before the revocation
  await revokeWithCaDir(ca3, readFileSync(join(tool3, 'cert.pem'), 'utf8'), { now: new Date(w.now) });
  // The charger refuses what the tool sent, and will not encrypt to it any more.
  assert.throws(() => ep(cp3).sessionDecrypt(handle, queued), { code: 'ERR_OPEN_FAILED' });
  assert.throws(() => ep(cp3).sessionEncrypt(handle, enc('status')), { code: 'ERR_CERT_REJECTED' });
  const log = readFileSync(join(cp3, 'security.log'), 'utf8');
  assert.match(log, /"event":"session-peer-refused","reason":"cert-revoked"[^\n]*"peer":"tool-later"/);
  // The refusal changed nothing: under a policy that waives revocation the same message still opens.
  const waived = w.endpoint(cp3, w.trust(ca3), [crl3], { revocationCheck: false });
  assert.equal(dec(waived.sessionDecrypt(handle, queued)), 'reset Hard');
});

test('a session peer past its certificate\'s validity is refused, and so is a record without the peer certificate', async () => {
  const ca4 = await w.ca('expiry-ca');
  const crl4 = join(ca4, 'crl.pem');
  const cp4 = await w.identity(ca4, 'charger', 'CP-exp');
  const tool4 = await w.identity(ca4, 'service-tool', 'tool-exp');
  const ep = (dir: string) => w.endpoint(dir, w.trust(ca4), [crl4]);
  const { handle, message } = ep(tool4).startSession(w.bundle(cp4), enc('get-config'), { kind: 'command' });
  ep(cp4).acceptSession(message);
  const m = ep(tool4).sessionEncrypt(handle, enc('status'));
  // An older record (no peer certificate) fails closed.
  const store = SecretStore.open(cp4, PASSPHRASE);
  const rel = `sessions/${handle}.json`;
  const rec = JSON.parse(store.readText(rel)!);
  const { cert: _cert, ...peer } = rec.peer;
  store.write(rel, JSON.stringify({ ...rec, peer }) + '\n');
  assert.throws(() => ep(cp4).sessionDecrypt(handle, m), { code: 'ERR_OPEN_FAILED' });
  assert.match(readFileSync(join(cp4, 'security.log'), 'utf8'), /session-peer-refused","reason":"malformed"[^\n]*no peer certificate/);
  store.write(rel, JSON.stringify(rec) + '\n');
  assert.equal(dec(ep(cp4).sessionDecrypt(handle, m)), 'status');
  // Past the tool certificate's notAfter (trusted time moves forward with the wall clock).
  const saved = w.now;
  w.now += 400 * DAY;
  try {
    assert.throws(() => w.endpoint(cp4, w.trust(ca4), [], { revocationCheck: false }).sessionEncrypt(handle, enc('late')), { code: 'ERR_CERT_REJECTED' });
    assert.match(readFileSync(join(cp4, 'security.log'), 'utf8'), /session-peer-refused","reason":"cert-expired"/);
  } finally {
    w.now = saved;
  }
});
