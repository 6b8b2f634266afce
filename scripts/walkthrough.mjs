// The README's main job until the gateway demo exists: a CLI walk-through of
// evseal's core on the embedded default (files only, no external service).
// Every step runs the real `evseal` binary and shows its command line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'evseal-walkthrough-'));
const keep = process.argv.includes('--keep');
// Endpoint keystores are encrypted under a passphrase (scrypt); the demo sets one.
const env = { ...process.env, EVSEAL_PASSPHRASE: process.env.EVSEAL_PASSPHRASE ?? 'demo passphrase - choose your own' };
let failures = 0;

function run(title, args, { input, expectFail = false } = {}) {
  process.stdout.write(`\n\x1b[1m# ${title}\x1b[0m\n$ evseal ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: work, input, encoding: 'utf8', env });
  if (r.stdout) process.stdout.write(r.stdout.length > 600 ? r.stdout.slice(0, 600) + '…\n' : r.stdout);
  if (r.stderr) process.stdout.write(r.stderr);
  const ok = expectFail ? r.status !== 0 : r.status === 0;
  process.stdout.write(`(exit ${r.status}${expectFail ? ', refused as expected' : ''})\n`);
  if (!ok) failures++;
  return r;
}

try {
  run('The operator creates its CA (ECDSA P-256 by default)', ['pki', 'init', '--dir', 'operator-ca', '--name', 'Operator Root']);
  run('A payment provider runs its own CA', ['pki', 'init', '--dir', 'psp-ca', '--name', 'PSP Root', '--alg', 'ed25519']);

  run('The charger generates its key on the device and writes a CSR', ['keys', 'init', '--role', 'charger', '--id', 'CP-001', '--operator', 'ChargeCo', '--out', 'charger']);
  run('The operator CA certifies the CSR (the private key never left the charger)', ['pki', 'sign', '--ca', 'operator-ca', '--csr', 'charger/csr.pem', '--out', 'charger-cert.pem']);
  run('The charger installs its certificate, makes prekeys and publishes bundle.json', ['keys', 'install', '--as', 'charger', '--cert', 'charger-cert.pem']);
  run('A provisioning service is issued locally (pki issue: a convenience for demos)', ['pki', 'issue', '--ca', 'operator-ca', '--role', 'provisioning', '--id', 'prov-1', '--operator', 'ChargeCo', '--out', 'provisioning']);
  run('So is the payment provider, under the PSP CA', ['pki', 'issue', '--ca', 'psp-ca', '--role', 'psp', '--id', 'psp-1', '--operator', 'PayCo', '--out', 'psp']);

  // The charger's trust policy: the operator CA may certify provisioning and
  // service tools, only the PSP CA may certify payment providers.
  writeFileSync(
    join(work, 'charger-trust.json'),
    JSON.stringify({ version: 1, anchors: [
      { name: 'operator', cert: 'operator-ca/ca.pem', roles: ['provisioning', 'service-tool'] },
      { name: 'psp', cert: 'psp-ca/ca.pem', roles: ['psp'] },
    ] }, null, 2),
  );
  writeFileSync(join(work, 'wifi.json'), JSON.stringify({ ssid: 'depot-7', psk: 'correct horse battery staple' }));

  run('Provisioning seals Wi-Fi credentials to the charger (validating its bundle, chain and CRL first)', [
    'seal', '--as', 'provisioning', '--to', 'charger/bundle.json', '--trust', 'operator-ca/ca.pem', '--crl', 'operator-ca/crl.pem',
    '--kind', 'credentials', '--content-type', 'application/json', '--in', 'wifi.json', '--out', 'wifi.env',
  ]);
  const env = readFileSync(join(work, 'wifi.env'), 'utf8');
  process.stdout.write(`\nThe envelope is ${env.length} bytes; it contains the passphrase in clear: ${env.includes('battery')}\n`);
  run('Any intermediary can read the clear metadata, nothing more', ['inspect', '--in', 'wifi.env']);
  run('The charger opens it under its trust policy', [
    'open', '--as', 'charger', '--trust', 'charger-trust.json', '--crl', 'operator-ca/crl.pem', '--crl', 'psp-ca/crl.pem', '--in', 'wifi.env',
  ]);
  run('Opening the same envelope again is a replay', ['open', '--as', 'charger', '--trust', 'charger-trust.json', '--in', 'wifi.env'], { expectFail: true });

  const tampered = env.replace(/"ct":"(.)/, (_m, c) => `"ct":"${c === 'A' ? 'B' : 'A'}`);
  writeFileSync(join(work, 'tampered.env'), tampered);
  run('A tampered envelope is refused with one opaque error', ['open', '--as', 'charger', '--trust', 'charger-trust.json', '--in', 'tampered.env'], { expectFail: true });

  run('A PSP certificate from the operator CA cannot read payment data: the policy allows only the PSP CA for psp', [
    'pki', 'issue', '--ca', 'operator-ca', '--role', 'psp', '--id', 'fake-psp', '--operator', 'ChargeCo', '--out', 'fake-psp',
  ]);
  run('The charger refuses to seal payment data to it', [
    'seal', '--as', 'charger', '--to', 'fake-psp/bundle.json', '--trust', 'charger-trust.json', '--kind', 'payment', '--in', 'wifi.json',
  ], { expectFail: true });
  run('…and seals to the real PSP', [
    'seal', '--as', 'charger', '--to', 'psp/bundle.json', '--trust', 'charger-trust.json', '--kind', 'payment', '--in', 'wifi.json', '--out', 'pay.env',
  ]);
  run('The PSP opens it', ['open', '--as', 'psp', '--trust', 'operator-ca/ca.pem', '--crl', 'operator-ca/crl.pem', '--in', 'pay.env', '--json']);

  run('The operator revokes the provisioning service', ['pki', 'revoke', '--ca', 'operator-ca', '--cert', 'provisioning/cert.pem']);
  run('Its next envelope is sealed…', [
    'seal', '--as', 'provisioning', '--to', 'charger/bundle.json', '--trust', 'operator-ca/ca.pem', '--kind', 'credentials', '--in', 'wifi.json', '--out', 'late.env',
  ]);
  run('…and refused by the charger once it has the new CRL', [
    'open', '--as', 'charger', '--trust', 'charger-trust.json', '--crl', 'operator-ca/crl.pem', '--in', 'late.env',
  ], { expectFail: true });

  process.stdout.write(`\n${failures === 0 ? 'walk-through complete: every step behaved as described' : `${failures} step(s) did not behave as described`}\n`);
  process.stdout.write(`files: ${keep ? work : '(removed; pass --keep to keep them)'}\n`);
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
process.exit(failures === 0 ? 0 : 1);
