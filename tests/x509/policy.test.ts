import { test, before } from 'node:test';
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { EvsealError } from '../../src/core/errors.js';
import { ROLES, isRole, validateIdentityInfo } from '../../src/core/roles.js';
import { TrustedClock } from '../../src/core/trusted-time.js';
import { certFingerprint, isTrustPolicyJson, parseTrustPolicy, trustPolicyFromCaPem } from '../../src/core/x509/index.js';
import { parseStrictJson } from '../../src/core/x509/strict-json.js';
import { issue, makeCa, type Ca } from './_fixtures.js';

const invalid = (e: unknown) => e instanceof EvsealError && e.code === 'ERR_INVALID_INPUT';

let ops: Ca;
let psp: Ca;
let files: Record<string, string>;
const readPem = (ref: string): string => {
  const v = files[ref];
  if (v === undefined) throw new EvsealError('ERR_NOT_FOUND', ref);
  return v;
};
before(async () => {
  ops = await makeCa('Ops CA');
  psp = await makeCa('PSP CA', 'ed25519');
  files = { 'ops.pem': ops.certPem, 'psp.pem': psp.certPem };
});

test('parseTrustPolicy: paths, inline PEM, roles, pins', () => {
  const pin = 'sha256:' + 'ab'.repeat(32);
  const p = parseTrustPolicy(
    JSON.stringify({
      version: 1,
      anchors: [
        { name: 'ops', cert: 'ops.pem', roles: ['charger', 'service-tool'] },
        { name: 'psp', cert: psp.certPem, roles: ['psp'], pins: [pin] },
        { name: 'all', cert: 'ops.pem', roles: '*' },
      ],
    }, null, 2),
    readPem,
  );
  assert.equal(p.anchors.length, 3);
  assert.deepEqual(p.anchors[0], { name: 'ops', certDer: ops.certDer, roles: ['charger', 'service-tool'] });
  assert.deepEqual(p.anchors[1], { name: 'psp', certDer: psp.certDer, roles: ['psp'], pins: [pin] });
  assert.equal(p.anchors[2]!.roles, '*');
  assert.ok(!('pins' in p.anchors[0]!));
});

test('parseTrustPolicy rejects unknown keys, duplicate keys, bad roles and other mistakes', () => {
  const good = { name: 'ops', cert: 'ops.pem', roles: ['charger'] };
  const cases: [string, string][] = [
    ['unknown top-level key', JSON.stringify({ version: 1, anchors: [good], extra: true })],
    ['unknown anchor key', JSON.stringify({ version: 1, anchors: [{ ...good, role: 'psp' }] })],
    ['duplicate top-level key', '{"version":1,"anchors":[],"anchors":[{"name":"ops","cert":"ops.pem","roles":["charger"]}]}'],
    ['duplicate anchor key', '{"version":1,"anchors":[{"name":"ops","cert":"ops.pem","roles":["charger"],"roles":"*"}]}'],
    ['duplicate key after escapes', '{"version":1,"anchors":[{"name":"ops","cert":"ops.pem","roles":["charger"],"rol\\u0065s":"*"}]}'],
    ['bad role', JSON.stringify({ version: 1, anchors: [{ ...good, roles: ['janitor'] }] })],
    ['role in wrong case', JSON.stringify({ version: 1, anchors: [{ ...good, roles: ['PSP'] }] })],
    ['duplicate role', JSON.stringify({ version: 1, anchors: [{ ...good, roles: ['psp', 'psp'] }] })],
    ['empty roles', JSON.stringify({ version: 1, anchors: [{ ...good, roles: [] }] })],
    ['roles as string', JSON.stringify({ version: 1, anchors: [{ ...good, roles: 'psp' }] })],
    ['wrong version', JSON.stringify({ version: 2, anchors: [good] })],
    ['version as string', JSON.stringify({ version: '1', anchors: [good] })],
    ['no anchors', JSON.stringify({ version: 1, anchors: [] })],
    ['duplicate anchor names', JSON.stringify({ version: 1, anchors: [good, good] })],
    ['bad pin', JSON.stringify({ version: 1, anchors: [{ ...good, pins: ['sha256:AB'] }] })],
    ['uppercase pin', JSON.stringify({ version: 1, anchors: [{ ...good, pins: ['sha256:' + 'AB'.repeat(32)] }] })],
    ['empty pins', JSON.stringify({ version: 1, anchors: [{ ...good, pins: [] }] })],
    ['missing cert', JSON.stringify({ version: 1, anchors: [{ name: 'x', roles: '*' }] })],
    ['not JSON', '{"version":1,'],
    ['trailing garbage', JSON.stringify({ version: 1, anchors: [good] }) + ' x'],
    ['array', '[]'],
  ];
  for (const [what, text] of cases) {
    assert.throws(() => parseTrustPolicy(text, readPem), invalid, what);
  }
});

