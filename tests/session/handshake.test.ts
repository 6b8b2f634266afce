// The session handshake (docs/protocol.md §13): full handshakes then
// ratchet traffic, and every refusal the spec names, each checked for the
// opaque error and for its precise reason in the security sink.
import { test, before, after } from 'node:test';
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { World, T0 } from '../helpers/world.js';
import { revokeWithCaDir } from '../../src/keystore/ca-dir.js';
import { parseBundle, verifyBundle, type VerifiedBundle } from '../../src/core/bundle.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { utf8 } from '../../src/core/bytes.js';
import { encodeCanonical } from '../../src/core/canonical-json.js';
import type { Sender } from '../../src/core/envelope.js';
import type { SecurityReason } from '../../src/core/errors.js';
import { kemByName } from '../../src/core/kem-registry.js';
import { generatePrekey, type PrekeyPrivate, type SignedPrekey } from '../../src/core/prekey.js';
import { ReplayWindow } from '../../src/core/replay.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';
import { signWith } from '../../src/core/signature.js';
import type { KemName, SuiteName } from '../../src/core/suites.js';
import { RevocationState, type TrustPolicy } from '../../src/core/x509/index.js';
import { Ratchet } from '../../src/core/session/ratchet.js';
import {
  SESSION_HEADER_SHAPE,
  SESSION_INIT_SHAPE,
  acceptSession,
  deriveSessionSecret,
  encodeSessionHeader,
  encodeSessionInit,
  initiateSession,
  sessionAd,
  sessionSigInput,
  type AcceptContext,
  type SessionHeader,
} from '../../src/core/session/handshake.js';

const XWING: SuiteName = 'XWING-SHA256-AES256GCM';
const X25519: SuiteName = 'X25519-SHA256-AES256GCM';
const NOW = new Date(T0);

const w = new World();
after(() => w.cleanup());
let ca = '', otherCa = '';
let charger = '', charger2 = '', tool = '', toolP256 = '', fleet = '', prov = '', revokedTool = '', stranger = '';
let trust: TrustPolicy;
let revocation: RevocationState;

before(async () => {
  ca = await w.ca('operator-ca');
  otherCa = await w.ca('other-ca');
  charger = await w.identity(ca, 'charger', 'CP-1', { suites: [XWING, X25519] });
  charger2 = await w.identity(ca, 'charger', 'CP-2');
  tool = await w.identity(ca, 'service-tool', 'tool-1');
  toolP256 = await w.identity(ca, 'service-tool', 'tool-p256', { alg: 'ecdsa-p256' });
  fleet = await w.identity(ca, 'fleet', 'fleet-1');
  prov = await w.identity(ca, 'provisioning', 'prov-1');
  revokedTool = await w.identity(ca, 'service-tool', 'tool-revoked');
  stranger = await w.identity(otherCa, 'service-tool', 'tool-stranger');
  await revokeWithCaDir(ca, readFileSync(join(revokedTool, 'cert.pem'), 'utf8'), { now: new Date(T0 - 1800_000) });
  trust = w.trust(ca);
  revocation = RevocationState.fromJSON(null);
  revocation.addCrl(readFileSync(join(ca, 'crl.pem'), 'utf8'), trust);
});

// ---------------------------------------------------------------- helpers

/** Keys through the World's endpoint loader, so the test follows however the keystore stores them (cached: it may be slow by design). */
const loaded = new Map<string, ReturnType<World['endpoint']>['id']>();
function loadIdentity(dir: string) {
  let id = loaded.get(dir);
  if (!id) loaded.set(dir, (id = w.endpoint(dir, trust, []).id));
  return id;
}

function senderOf(dir: string, suites?: readonly SuiteName[]): Sender {
  const id = loadIdentity(dir);
  return { chain: id.chain, info: id.file, privateKey: id.privateKey, suites: suites ?? id.file.suites };
}

function responderOf(dir: string) {
  const id = loadIdentity(dir);
  return { info: id.file, prekeys: id.prekeys, suites: id.file.suites, certHash: id.certHash };
}

function bundleOf(dir: string, now = NOW): VerifiedBundle {
  return verifyBundle(parseBundle(w.bundle(dir)), { policy: trust, revocation, now });
}

