// The gateway is an untrusted intermediary for the endpoints too: `evseal
// recv` against a fake gateway (a plain `ws` server speaking the endpoint
// protocol) that names a genuine envelope with ids of its own choosing. A
// delivery whose id could climb out of --out-dir is dropped by the client
// at its boundary; otherwise the file is named by the envelope's signed
// header id, whatever the gateway says.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { PASSPHRASE, World } from '../helpers/world.js';
import { envelopeHeader } from '../../src/core/envelope.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');
const w = new World();
w.now = Date.now();
after(() => w.cleanup());

test('recv names files by the signed envelope id and drops deliveries whose id is a path', async () => {
  const ca = await w.ca('ca');
  const prov = await w.identity(ca, 'provisioning', 'prov-h');
  const cp = await w.identity(ca, 'charger', 'CP-h');
  const sender = w.endpoint(prov, w.trust(ca), [join(ca, 'crl.pem')]);
  const secret = `plaintext-${randomBytes(6).toString('hex')}`;
  const env = sender.seal(w.bundle(cp), Buffer.from(secret), { kind: 'config' });
  const realId = envelopeHeader(env).id;

  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/endpoint' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  const acks: number[] = [];
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ t: 'challenge', v: 1, gateway: 'evil', key: randomBytes(32).toString('base64url'), nonce: randomBytes(32).toString('base64url') }));
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as { t: string; ref?: number; seqs?: number[] };
      if (f.t === 'auth') {
        ws.send(JSON.stringify({ t: 'welcome', id: 'CP-h', role: 'charger', operator: 'Test' }));
        const msg = { t: 'msg', format: 'envelope', from: 'prov-h', kind: 'config', expires: Date.now() + 60_000, body: env };
        ws.send(JSON.stringify({ ...msg, seq: 1, id: '../escaped' }));
        ws.send(JSON.stringify({ ...msg, seq: 2, id: 'chosen-by-the-gateway' }));
      } else if (f.t === 'ack') {
        acks.push(...f.seqs!);
        ws.send(JSON.stringify({ t: 'acked', seqs: f.seqs, receipts: [] }));
      } else if (f.ref !== undefined) ws.send(JSON.stringify({ t: 'ok', ref: f.ref, count: 0 }));
    });
  });

  const out = w.path('inbox');
  const args = ['recv', '--as', cp, '--gateway', url, '--trust', join(ca, 'ca.pem'), '--crl', join(ca, 'crl.pem'), '--count', '1', '--out-dir', out, '--timeout', '10', '--json'];
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  await new Promise<void>((r) => wss.close(() => r()));

  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(join(out, '..', 'escaped')), false, 'nothing written outside --out-dir');
  assert.deepEqual(readdirSync(out), [realId]);
  assert.equal(readFileSync(join(out, realId), 'utf8'), secret);
  assert.deepEqual(acks, [2], 'the dropped delivery is neither opened nor acknowledged');
  assert.equal((JSON.parse(r.stdout.trim()) as { id: string }).id, realId);
});
