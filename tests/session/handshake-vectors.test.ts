// The published handshake vectors (tests/vectors/handshake.json, docs/protocol.md §13.9):
// valid first messages are reproduced byte for byte from the recorded inputs,
// their intermediate values recomputed, then accepted (once); invalid ones are
// refused with the labelled reason.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { parseBundle, verifyBundle } from '../../src/core/bundle.js';
import type { SecurityReason } from '../../src/core/errors.js';
import { kemByName } from '../../src/core/kem-registry.js';
import { prekeyFromJSON, type PrekeyPrivate } from '../../src/core/prekey.js';
import { ReplayWindow } from '../../src/core/replay.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';
import type { Role } from '../../src/core/roles.js';
import { SUITE_NAMES, kemOfSuite, type KemName, type SuiteName } from '../../src/core/suites.js';
import { RevocationState, pemToDer, trustPolicyFromCaPem } from '../../src/core/x509/index.js';
import { acceptSession, deriveSessionSecret, initiateSession, parseSessionInit, sessionAd } from '../../src/core/session/handshake.js';

interface PrivJSON { kid: string; kem: KemName; pub: string; sk: string; created: number; expires: number }
interface Ident {
  role: Role; operator: string; cert: string; key: string; suites?: SuiteName[]; bundle?: unknown;
  prekeys?: PrivJSON[]; oneTimePrekeys?: { public: Record<string, unknown>; sk: string }[];
}
interface Valid {
  name: string; suite: SuiteName; initiator: string; responder: string; kind: string; created: number; lifetime: number;
  sessionId: string; otk: string; randomness: { enc1: string; enc2: string }; ratchetKeys: string[]; payload: string;
  intermediate: { transcriptHash: string; ss1: string; ss2: string; sk: string; ad: string; rpub: string };
  message: string;
}
const V = JSON.parse(readFileSync(new URL('../vectors/handshake.json', import.meta.url), 'utf8')) as {
  now: number; settings: { maxLifetimeSec: number; skewSec: number }; ca: { cert: string; crl: string };
  identities: Record<string, Ident>; valid: Valid[]; invalid: { name: string; reason: SecurityReason; responder: string; message: string }[];
};

const policy = trustPolicyFromCaPem(V.ca.cert);
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(V.ca.crl, policy);
const now = new Date(V.now * 1000);
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

const priv = (k: PrivJSON): PrekeyPrivate => ({
  kid: k.kid, kem: k.kem, pub: fromB64u(k.pub), sk: fromB64u(k.sk), created: k.created, expires: k.expires, deleteAfter: k.expires + V.settings.maxLifetimeSec,
});

function responder(id: string) {
  const r = V.identities[id] as Ident;
  const certDer = pemToDer(r.cert, 'CERTIFICATE');
  return {
    me: { info: { role: r.role, id, operator: r.operator }, prekeys: new Map((r.prekeys ?? []).map((k) => [k.kid, priv(k)])), suites: r.suites ?? [], certHash: sha256(certDer) },
    oneTimePrekeys: new Map(
      (r.oneTimePrekeys ?? []).map((o) => {
        const p = prekeyFromJSON(o.public, 'otk');
        return [p.kid, { kid: p.kid, kem: p.kem, pub: p.pub, sk: fromB64u(o.sk), created: p.created, expires: p.expires, deleteAfter: p.expires + V.settings.maxLifetimeSec }];
      }),
    ),
  };
}

function accept(message: string, id: string, replay = new ReplayWindow()) {
  const { me, oneTimePrekeys } = responder(id);
  const reasons: SecurityReason[] = [];
  try {
    const a = acceptSession(message, me, {
      policy, revocation, now, replay, rolePolicy: DEFAULT_ROLE_POLICY, oneTimePrekeys,
      maxLifetimeSec: V.settings.maxLifetimeSec, skewSec: V.settings.skewSec, security: (e) => void reasons.push(e.reason),
    });
    return { accepted: a, reasons };
  } catch (e) {
    return { error: e as { code: string }, reasons };
  }
}

