// The published vectors (tests/vectors/envelopes.json): valid envelopes are
// reproduced byte for byte and opened; P-256 ones are opened; invalid ones
// are refused with the labelled reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fromB64u } from '../../src/core/base64url.js';
import { parseBundle, verifyBundle } from '../../src/core/bundle.js';
import { openEnvelope, sealEnvelope } from '../../src/core/envelope.js';
import type { SecurityReason } from '../../src/core/errors.js';
import type { PrekeyPrivate } from '../../src/core/prekey.js';
import { ReplayWindow } from '../../src/core/replay.js';
import { DEFAULT_ROLE_POLICY } from '../../src/core/role-policy.js';
import type { Role } from '../../src/core/roles.js';
import type { KemName, SuiteName } from '../../src/core/suites.js';
import { RevocationState, pemToDer, trustPolicyFromCaPem } from '../../src/core/x509/index.js';

interface Ident { role: Role; operator: string; cert: string; key: string; suites: SuiteName[]; bundle?: unknown; prekeys?: { kid: string; kem: KemName; pub: string; sk: string }[] }
const V = JSON.parse(readFileSync(new URL('./envelopes.json', import.meta.url), 'utf8')) as {
  now: number; settings: { maxLifetimeSec: number; skewSec: number }; ca: { cert: string; crl: string };
  identities: Record<string, Ident>;
  valid: { name: string; suite: SuiteName; sender: string; recipient: string; kind: string; cty: string; created: number; lifetime: number; msgId: string; randomness: string; plaintext: string; envelope: string }[];
  p256: { name: string; sender: string; recipient: string; plaintext: string; envelope: string }[];
  invalid: { name: string; reason: SecurityReason; recipient: string; envelope: string }[];
};

const policy = trustPolicyFromCaPem(V.ca.cert);
const revocation = RevocationState.fromJSON(null);
revocation.addCrl(V.ca.crl, policy);
const now = new Date(V.now * 1000);

function recipient(id: string) {
  const r = V.identities[id] as Ident;
  const prekeys = new Map<string, PrekeyPrivate>();
  for (const k of r.prekeys ?? []) prekeys.set(k.kid, { kid: k.kid, kem: k.kem, pub: fromB64u(k.pub), sk: fromB64u(k.sk), created: 0, expires: 0, deleteAfter: 0 });
  return { info: { role: r.role, id, operator: r.operator }, prekeys, suites: r.suites };
}

function open(text: string, id: string, replay = new ReplayWindow()) {
  const reasons: SecurityReason[] = [];
  try {
    const o = openEnvelope(text, recipient(id), {
      policy, revocation, now, replay, rolePolicy: DEFAULT_ROLE_POLICY,
      maxLifetimeSec: V.settings.maxLifetimeSec, skewSec: V.settings.skewSec, security: (e) => reasons.push(e.reason),
    });
    return { plaintext: o.plaintext, reasons };
  } catch (e) {
    return { error: e as { code: string }, reasons };
  }
}

test('the vector file covers every suite and every labelled refusal', () => {
  assert.equal(V.valid.length, 4);
  assert.ok(V.p256.length >= 2);
  assert.ok(V.invalid.length >= 25);
});

for (const v of V.valid) {
  test(`vector ${v.name}: reproduced byte for byte, then opened`, () => {
    const s = V.identities[v.sender] as Ident;
    const r = V.identities[v.recipient] as Ident;
    const bundle = verifyBundle(parseBundle(JSON.stringify(r.bundle)), { policy, revocation, now: new Date(v.created * 1000) });
    const env = sealEnvelope(
      { chain: [pemToDer(s.cert, 'CERTIFICATE')], info: { role: s.role, id: v.sender, operator: s.operator }, privateKey: createPrivateKey(s.key), suites: [v.suite] },
      bundle,
      fromB64u(v.plaintext),
      { kind: v.kind, contentType: v.cty, now: new Date(v.created * 1000), lifetimeSec: v.lifetime, rolePolicy: DEFAULT_ROLE_POLICY, msgId: fromB64u(v.msgId), randomness: fromB64u(v.randomness) },
    );
    assert.equal(env, v.envelope);
    const replay = new ReplayWindow();
    const o = open(v.envelope, v.recipient, replay);
    assert.deepEqual(o.plaintext, fromB64u(v.plaintext));
    // A second open with the same replay window is a replay.
    assert.deepEqual(open(v.envelope, v.recipient, replay).reasons, ['replay']);
  });
}

for (const v of V.p256) {
  test(`vector ${v.name}: opens`, () => {
    assert.deepEqual(open(v.envelope, v.recipient).plaintext, fromB64u(v.plaintext));
  });
}

for (const v of V.invalid) {
  test(`invalid vector "${v.name}" is refused as ${v.reason}`, () => {
    const o = open(v.envelope, v.recipient);
    assert.equal(o.plaintext, undefined);
    assert.equal(o.error?.code, 'ERR_OPEN_FAILED');
    assert.deepEqual(o.reasons, [v.reason]);
  });
}
