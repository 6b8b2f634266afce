#!/usr/bin/env node
/**
 * `npm run demo`: the whole system on the embedded default. A gateway (built-in
 * CSMS, SQLite store) in this process; chargers on OCPP 1.6, 2.0.1 and 2.1;
 * a service tool, a PSP, a fleet backend, a firmware publisher, a provisioning service and a CA
 * service as endpoints. Every flow of the mission runs through the gateway;
 * for each, what the CSMS/gateway saw is printed beside what the endpoint
 * received, and the gateway's data and logs are scanned for the flow's
 * secrets (with a planted copy as a positive control). Exits non-zero if any
 * flow or check fails.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.js';
import { addStation } from '../gateway/stations.js';
import { makeWorld } from './setup.js';
import { filesUnder, scan } from './scan.js';
import { runFlows, type FlowReport } from './flows.js';

const keep = process.argv.includes('--keep');
const t0 = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'evseal-demo-'));
const out = (s = ''): void => void process.stdout.write(s + '\n');

out('evseal demo: every flow through one gateway on the embedded default (SQLite, no external service)');
out(`working directory: ${dir}${keep ? ' (kept)' : ''}\n`);

const world = await makeWorld(dir);
const logFile = join(dir, 'gateway', 'gateway.log');
const gw = await startGateway({
  port: 0,
  dataDir: join(dir, 'gateway'),
  trust: world.backendTrust,
  crlFiles: world.crls,
  caService: 'ca-svc',
  log: pino({ base: { component: 'evseal-gateway' } }, pino.destination({ dest: logFile, sync: true, mkdir: true })),
  limits: { retryDelayMs: 200 },
});
out(`gateway listening on ${gw.url} (OCPP at ${gw.url}/ocpp/<station>, endpoints at ${gw.url}/endpoint)\n`);

let reports: FlowReport[] = [];
let failed = false;
try {
  reports = await runFlows({ world, gw, addStation: (id, password) => addStation(gw.store, { id, password }, Date.now()).then(() => undefined), out });
} catch (e) {
  failed = true;
  out(`demo failed: ${(e as Error).stack ?? String(e)}`);
}
// Blindness: no flow's secret may be in the gateway's store (with its WAL, scanned while the
// gateway runs and again after it has folded the WAL in), key file or log, in any encoding.
const secrets = reports.flatMap((r) => r.secrets);
const running = filesUnder(join(dir, 'gateway'));
const hits = scan(running, secrets);
await gw.close();
const files = filesUnder(join(dir, 'gateway'));
hits.push(...scan(files, secrets));
const planted = join(dir, 'planted-control.txt');
const control = secrets[0] ?? `control-${randomBytes(4).toString('hex')}`;
writeFileSync(planted, `positive control: ${Buffer.from(control).toString('base64')}\n`);
const controlFound = scan([planted], [control]).length > 0;
// The firmware store (DATA/firmware: packages, rollout state, URL key) is part of what is scanned.
const firmwareFiles = files.filter((f) => f.startsWith(join(dir, 'gateway', 'firmware') + sep));
const firmwareScanned = firmwareFiles.some((f) => f.endsWith('.evfw'));
out('== scanning what the gateway wrote ==');
out(`  files scanned while running: ${running.map((f) => f.slice(dir.length + 1)).join(', ')}`);
out(`  and after shutdown: ${files.map((f) => f.slice(dir.length + 1)).join(', ')} (${files.reduce((n, f) => n + readFileSync(f).length, 0)} bytes)`);
out(`  of which the gateway's firmware store: ${firmwareFiles.map((f) => f.slice(dir.length + 1)).join(', ') || 'NONE: no package was scanned'}`);
out(`  secrets searched: ${secrets.length} (raw, hex, base64, base64url)`);
out(`  positive control (a planted base64 copy): ${controlFound ? 'found, so the scanner works' : 'NOT FOUND: the scanner is broken'}`);
for (const r of reports) {
  const mine = hits.filter((h) => r.secrets.includes(h.secret));
  out(`  ${r.name}: ${mine.length === 0 ? 'no secret found' : `LEAKED ${mine.map((h) => `${h.form} in ${h.file}`).join('; ')}`}`);
}

out('\n== summary ==');
for (const r of reports) out(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.ok ? '' : `: ${r.problems.join('; ')}`}`);
const ok = !failed && reports.length > 0 && reports.every((r) => r.ok) && hits.length === 0 && controlFound && firmwareScanned;
out(`\n${ok ? 'demo complete: every flow worked and no secret reached the gateway' : 'demo FAILED'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
if (!keep) rmSync(dir, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
