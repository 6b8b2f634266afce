import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { DEFAULT_ROLE_POLICY, allowedTriples, isAllowed } from '../../src/core/role-policy.js';
import { ROLES, type Role } from '../../src/core/roles.js';
import { inspectEnvelope } from '../../src/core/envelope.js';
import { EvsealError } from '../../src/core/errors.js';

const w = new World();
after(() => w.cleanup());

const ids = new Map<Role, string>();
let ca = '';
before(async () => {
  ca = await w.ca('operator-ca');
  for (const role of ROLES) ids.set(role, await w.identity(ca, role, `${role}-1`));
});
function idFor(role: Role): string {
  const d = ids.get(role);
  assert.ok(d);
  return d;
}

test('every (sender, kind, recipient) the default role policy allows round-trips', async () => {
  const triples = allowedTriples(DEFAULT_ROLE_POLICY);
  assert.ok(triples.length >= 12);
  for (const t of triples) {
    const from = idFor(t.from);
    const to = idFor(t.to);
    const trust = w.trust(ca);
    const crl = join(ca, 'crl.pem');
    const msg = new TextEncoder().encode(`${t.from}->${t.to}:${t.kind}`);
    const env = w.endpoint(from, trust, [crl]).seal(w.bundle(to), msg, { kind: t.kind });
    const h = inspectEnvelope(env);
    assert.equal(h.suite, 'XWING-SHA256-AES256GCM');
    assert.equal(h.kind, t.kind);
    const opened = w.endpoint(to, trust, [crl]).open(env);
    assert.deepEqual(opened.plaintext, msg);
    assert.equal(opened.sender.role, t.from);
    assert.equal(opened.header.to, `${t.to}-1`);
  }
});

test('every pair the policy does not allow is refused when sealing', async () => {
  const trust = w.trust(ca);
  let refused = 0;
  for (const from of ROLES) {
    for (const to of ROLES) {
      const allowedAny = DEFAULT_ROLE_POLICY.rules.some((r) => r.from.includes(from) && r.to.includes(to));
      if (allowedAny) continue;
      const sender = w.endpoint(idFor(from), trust, [join(ca, 'crl.pem')]);
      assert.throws(
        () => sender.seal(w.bundle(idFor(to)), new Uint8Array([1])),
        (e: unknown) => e instanceof EvsealError && e.code === 'ERR_POLICY_DENIED',
      );
      refused++;
    }
  }
  assert.ok(refused > 40, `refused ${refused} pairs`);
  // A named kind that the pair may not use is refused too.
  assert.equal(isAllowed(DEFAULT_ROLE_POLICY, 'charger', 'command', 'service-tool'), false);
  const charger = w.endpoint(idFor('charger'), trust, [join(ca, 'crl.pem')]);
  assert.throws(() => charger.seal(w.bundle(idFor('service-tool')), new Uint8Array([1]), { kind: 'command' }), { code: 'ERR_POLICY_DENIED' });
});

test('a disallowed kind sealed under a permissive policy is refused by a recipient using the default policy', async () => {
  const trust = w.trust(ca);
  const crl = join(ca, 'crl.pem');
  const permissive = { rules: [...DEFAULT_ROLE_POLICY.rules, { kind: 'command', from: ['charger' as Role], to: ['service-tool' as Role] }] };
  const env = w.endpoint(idFor('charger'), trust, [crl], { rolePolicy: permissive }).seal(w.bundle(idFor('service-tool')), new Uint8Array([7]), { kind: 'command' });
  assert.throws(() => w.endpoint(idFor('service-tool'), trust, [crl]).open(env), { code: 'ERR_OPEN_FAILED' });
  // ...and opens where the override is shared.
  assert.deepEqual(w.endpoint(idFor('service-tool'), trust, [crl], { rolePolicy: permissive }).open(env).plaintext, new Uint8Array([7]));
});

test('classical X25519 and ChaCha20 suites, P-256 and Ed25519 identities', async () => {
  const ca2 = await w.ca('p256-ca', 'ecdsa-p256');
  const trust = w.trust(ca2);
  const crl = join(ca2, 'crl.pem');
  for (const suite of ['X25519-SHA256-AES256GCM', 'X25519-SHA256-CHACHA20POLY1305', 'P256-SHA256-AES256GCM'] as const) {
    const charger = await w.identity(ca2, 'charger', `cp-${suite}`, { alg: 'ecdsa-p256', suites: [suite] });
    const prov = await w.identity(ca2, 'provisioning', `prov-${suite}`, { alg: 'ecdsa-p256', suites: [suite] });
    const env = w.endpoint(prov, trust, [crl]).seal(w.bundle(charger), new TextEncoder().encode('secret'), { kind: 'credentials' });
    assert.equal(inspectEnvelope(env).suite, suite);
    assert.equal(new TextDecoder().decode(w.endpoint(charger, trust, [crl]).open(env).plaintext), 'secret');
  }
});

test('the sender picks the recipient\'s most preferred suite it also accepts', async () => {
  const trust = w.trust(ca);
  const crl = join(ca, 'crl.pem');
  const classicalOnly = await w.identity(ca, 'provisioning', 'prov-classical', { suites: ['X25519-SHA256-AES256GCM'] });
  const env = w.endpoint(classicalOnly, trust, [crl]).seal(w.bundle(idFor('charger')), new Uint8Array([1]), { kind: 'config' });
  assert.equal(inspectEnvelope(env).suite, 'X25519-SHA256-AES256GCM');
  assert.deepEqual(w.endpoint(idFor('charger'), trust, [crl]).open(env).plaintext, new Uint8Array([1]));
});