/** A one-time prekey of the responder: same format and signature as a signed prekey. */
function makeOtk(dir: string, kem: KemName, now = T0 / 1000): { pub: SignedPrekey; priv: PrekeyPrivate } {
  const id = loadIdentity(dir);
  return generatePrekey(kem, { now, validitySec: 30 * 86400, maxLifetimeSec: 3 * 86400, ownerCertHash: id.certHash, signingKey: id.privateKey });
}

interface Sink {
  reasons: SecurityReason[];
  last(): SecurityReason | undefined;
}
function sink(): Sink & { fn: NonNullable<AcceptContext['security']> } {
  const reasons: SecurityReason[] = [];
  return { reasons, last: () => reasons[reasons.length - 1], fn: (e) => void reasons.push(e.reason) };
}

function ctxOf(over: Partial<AcceptContext> = {}): AcceptContext {
  return {
    policy: trust,
    revocation,
    now: NOW,
    replay: new ReplayWindow(),
    rolePolicy: DEFAULT_ROLE_POLICY,
    maxLifetimeSec: 3 * 86400,
    skewSec: 300,
    ...over,
  };
}

function refusedWith(reason: SecurityReason, message: string, me: ReturnType<typeof responderOf>, over: Partial<AcceptContext> = {}): void {
  const s = sink();
  assert.throws(() => acceptSession(message, me, ctxOf({ ...over, security: s.fn })), { code: 'ERR_OPEN_FAILED', message: 'session could not be accepted' });
  assert.equal(s.last(), reason);
}

function initiate(
  from: string,
  to: string,
  o: { suites?: readonly SuiteName[]; kind?: string; otk?: SignedPrekey; lifetimeSec?: number; now?: Date; payload?: Uint8Array } = {},
) {
  return initiateSession(senderOf(from, o.suites), bundleOf(to, o.now), o.payload ?? utf8('unlock-connector 1'), {
    kind: o.kind ?? 'command',
    now: o.now ?? NOW,
    lifetimeSec: o.lifetimeSec ?? 600,
    rolePolicy: DEFAULT_ROLE_POLICY,
    ...(o.otk ? { oneTimePrekey: o.otk } : {}),
  });
}

function split(message: string): { outer: Record<string, unknown>; hdr: Record<string, unknown> } {
  const outer = JSON.parse(message) as Record<string, unknown>;
  const hdr = JSON.parse(Buffer.from(fromB64u(outer.hdr)).toString()) as Record<string, unknown>;
  return { outer, hdr };
}

const flip = (b: Uint8Array, i = b.length - 1): Uint8Array => {
  const c = new Uint8Array(b);
  c[i]! ^= 1;
  return c;
};

function exchange(a: Ratchet, b: Ratchet, rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    const m1 = utf8(`tool->charger ${i}`);
    assert.deepEqual(b.decrypt(a.encrypt(m1)), m1);
    const m2 = utf8(`charger->tool ${i}`);
    assert.deepEqual(a.decrypt(b.encrypt(m2)), m2);
  }
  // Two in a row from each side, delivered out of order.
  const x1 = a.encrypt(utf8('x1'));
  const x2 = a.encrypt(utf8('x2'));
  assert.deepEqual(b.decrypt(x2), utf8('x2'));
  assert.deepEqual(b.decrypt(x1), utf8('x1'));
  const y1 = b.encrypt(utf8('y1'));
  const y2 = b.encrypt(utf8('y2'));
  assert.deepEqual(a.decrypt(y1), utf8('y1'));
  assert.deepEqual(a.decrypt(y2), utf8('y2'));
}

// ---------------------------------------------------------------- handshakes