test('parseTrustPolicy refuses a non-CA certificate as an anchor', async () => {
  const leaf = await issue(ops, { role: 'charger', id: 'CP-1', operator: 'ChargeCo' });
  assert.throws(() => parseTrustPolicy(JSON.stringify({ version: 1, anchors: [{ name: 'x', cert: leaf.certPem, roles: '*' }] }), readPem), invalid);
  assert.throws(() => trustPolicyFromCaPem(leaf.certPem), invalid);
  // the readPem error propagates as is
  assert.throws(() => parseTrustPolicy(JSON.stringify({ version: 1, anchors: [{ name: 'x', cert: 'missing.pem', roles: '*' }] }), readPem), { code: 'ERR_NOT_FOUND' });
});

test('trustPolicyFromCaPem: one anchor named after the CA, every role', () => {
  const p = trustPolicyFromCaPem(ops.certPem);
  assert.deepEqual(p, { anchors: [{ name: 'Ops CA', certDer: ops.certDer, roles: '*' }] });
  assert.match(certFingerprint(ops.certDer), /^sha256:/);
});

test('isTrustPolicyJson tells PEM from JSON', () => {
  assert.equal(isTrustPolicyJson(ops.certPem), false);
  assert.equal(isTrustPolicyJson('  \n{"version":1}'), true);
  assert.equal(isTrustPolicyJson(''), false);
});

test('strict JSON reader agrees with JSON.parse on valid JSON without duplicate keys (property)', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const text = JSON.stringify(v, null, 1);
      assert.deepEqual(parseStrictJson(text, 't'), JSON.parse(text));
    }),
    { numRuns: 300 },
  );
  for (const bad of ['{"a":1,"a":2}', '{"a":{"b":1,"b":1}}', '[{"x":1,"x":1}]', "{'a':1}", '{"a":1,}', '[1,]', '01', '"\u0001"', 'NaN', '{"a" 1}', '']) {
    assert.throws(() => parseStrictJson(bad, 't'), invalid, bad);
  }
  assert.throws(() => parseStrictJson('['.repeat(100) + ']'.repeat(100), 't'), invalid, 'depth limit');
  const proto = parseStrictJson('{"__proto__":{"polluted":1}}', 't') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.deepEqual(Object.keys(proto), ['__proto__']);
});

test('roles and identity validation', () => {
  assert.equal(ROLES.length, 8);
  for (const r of ROLES) assert.ok(isRole(r));
  for (const x of ['Charger', '', 'admin', null, 1, 'psp ']) assert.equal(isRole(x), false);
  validateIdentityInfo({ role: 'gateway', id: 'gw-1.a:b_c', operator: 'Stromnetz Süd AG (Ost)' });
  for (const bad of [
    null,
    'x',
    { role: 'gateway', id: 'gw 1', operator: 'o' },
    { role: 'gateway', id: 'é', operator: 'o' },
    { role: 'gateway', id: 'x'.repeat(65), operator: 'o' },
    { role: 'gateway', id: 'x', operator: 'o'.repeat(65) },
    { role: 'gateway', id: 'x', operator: 'tab\there' },
    { role: 'gateway', id: 'x', operator: 'del\u007f' },
    { role: 'gateway', id: 'x', operator: 'c1\u0085' },
    { role: 'gateway', id: 'x', operator: 'lone \ud800' },
    { role: 'gateway', id: 'x', operator: 'trailing ' },
  ]) {
    assert.throws(() => validateIdentityInfo(bad), invalid, JSON.stringify(bad));
  }
  // 64 code points (not UTF-16 units) is the limit
  validateIdentityInfo({ role: 'gateway', id: 'x', operator: '😀'.repeat(64) });
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/), (id) => {
      validateIdentityInfo({ role: 'charger', id, operator: 'o' });
    }),
  );
});

test('TrustedClock: now() = max(wall, mark); observe() only raises the mark', () => {
  let wall = 1_000;
  const c = new TrustedClock(0, () => wall);
  assert.equal(c.now().getTime(), 1_000);
  c.observe(5_000);
  assert.equal(c.mark, 5_000);
  assert.equal(c.now().getTime(), 5_000, 'wall behind the mark');
  c.observe(new Date(3_000));
  assert.equal(c.mark, 5_000, 'never lowered');
  c.observe(NaN);
  assert.equal(c.mark, 5_000);
  wall = 9_000;
  assert.equal(c.now().getTime(), 9_000, 'wall ahead of the mark');
  assert.equal(c.mark, 5_000, 'reading the wall does not move the mark');
  assert.equal(new TrustedClock(7_000, () => 1).now().getTime(), 7_000);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 45 })), fc.integer({ min: 0, max: 2 ** 45 }), (obs, w) => {
      const k = new TrustedClock(0, () => w);
      let max = 0;
      for (const o of obs) {
        k.observe(o);
        max = Math.max(max, o);
        assert.equal(k.mark, max);
        assert.equal(k.now().getTime(), Math.max(w, max));
      }
    }),
  );
});
