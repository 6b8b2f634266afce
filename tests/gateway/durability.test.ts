// kill -9 of the gateway between acknowledged messages loses nothing: every
// message `evseal send` saw accepted reaches the offline recipient exactly
// once through `evseal recv`, and opens. Real processes, real sockets, the
// built CLI (dist/), the embedded SQLite store.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PASSPHRASE, World } from '../helpers/world.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');
const w = new World();
w.now = Date.now();
after(() => w.cleanup());
const env = { ...process.env, EVSEAL_PASSPHRASE: PASSPHRASE };

function startGateway(data: string, ca: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', '--data', data, '--trust', join(ca, 'ca.pem'), '--crl', join(ca, 'crl.pem')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /"url":"(ws:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]! });
      }
    });
    proc.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${out}`)));
  });
}

function cli(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('messages acknowledged to an offline recipient survive SIGKILLs of the gateway, arrive exactly once and open', async () => {
  const ca = await w.ca('ca');
  const prov = await w.identity(ca, 'provisioning', 'prov-d');
  const cp = await w.identity(ca, 'charger', 'CP-d');
  const data = w.path('gw');
  const common = (id: string, url: string) => ['--as', id, '--gateway', url, '--trust', join(ca, 'ca.pem'), '--crl', join(ca, 'crl.pem')];

  // The charger publishes its bundle once (recv with a short timeout), then is offline.
  let gw = await startGateway(data, ca);
  assert.equal(cli(['recv', ...common(cp, gw.url), '--timeout', '1']).code, 0);

  const payloads: string[] = [];
  const accepted: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 4; i++) {
      const p = `secret-${round}-${i}-${randomBytes(6).toString('hex')}`;
      const f = w.path(`in-${round}-${i}`);
      writeFileSync(f, p);
      const r = cli(['send', ...common(prov, gw.url), '--to', 'CP-d', '--kind', 'credentials', '--in', f, '--json']);
      assert.equal(r.code, 0, r.stderr);
      accepted.push((JSON.parse(r.stdout) as { id: string }).id);
      payloads.push(p);
    }
    // kill -9 right after the last acknowledgement, then restart on the same data.
    gw.proc.kill('SIGKILL');
    await new Promise((r) => gw.proc.once('exit', r));
    gw = await startGateway(data, ca);
  }

  const out = w.path('out');
  const r = cli(['recv', ...common(cp, gw.url), '--count', String(accepted.length), '--out-dir', out, '--timeout', '20', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; status: string });
  assert.deepEqual(lines.map((l) => l.id), accepted, 'every accepted message, once, in order');
  assert.deepEqual(readdirSync(out).sort(), [...accepted].sort());
  assert.deepEqual(accepted.map((id) => readFileSync(join(out, id), 'utf8')), payloads);

  // Nothing is left to deliver.
  const again = cli(['recv', ...common(cp, gw.url), '--timeout', '1', '--json']);
  assert.equal(again.code, 0);
  assert.equal(again.stdout.trim(), '');
  gw.proc.kill('SIGTERM');
  await new Promise((r) => gw.proc.once('exit', r));
});