for (const suite of [XWING, X25519]) {
  for (const withOtk of [false, true]) {
    test(`handshake ${suite}${withOtk ? ' with a one-time prekey' : ''}, then ratchet traffic both ways`, () => {
      const me = responderOf(charger);
      const otk = withOtk ? makeOtk(charger, suite === XWING ? 'XWING' : 'X25519') : undefined;
      const payload = utf8('{"action":"UnlockConnector","connectorId":1}');
      const init = initiate(tool, charger, { suites: [suite], otk: otk?.pub, payload });
      assert.equal(init.header.suite, suite);
      assert.equal(init.header.otk, otk ? otk.pub.kid : '');
      assert.equal(init.peer.id, 'CP-1');
      assert.equal(init.sessionId, init.header.id);
      const s = sink();
      const acc = acceptSession(init.message, me, ctxOf({ oneTimePrekeys: otk ? new Map([[otk.priv.kid, otk.priv]]) : undefined, security: s.fn }));
      assert.deepEqual(s.reasons, []);
      assert.deepEqual(acc.payload, payload);
      assert.equal(acc.initiator.id, 'tool-1');
      assert.equal(acc.initiator.role, 'service-tool');
      assert.equal(acc.sessionId, init.sessionId);
      assert.deepEqual(acc.header, init.header);
      assert.equal(acc.consumedOneTimePrekey, otk?.priv.kid);
      exchange(init.ratchet, acc.ratchet, 3);
      // The message is plain ASCII canonical JSON of the documented shape.
      const { outer, hdr } = split(init.message);
      assert.deepEqual(Object.keys(outer), SESSION_INIT_SHAPE.map(([n]) => n));
      assert.deepEqual(Object.keys(hdr), SESSION_HEADER_SHAPE.map(([n]) => n));
      assert.equal(encodeCanonical(outer, SESSION_INIT_SHAPE), init.message);
      assert.equal(fromB64u(outer.enc2).length, otk ? kemByName(otk.pub.kem).nEnc : 0);
    });
  }
}

test('an ECDSA P-256 initiator completes a handshake; the ratchet survives a JSON round trip', () => {
  const init = initiate(toolP256, charger);
  const acc = acceptSession(init.message, responderOf(charger), ctxOf());
  const a = Ratchet.fromJSON(JSON.parse(JSON.stringify(init.ratchet.toJSON())));
  const b = Ratchet.fromJSON(JSON.parse(JSON.stringify(acc.ratchet.toJSON())));
  exchange(a, b, 2);
});

test('the first payload may be empty, and the session still carries data', () => {
  const init = initiate(tool, charger, { payload: new Uint8Array(0) });
  const acc = acceptSession(init.message, responderOf(charger), ctxOf());
  assert.equal(acc.payload.length, 0);
  exchange(init.ratchet, acc.ratchet, 1);
});

// ---------------------------------------------------------------- replay

test('a replayed first message is refused, also after the ratchet progressed and after the message expired', () => {
  const me = responderOf(charger);
  const replay = new ReplayWindow();
  const init = initiate(tool, charger, { lifetimeSec: 600 });
  const acc = acceptSession(init.message, me, ctxOf({ replay }));
  refusedWith('replay', init.message, me, { replay });
  exchange(init.ratchet, acc.ratchet, 2);
  refusedWith('replay', init.message, me, { replay });
  // The id is kept for the prekey's lifetime plus the maximum message lifetime,
  // far beyond the message's own expiry (which refuses it first anyway).
  const prekey = me.prekeys.get(init.header.kid)!;
  assert.equal(replay.prune(prekey.expires + 3 * 86400 - 1), 0);
  assert.equal(replay.size, 1);
  refusedWith('expired', init.message, me, { replay, now: new Date((init.header.expires + 301) * 1000) });
});

test('refused attempts do not burn the session id', () => {
  const me = responderOf(charger);
  const toolId = loadIdentity(tool);
  const replay = new ReplayWindow();
  const init = initiate(tool, charger);
  const { outer } = split(init.message);
  const hdr = fromB64u(outer.hdr);
  const enc1 = fromB64u(outer.enc1);
  refusedWith('bad-signature', encodeCanonical({ ...outer, sig: b64u(flip(fromB64u(outer.sig))) }, SESSION_INIT_SHAPE), me, { replay });
  refusedWith('bad-signature', encodeCanonical({ ...outer, msg: b64u(flip(fromB64u(outer.msg))) }, SESSION_INIT_SHAPE), me, { replay });
  // Even a message the initiator itself signed, with the same id but a corrupt ratchet message or enc1, burns nothing.
  const badMsg = flip(fromB64u(outer.msg));
  const resigned = (e1: Uint8Array, msg: Uint8Array) =>
    encodeSessionInit({ hdr, chain: toolId.chain, enc1: e1, enc2: new Uint8Array(0), msg, sig: signWith('session', toolId.privateKey, sessionSigInput(hdr, e1, new Uint8Array(0), msg)) });
  refusedWith('decrypt-failed', resigned(enc1, badMsg), me, { replay });
  refusedWith('decrypt-failed', resigned(flip(enc1, 5), fromB64u(outer.msg)), me, { replay });
  assert.equal(replay.size, 0);
  acceptSession(init.message, me, ctxOf({ replay }));
  assert.equal(replay.size, 1);
});

