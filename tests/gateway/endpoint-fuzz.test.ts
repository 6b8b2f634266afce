// Authenticated endpoint frames from fast-check, against the real gateway
// over a real socket: every frame type of the protocol, with fields of the
// right type and of the wrong one, missing and unknown fields, numbers out
// of range and odd strings, plus text that is not a frame at all. After
// each frame a probe must be answered on the same connection, so no frame
// crashes or stalls the gateway, and everything sent back is a protocol
// frame; errors carry a stable code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import WebSocket from 'ws';
import { World } from '../helpers/world.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';
import { challengeInput } from '../../src/core/challenge.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { signWith } from '../../src/core/signature.js';
import { FRAME_FIELDS, type FieldKind } from '../../src/gateway/endpoint/frames.js';

const w = new World();
w.now = Date.now();
let gw: RunningGateway;
let ws: WebSocket;
const inbox: Record<string, unknown>[] = [];
let waiter: (() => void) | undefined;

before(async () => {
  const ca = await w.ca('ca');
  const crl = join(ca, 'crl.pem');
  const prov = await w.identity(ca, 'provisioning', 'prov-f');
  await w.identity(ca, 'charger', 'cp-f');
  gw = await startGateway({ port: 0, dataDir: w.path('data'), trust: w.trust(ca), crlFiles: [crl], log: pino({ level: 'silent' }), limits: { maxBadMessages: 1_000_000 } });
  const ep = w.endpoint(prov, w.trust(ca), [crl]);
  ws = new WebSocket(`${gw.url}/endpoint`);
  ws.on('message', (m) => {
    inbox.push(JSON.parse(m.toString()) as Record<string, unknown>);
    waiter?.();
  });
  const challenge = (await next((f) => f.t === 'challenge')) as { gateway: string; nonce: string };
  const nonce = randomBytes(32);
  const input = challengeInput(nonce, fromB64u(challenge.nonce), challenge.gateway, new Uint8Array(0));
  ws.send(JSON.stringify({ t: 'auth', chain: ep.id.chain.map(b64u), nonce: b64u(nonce), sig: b64u(signWith('challenge', ep.id.privateKey, input)) }));
  await next((f) => f.t === 'welcome');
  inbox.length = 0;
});
after(async () => {
  ws.terminate();
  await gw.close();
  w.cleanup();
});

/** The first frame received (from the start of the inbox) that `pred` accepts; it and everything before it are taken. */
async function next(pred: (f: Record<string, unknown>) => boolean, ms = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const i = inbox.findIndex(pred);
    if (i >= 0) return inbox.splice(0, i + 1)[i]!;
    if (Date.now() > deadline) throw new Error(`no answer in ${ms} ms; got ${JSON.stringify(inbox).slice(0, 300)}`);
    await new Promise<void>((r) => {
      waiter = r;
      setTimeout(r, 50);
    });
  }
}

const TYPES = [
  'auth', 'send', 'ack', 'nack', 'notice-ack', 'publish-bundle', 'get-bundle', 'publish-prekeys', 'claim-prekey', 'publish-crl', 'get-crls',
  'audit-proof', 'audit-consistency', 'firmware-held', 'firmware-chunk', 'firmware-commit', 'rollout', 'rollout-status', 'no-such-frame',
];
const FIELDS = ['ref', 'format', 'to', 'kind', 'id', 'expires', 'body', 'seqs', 'seq', 'reason', 'bundle', 'prekeys', 'pem', 'index', 'size', 'from', 'packageId', 'offset', 'data', 'sha256', 'stations', 'all', 'lifetime', 'chain', 'nonce', 'sig', '__proto__', 'constructor', 'x'];
const odd = fc.constantFrom('', '../etc/passwd', 'cp-f', 'prov-f', 'nobody', 'envelope', 'session', 'ocpp-call', 'ocpp-cert', 'command', 'config', 'firmware', 'AAAA', '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----', '{"action":"Reset","payload":{}}', '\u0000', '\ud800', 'x'.repeat(300));
const int = fc.oneof(fc.integer({ min: -3, max: 100 }), fc.constantFrom(0, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER, Date.now() + 60_000), fc.double());
const value: fc.Arbitrary<unknown> = fc.oneof(
  int,
  odd,
  fc.string({ maxLength: 30 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(int, odd), { maxLength: 6 }),
  fc.array(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(int, odd), { maxKeys: 3 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(int, odd), { maxKeys: 3 }),
);
/** A frame of a known type whose fields all have the right kind: these reach the handlers. */
const ofKind: Record<FieldKind, fc.Arbitrary<unknown>> = {
  string: fc.oneof(odd, fc.string({ maxLength: 30 })),
  int: fc.oneof(fc.nat(50), fc.constantFrom(2 ** 31, Number.MAX_SAFE_INTEGER, Date.now() + 60_000)),
  'string[]': fc.array(odd, { maxLength: 4 }),
  'int[]': fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 5 }),
  array: fc.array(fc.oneof(odd, fc.dictionary(fc.constantFrom('kid', 'kem', 'pub', 'sig', 'x'), odd, { maxKeys: 4 })), { maxLength: 3 }),
  bool: fc.boolean(),
};
const wellTyped = fc.constantFrom(...Object.keys(FRAME_FIELDS)).chain((t) => {
  const spec = FRAME_FIELDS[t as keyof typeof FRAME_FIELDS];
  const fields = Object.fromEntries(Object.entries(spec).map(([k, kind]) => [k, kind.endsWith('?') ? fc.option(ofKind[kind.slice(0, -1) as FieldKind], { nil: undefined }) : ofKind[kind as FieldKind]]));
  return fc.record(fields).map((f) => JSON.stringify({ t, ...f }));
});
const frame = fc.oneof(
  { weight: 6, arbitrary: wellTyped },
  { weight: 4, arbitrary: fc.record({ t: fc.constantFrom(...TYPES), fields: fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 8 }) }).map(({ t, fields }) => JSON.stringify({ ...fields, t })) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 40 }), fc.json({ maxDepth: 3 })) },
);

const CODES = new Set<string>(ERROR_CODES);
const ANSWERS = new Set(['error', 'accepted', 'acked', 'ok', 'bundle', 'prekey', 'crls', 'proof', 'consistency', 'firmware', 'rollout', 'notice', 'msg']);

test('random authenticated frames never crash or stall the gateway, and every answer is a protocol frame', { timeout: 240_000 }, async () => {
  let probe = 1_000_000_000;
  await fc.assert(
    fc.asyncProperty(frame, async (text) => {
      ws.send(text);
      const ref = ++probe;
      ws.send(JSON.stringify({ t: 'get-crls', ref }));
      const before = [...inbox];
      await next((f) => f.t === 'crls' && f.ref === ref);
      for (const f of before.concat(inbox.splice(0))) {
        assert.ok(typeof f.t === 'string' && ANSWERS.has(f.t), `unexpected frame ${JSON.stringify(f).slice(0, 200)}`);
        if (f.t === 'error') assert.ok(typeof f.code === 'string' && CODES.has(f.code), `error code ${String(f.code)}`);
      }
      assert.equal(ws.readyState, WebSocket.OPEN);
    }),
    { numRuns: 400 },
  );
  const health = await fetch(`${gw.url.replace(/^ws/, 'http')}/healthz`);
  assert.equal(health.status, 200);
});
