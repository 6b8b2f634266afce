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
import { GatewayClient } from '../../src/client/gateway-client.js';

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

test('SIGKILL while submissions are in flight: every acknowledged message arrives exactly once; resends are not duplicated', async () => {
  const ca = await w.ca('ca-k');
  const prov = w.endpoint(await w.identity(ca, 'provisioning', 'prov-k'), w.trust(ca), [join(ca, 'crl.pem')]);
  const cpDir = await w.identity(ca, 'charger', 'CP-k');
  const cp = w.endpoint(cpDir, w.trust(ca), [join(ca, 'crl.pem')]);
  const data = w.path('gw2');
  let gw = await startGateway(data, ca);
  // The charger publishes its bundle, then is offline.
  const c0 = await GatewayClient.connect(gw.url, { chain: cp.id.chain, privateKey: cp.id.privateKey });
  await c0.publishBundle(readFileSync(join(cpDir, 'bundle.json'), 'utf8'));
  await c0.close();

  const envs: string[] = [];
  const accepted = new Set<string>();
  let unacknowledged = 0; // sends cut off by a kill
  const idOf = (env: string) => (JSON.parse(Buffer.from((JSON.parse(env) as { hdr: string }).hdr, 'base64url').toString()) as { id: string }).id;
  for (let round = 0; round < 3; round++) {
    const pc = await GatewayClient.connect(gw.url, { chain: prov.id.chain, privateKey: prov.id.privateKey });
    const bundle = (await pc.getBundle('CP-k'))!;
    // Resend whatever was not acknowledged before the last kill (same envelopes, same ids).
    const pending = envs.filter((e) => !accepted.has(idOf(e)));
    for (let i = 0; i < 40; i++) envs.push(prov.seal(bundle, new TextEncoder().encode(`r${round}-${i}`), { kind: 'credentials' }));
    const batch = [...pending, ...envs.slice(-40)];
    let killed = false;
    let firstAck: () => void = () => {};
    const acked = new Promise<void>((r) => (firstAck = r));
    const sends: Promise<void>[] = [];
    // Submissions go out 1 ms apart, so the gateway commits them in several
    // batches (it groups what arrives in one event-loop turn); the kill comes
    // with the first acknowledgement, while later ones are still in flight.
    const issuing = (async () => {
      for (const e of batch) {
        if (killed) return;
        sends.push(
          pc.sendEnvelope(e).then(
            () => {
              accepted.add(idOf(e));
              firstAck();
            },
            () => void unacknowledged++,
          ),
        );
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    // (If no submission at all is acknowledged, the kill comes once all have failed.)
    await Promise.race([acked, issuing.then(() => Promise.allSettled(sends))]);
    gw.proc.kill('SIGKILL');
    killed = true;
    await issuing;
    await Promise.all(sends);
    await new Promise((r) => gw.proc.once('exit', r));
    gw = await startGateway(data, ca);
  }
  // A last round without a kill, so every envelope ends up acknowledged.
  const pc = await GatewayClient.connect(gw.url, { chain: prov.id.chain, privateKey: prov.id.privateKey });
  for (const e of envs.filter((x) => !accepted.has(idOf(x)))) {
    await pc.sendEnvelope(e);
    accepted.add(idOf(e));
  }
  await pc.close();
  assert.equal(accepted.size, envs.length);
  assert.ok(unacknowledged > 0, 'the kills interrupted submissions in flight');

  const got: string[] = [];
  const c = await GatewayClient.connect(gw.url, { chain: cp.id.chain, privateKey: cp.id.privateKey, onMessage: (d) => got.push(d.id) });
  const deadline = Date.now() + 20_000;
  while (got.length < envs.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(got.length, envs.length, 'each message exactly once');
  assert.deepEqual(new Set(got), accepted);
  await c.close();
  gw.proc.kill('SIGTERM');
  await new Promise((r) => gw.proc.once('exit', r));
});