// ---------------------------------------------------------------- KCI

test('KCI: an attacker holding the responder prekey and identity keys cannot pose as a service tool', () => {
  const me = responderOf(charger);
  const chargerId = loadIdentity(charger);
  const toolId = loadIdentity(tool);
  const fleetId = loadIdentity(fleet);
  const prekey = [...chargerId.prekeys.values()].find((k) => k.kem === 'XWING')!;
  // The attacker knows everything public (the tool's chain, the charger's bundle)
  // and the charger's secrets: its private prekey and its identity key.
  function forge(signer: (input: Uint8Array) => Uint8Array, rpub?: Uint8Array): string {
    const a0 = kemByName('X25519').generateKeyPair();
    if (rpub) a0.publicKey = rpub;
    const id = new Uint8Array(randomBytes(16));
    const h: SessionHeader = {
      v: 1, suite: XWING, from: 'tool-1', fromCert: b64u(toolId.certHash), to: 'CP-1', toCert: b64u(chargerId.certHash),
      kid: prekey.kid, otk: '', id: b64u(id), created: T0 / 1000, expires: T0 / 1000 + 600, kind: 'command', rpub: b64u(a0.publicKey),
    };
    const hdr = encodeSessionHeader(h);
    const e1 = kemByName('XWING').encap(prekey.pub);
    // With the private prekey the attacker could equally decapsulate; either way it knows SK.
    assert.deepEqual(kemByName('XWING').decap(e1.enc, prekey.sk), e1.sharedSecret);
    const sk = deriveSessionSecret(e1.sharedSecret, new Uint8Array(0), hdr);
    const r = Ratchet.initInitiator(sk, sessionAd(toolId.certHash, chargerId.certHash, id), { keygen: () => new Uint8Array(a0.privateKey) });
    const msg = r.encrypt(utf8('unlock-connector 1'));
    const sig = signer(sessionSigInput(hdr, e1.enc, new Uint8Array(0), msg));
    return encodeSessionInit({ hdr, chain: toolId.chain, enc1: e1.enc, enc2: new Uint8Array(0), msg, sig });
  }
  // Signed with the charger's own identity key, with another legitimate identity's key, or with a signature lifted from a genuine session.
  refusedWith('bad-signature', forge((m) => signWith('session', chargerId.privateKey, m)), me);
  refusedWith('bad-signature', forge((m) => signWith('session', fleetId.privateKey, m)), me);
  const genuine = split(initiate(tool, charger).message).outer;
  refusedWith('bad-signature', forge(() => fromB64u(genuine.sig)), me);
  // Domain separation: even the tool's own signature over the same bytes, made for another context, does not verify.
  refusedWith('bad-signature', forge((m) => signWith('envelope', toolId.privateKey, m)), me);
  // Control: the same forger with the tool's key is accepted, so the refusals above are the signature's doing.
  acceptSession(forge((m) => signWith('session', toolId.privateKey, m)), me, ctxOf());
  // (With the tool's key, a small-order ratchet key would give a session the charger could never answer: refused up front.)
  const order8 = Uint8Array.from(Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'));
  for (const bad of [new Uint8Array(32), order8]) {
    const details: unknown[] = [];
    assert.throws(() => acceptSession(forge((m) => signWith('session', toolId.privateKey, m), bad), me, ctxOf({ security: (e) => void details.push([e.reason, e.detail]) })), {
      code: 'ERR_OPEN_FAILED',
    });
    assert.deepEqual(details, [['decrypt-failed', 'rpub is a small-order X25519 point']]);
  }
});

// ---------------------------------------------------------------- initiator identity

test('a wrong-role initiator is refused: fleet sending kind command, and an initiator role outside the expected set', () => {
  const me = responderOf(charger);
  // The fleet backend's own (wrong) policy lets it try; the charger's default policy refuses.
  const permissive = { rules: [{ kind: 'command', from: ['fleet' as const], to: ['charger' as const] }] };
  const bad = initiateSession(senderOf(fleet), bundleOf(charger), utf8('unlock'), { kind: 'command', now: NOW, lifetimeSec: 600, rolePolicy: permissive });
  refusedWith('policy-denied', bad.message, me);
  // And with the default policy the initiator refuses to start at all.
  assert.throws(
    () => initiateSession(senderOf(fleet), bundleOf(charger), utf8('unlock'), { kind: 'command', now: NOW, lifetimeSec: 600, rolePolicy: DEFAULT_ROLE_POLICY }),
    { code: 'ERR_POLICY_DENIED' },
  );
  // Provisioning may send kind config to a charger, but this responder takes sessions from service tools only.
  const cfg = initiate(prov, charger, { kind: 'config' });
  refusedWith('role-mismatch', cfg.message, me, { expectedRoles: ['service-tool'] });
  acceptSession(cfg.message, me, ctxOf({ expectedRoles: ['service-tool', 'provisioning'] }));
});

test('an initiator from another CA is refused', () => {
  const strangerSender = senderOf(stranger);
  const init = initiateSession(strangerSender, bundleOf(charger), utf8('x'), { kind: 'command', now: NOW, lifetimeSec: 600, rolePolicy: DEFAULT_ROLE_POLICY });
  refusedWith('chain-invalid', init.message, responderOf(charger));
});

test('a revoked initiator is refused', () => {
  const init = initiate(revokedTool, charger);
  refusedWith('cert-revoked', init.message, responderOf(charger));
});

test('a stale or missing CRL fails closed; an explicit waiver opens', () => {
  const me = responderOf(charger);
  const init = initiate(tool, charger, { lifetimeSec: 3 * 86400 });
  refusedWith('crl-missing', init.message, me, { revocation: RevocationState.fromJSON(null) });
  // The CRL's nextUpdate is 7 days after it was issued.
  refusedWith('crl-stale', init.message, me, { now: new Date(T0 + 8 * 86400_000) });
  acceptSession(init.message, me, ctxOf({ revocation: 'skip' }));
});

test('an initiator chain that does not match fromCert is refused (from vs. certificate id: see the tampering test)', () => {
  const me = responderOf(charger);
  const init = initiate(tool, charger);
  const { outer } = split(init.message);
  const other = loadIdentity(toolP256);
  refusedWith('cert-hash-mismatch', encodeCanonical({ ...outer, chain: [b64u(other.certDer)] }, SESSION_INIT_SHAPE), me);
});

// ---------------------------------------------------------------- tampering

test('tampering with any single field of the first message is refused; the original then opens once', () => {
  const me = responderOf(charger);
  const otk = makeOtk(charger, 'XWING');
  const otks = new Map([[otk.priv.kid, otk.priv]]);
  const replay = new ReplayWindow();
  const init = initiate(tool, charger, { otk: otk.pub });
  const { outer, hdr } = split(init.message);
  const refused = (text: string) => {
    const s = sink();
    assert.throws(() => acceptSession(text, me, ctxOf({ replay, oneTimePrekeys: otks, security: s.fn })), { code: 'ERR_OPEN_FAILED' });
    return s.last();
  };
  let cases = 0;
  for (const [name] of SESSION_INIT_SHAPE) {
    const removed = { ...outer };
    delete removed[name];
    assert.equal(refused(JSON.stringify(removed)), 'malformed');
    const mod = { ...outer };
    if (name === 'v') mod.v = 2;
    else if (name === 'chain') mod.chain = [b64u(flip(fromB64u((outer.chain as string[])[0]), 200))];
    else mod[name] = b64u(flip(fromB64u(outer[name]), 1));
    assert.notEqual(refused(encodeCanonical(mod, SESSION_INIT_SHAPE)), undefined);
    cases += 2;
  }
  const changes: Record<string, unknown> = {
    v: 2, suite: 'P256-SHA256-AES256GCM', from: 'tool-2', fromCert: b64u(new Uint8Array(32)), to: 'CP-2', toCert: b64u(new Uint8Array(32)),
    kid: b64u(new Uint8Array(16)), otk: b64u(new Uint8Array(16)), id: b64u(new Uint8Array(16)), created: (hdr.created as number) - 1,
    expires: (hdr.expires as number) + 1, kind: 'config', rpub: b64u(kemByName('X25519').generateKeyPair().publicKey),
  };
  const expected: Record<string, SecurityReason> = {
    v: 'malformed', suite: 'suite-not-accepted', from: 'identity-mismatch', fromCert: 'cert-hash-mismatch', to: 'wrong-recipient',
    toCert: 'wrong-recipient', kid: 'unknown-prekey', otk: 'unknown-prekey', id: 'bad-signature', created: 'bad-signature',
    expires: 'bad-signature', kind: 'bad-signature', rpub: 'bad-signature',
  };
  for (const [name] of SESSION_HEADER_SHAPE) {
    const h2 = { ...hdr, [name]: changes[name] };
    const text = encodeCanonical({ ...outer, hdr: b64u(utf8(encodeCanonical(h2, SESSION_HEADER_SHAPE))) }, SESSION_INIT_SHAPE);
    assert.equal(refused(text), expected[name], `header.${name}`);
    const h3 = { ...hdr };
    delete h3[name];
    assert.equal(refused(encodeCanonical({ ...outer, hdr: b64u(utf8(JSON.stringify(h3))) }, SESSION_INIT_SHAPE)), 'malformed');
    cases += 2;
  }
  // Dropping the one-time prekey from the header while enc2 stays, and the reverse.
  assert.equal(refused(encodeCanonical({ ...outer, hdr: b64u(utf8(encodeCanonical({ ...hdr, otk: '' }, SESSION_HEADER_SHAPE))) }, SESSION_INIT_SHAPE)), 'malformed');
  assert.equal(refused(encodeCanonical({ ...outer, enc2: '' }, SESSION_INIT_SHAPE)), 'malformed');
  // Non-canonical encodings: whitespace, reordered keys, a duplicate key, padding, an extra key, a trailing newline.
  assert.equal(refused(JSON.stringify(outer, null, 1)), 'malformed');
  assert.equal(refused(JSON.stringify(Object.fromEntries(Object.entries(outer).reverse()))), 'malformed');
  assert.equal(refused(init.message.replace('{"v":1,', '{"v":1,"v":1,')), 'malformed');
  assert.equal(refused(init.message.replace(/"sig":"([^"]+)"/, '"sig":"$1="')), 'malformed');
  assert.equal(refused(init.message.slice(0, -1) + ',"extra":"x"}'), 'malformed');
  assert.equal(refused(init.message + '\n'), 'malformed');
  assert.ok(cases >= 40);
  assert.equal(replay.size, 0);
  const acc = acceptSession(init.message, me, ctxOf({ replay, oneTimePrekeys: otks }));
  assert.equal(acc.consumedOneTimePrekey, otk.priv.kid);
  assert.equal(refused(init.message), 'replay');
});

test('a wrong recipient is refused: another id, or the same id under another certificate', () => {
  const init = initiate(tool, charger);
  refusedWith('wrong-recipient', init.message, responderOf(charger2));
  const me = responderOf(charger);
  refusedWith('wrong-recipient', init.message, { ...me, certHash: flip(me.certHash) });
  // A responder that no longer holds the prekey (deleted after rotation).
  refusedWith('unknown-prekey', init.message, { ...me, prekeys: new Map() });
});

test('a first message outside its times is refused', () => {
  const me = responderOf(charger);
  // Created 301 s ahead of the responder's trusted time (beyond the 300 s skew).
  const early = initiate(tool, charger, { now: new Date(T0 + 301_000) });
  refusedWith('not-yet-valid', early.message, me);
  acceptSession(initiate(tool, charger, { now: new Date(T0 + 300_000) }).message, me, ctxOf());
  const init = initiate(tool, charger, { lifetimeSec: 600 });
  refusedWith('expired', init.message, me, { now: new Date(T0 + 901_001) });
  acceptSession(init.message, me, ctxOf({ now: new Date(T0 + 900_000) }));
  const long = initiate(tool, charger, { lifetimeSec: 4 * 86400 });
  refusedWith('lifetime-too-long', long.message, me);
});

// ---------------------------------------------------------------- one-time prekeys

test('a one-time prekey that is unknown or already used is refused', () => {
  const me = responderOf(charger);
  const replay = new ReplayWindow();
  const otk = makeOtk(charger, 'XWING');
  // Unknown: the responder never made it, or holds no one-time prekeys at all.
  const stray = makeOtk(charger, 'XWING');
  const a = initiate(tool, charger, { otk: stray.pub });
  refusedWith('unknown-prekey', a.message, me, { replay, oneTimePrekeys: new Map([[otk.priv.kid, otk.priv]]) });
  refusedWith('unknown-prekey', a.message, me, { replay });
  // First use succeeds and names the key to delete.
  const held = new Map([[otk.priv.kid, otk.priv]]);
  const b = initiate(tool, charger, { otk: otk.pub });
  assert.equal(acceptSession(b.message, me, ctxOf({ replay, oneTimePrekeys: held })).consumedOneTimePrekey, otk.priv.kid);
  // A second session (new id, new encapsulations) on the same one-time prekey:
  const c = initiate(tool, charger, { otk: otk.pub });
  // refused even if the caller forgot to delete it (the replay window remembers it) ...
  refusedWith('replay', c.message, me, { replay, oneTimePrekeys: held });
  // ... and, once deleted, refused by every responder state.
  held.delete(otk.priv.kid);
  refusedWith('unknown-prekey', c.message, me, { replay: new ReplayWindow(), oneTimePrekeys: held });
});

test('the initiator checks a claimed one-time prekey: signature, owner, liveness, KEM', () => {
  const otk = makeOtk(charger, 'XWING');
  const reasons: SecurityReason[] = [];
  const run = (p: SignedPrekey, suites?: SuiteName[]) =>
    initiateSession(senderOf(tool, suites), bundleOf(charger), utf8('x'), {
      kind: 'command', now: NOW, lifetimeSec: 600, rolePolicy: DEFAULT_ROLE_POLICY, oneTimePrekey: p, security: (e) => void reasons.push(e.reason),
    });
  assert.throws(() => run({ ...otk.pub, sig: flip(otk.pub.sig) }), { code: 'ERR_BUNDLE_REJECTED' });
  assert.equal(reasons.pop(), 'prekey-signature');
  // A one-time prekey signed by another identity (not the responder).
  assert.throws(() => run(makeOtk(charger2, 'XWING').pub), { code: 'ERR_BUNDLE_REJECTED' });
  assert.equal(reasons.pop(), 'prekey-signature');
  assert.throws(() => run(makeOtk(charger, 'XWING', T0 / 1000 - 31 * 86400).pub), { code: 'ERR_BUNDLE_REJECTED' });
  assert.equal(reasons.pop(), 'prekey-expired');
  // An X25519 one-time prekey cannot go with the X-Wing suite.
  assert.throws(() => run(makeOtk(charger, 'X25519').pub), { code: 'ERR_USAGE' });
  assert.ok(run(makeOtk(charger, 'X25519').pub, [X25519]).message.length > 0);
});

test('the initiator refuses bad options', () => {
  const b = bundleOf(charger);
  const base = { kind: 'command', now: NOW, lifetimeSec: 600, rolePolicy: DEFAULT_ROLE_POLICY };
  assert.throws(() => initiateSession(senderOf(tool), b, utf8('x'), { ...base, kind: 'Bad Kind' }), { code: 'ERR_USAGE' });
  assert.throws(() => initiateSession(senderOf(tool), b, utf8('x'), { ...base, lifetimeSec: 0 }), { code: 'ERR_USAGE' });
  assert.throws(() => initiateSession(senderOf(tool), b, utf8('x'), { ...base, sessionId: new Uint8Array(8) }), { code: 'ERR_USAGE' });
  assert.throws(() => initiateSession(senderOf(tool, ['P256-SHA256-AES256GCM']), b, utf8('x'), base), { code: 'ERR_BUNDLE_REJECTED' });
});