test('the vector file covers every suite, one-time prekeys and the labelled refusals', () => {
  assert.deepEqual([...new Set(V.valid.map((v) => v.suite))].sort(), [...SUITE_NAMES].sort());
  assert.ok(V.valid.filter((v) => v.otk !== '').length >= 2);
  assert.ok(V.invalid.length >= 12);
  for (const id of Object.keys(V.identities)) assert.equal(createPrivateKey(V.identities[id]!.key).asymmetricKeyType, 'ed25519');
});

for (const v of V.valid) {
  test(`vector ${v.name}: reproduced byte for byte, intermediate values recomputed, accepted once`, () => {
    const ini = V.identities[v.initiator] as Ident;
    const bundle = verifyBundle(parseBundle(JSON.stringify(V.identities[v.responder]!.bundle)), { policy, revocation, now: new Date(v.created * 1000) });
    const keys = v.ratchetKeys.map((k) => fromB64u(k));
    let next = 0;
    const otk = v.otk === '' ? undefined : V.identities[v.responder]!.oneTimePrekeys!.map((o) => prekeyFromJSON(o.public, 'otk')).find((p) => p.kid === v.otk);
    const r = initiateSession(
      { chain: [pemToDer(ini.cert, 'CERTIFICATE')], info: { role: ini.role, id: v.initiator, operator: ini.operator }, privateKey: createPrivateKey(ini.key), suites: [v.suite] },
      bundle,
      fromB64u(v.payload),
      {
        kind: v.kind, now: new Date(v.created * 1000), lifetimeSec: v.lifetime, rolePolicy: DEFAULT_ROLE_POLICY,
        ...(otk ? { oneTimePrekey: otk } : {}),
        sessionId: fromB64u(v.sessionId),
        randomness: { enc1: fromB64u(v.randomness.enc1), ...(v.randomness.enc2 ? { enc2: fromB64u(v.randomness.enc2) } : {}) },
        // The recorded keys, then fresh ones for the ratchet's later DH steps (after the vector).
        ratchet: { keygen: () => (next < keys.length ? keys[next++]! : (next++, kemByName('X25519').generateKeyPair().privateKey)) },
      },
    );
    assert.equal(r.message, v.message);
    assert.equal(next, keys.length);

    // The key schedule, recomputed from the file's private keys.
    const p = parseSessionInit(v.message);
    assert.equal(p.hdr.suite, v.suite);
    const kem = kemByName(kemOfSuite(v.suite));
    const { me, oneTimePrekeys } = responder(v.responder);
    const ss1 = kem.decap(p.enc1, me.prekeys.get(p.hdr.kid)!.sk);
    const ss2 = v.otk === '' ? new Uint8Array(0) : kem.decap(p.enc2, oneTimePrekeys.get(v.otk)!.sk);
    assert.equal(b64u(ss1), v.intermediate.ss1);
    assert.equal(b64u(ss2), v.intermediate.ss2);
    assert.equal(b64u(sha256(p.hdrBytes)), v.intermediate.transcriptHash);
    assert.equal(b64u(deriveSessionSecret(ss1, ss2, p.hdrBytes)), v.intermediate.sk);
    assert.equal(b64u(sessionAd(p.fromCert, p.toCert, p.id)), v.intermediate.ad);
    assert.equal(p.hdr.rpub, b64u(kemByName('X25519').publicKeyFromPrivate(keys[0]!)));

    const replay = new ReplayWindow();
    const a = accept(v.message, v.responder, replay);
    assert.deepEqual(a.reasons, []);
    assert.deepEqual(a.accepted?.payload, fromB64u(v.payload));
    assert.equal(a.accepted?.consumedOneTimePrekey, v.otk === '' ? undefined : v.otk);
    // The session carries on both ways.
    const reply = new TextEncoder().encode('{"status":"Unlocked"}');
    assert.deepEqual(r.ratchet.decrypt(a.accepted!.ratchet.encrypt(reply)), reply);
    // A second delivery of the same first message is a replay.
    const again = accept(v.message, v.responder, replay);
    assert.equal(again.error?.code, 'ERR_OPEN_FAILED');
    assert.deepEqual(again.reasons, ['replay']);
  });
}

for (const v of V.invalid) {
  test(`invalid vector ${v.name}: refused (${v.reason})`, () => {
    const r = accept(v.message, v.responder);
    assert.equal(r.error?.code, 'ERR_OPEN_FAILED');
    assert.deepEqual(r.reasons, [v.reason]);
  });
}
