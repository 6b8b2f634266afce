// CLI transcript for `evseal firmware` (the built binary, as in
// tests/cli/transcripts.test.ts): help, pack, device-init, inspect,
// device-package, unpack, and refusals with their exit code and one line.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = new URL('../../dist/cli/main.js', import.meta.url).pathname;

test('transcript: evseal firmware pack / unpack', () => {
  const work = mkdtempSync(join(tmpdir(), 'evseal-fw-cli-'));
  const env = { ...process.env, NO_COLOR: '1', EVSEAL_NOW: '2026-06-01T00:00:00Z', EVSEAL_PASSPHRASE: 'transcript passphrase' };
  const run = (line: string, expectExit = 0): { stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [bin, ...line.split(' ')], { cwd: work, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, expectExit, `evseal ${line}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return { stdout: r.stdout, stderr: r.stderr };
  };
  try {
    for (const sub of ['pack', 'unpack', 'device-init', 'status', 'inspect', 'device-package']) {
      assert.match(run(`firmware ${sub} --help`).stdout, /^Usage: evseal firmware /);
    }
    assert.match(run('firmware pack --help').stdout, /--version <V>/);
    run('pki init --dir maker --name Maker');
    run('pki init --dir op --name Operator');
    run('pki issue --ca maker --role firmware-publisher --id pub-1 --operator Maker --out pub');
    run('pki issue --ca op --role charger --id CP-001 --operator ChargeCo --out cp1');
    run('pki issue --ca op --role charger --id CP-002 --operator ChargeCo --out cp2');
    writeFileSync(join(work, 'policy.json'), JSON.stringify({ version: 1, anchors: [{ name: 'op', cert: 'op/ca.pem', roles: ['charger'] }, { name: 'maker', cert: 'maker/ca.pem', roles: ['firmware-publisher'] }] }));
    writeFileSync(join(work, 'fleet.txt'), '# the fleet\ncp1/bundle.json\ncp2/cert.pem\n');
    const image = randomBytes(100_000);
    writeFileSync(join(work, 'image.bin'), image);

    // A publisher must be a firmware-publisher; the version must parse.
    assert.match(run('firmware pack --as cp1 --trust op/ca.pem --crl op/crl.pem --in image.bin --version 2.0 --model EVB-22 --fleet fleet.txt --out x.evfw', 2).stderr, /^evseal: --as must be a firmware-publisher identity \(this one is charger\) \[ERR_USAGE\]\n$/);
    assert.match(run('firmware pack --as pub --trust op/ca.pem --crl op/crl.pem --in image.bin --version 2.0-rc1 --model EVB-22 --fleet fleet.txt --out x.evfw', 1).stderr, /ERR_INVALID_INPUT/);
    assert.ok(!existsSync(join(work, 'x.evfw')));

    const packed = JSON.parse(run('firmware pack --as pub --trust op/ca.pem --crl op/crl.pem --in image.bin --version 2.0 --model EVB-22 --fleet fleet.txt --out fw.evfw --json').stdout);
    assert.equal(packed.slots, 2);
    assert.equal(packed.size, 100_000);
    const index = JSON.parse(run('firmware inspect --in fw.evfw').stdout);
    assert.deepEqual(index.deviceIds, ['CP-001', 'CP-002']);
    assert.match(run('firmware device-package --in fw.evfw --device CP-002 --out cp2.evfw').stdout, /^device package for CP-002: /);

    run('firmware device-init --as cp1 --model EVB-22 --version 1.0');
    run('firmware device-init --as cp2 --model EVB-22 --version 1.0');
    assert.match(run('firmware device-init --as cp2 --model EVB-22 --version 1.0', 2).stderr, /already has a firmware record/);
    const trust = '--trust policy.json --crl op/crl.pem --crl maker/crl.pem';

    // A tampered device package: one line, exit 1, nothing written, the reason in the security log.
    const tampered = readFileSync(join(work, 'cp2.evfw'));
    tampered[tampered.length - 100]! ^= 1;
    writeFileSync(join(work, 'bad.evfw'), tampered);
    assert.equal(run(`firmware unpack --as cp2 ${trust} --in bad.evfw --out bad.bin`, 1).stderr, 'evseal: firmware package rejected [ERR_FIRMWARE_REJECTED]\n');
    assert.ok(!readdirSync(work).some((f) => f.includes('bad.bin')));
    assert.match(readFileSync(join(work, 'cp2/security.log'), 'utf8'), /"reason":"decrypt-failed"/);
    // Another device's package.
    assert.match(run(`firmware unpack --as cp1 ${trust} --in cp2.evfw --out other.bin`, 1).stderr, /^evseal: firmware package rejected \[ERR_FIRMWARE_REJECTED\]\n$/);

    assert.match(run(`firmware unpack --as cp2 ${trust} --in cp2.evfw --out new.bin`).stdout, /^installed EVB-22 2\.0 from pub-1 \(100000 bytes\) to new\.bin\n$/);
    assert.ok(readFileSync(join(work, 'new.bin')).equals(image));
    assert.deepEqual(JSON.parse(run('firmware status --as cp2 --json').stdout), { model: 'EVB-22', version: '2.0' });
    // The same version again is a rollback; --allow-downgrade takes it.
    assert.match(run(`firmware unpack --as cp2 ${trust} --in cp2.evfw --out again.bin`, 1).stderr, /^evseal: firmware 2\.0 is not newer than the installed 2\.0 \(--allow-downgrade to force\) \[ERR_FIRMWARE_ROLLBACK\]\n$/);
    assert.ok(!existsSync(join(work, 'again.bin')));
    const j = JSON.parse(run(`firmware unpack --as cp1 ${trust} --in fw.evfw --out cp1.bin --json`).stdout);
    assert.deepEqual(j, { version: '2.0', model: 'EVB-22', size: 100_000, publisher: 'pub-1', out: 'cp1.bin' });
    // Revocation fails closed without the maker's CRL.
    run('pki issue --ca op --role charger --id CP-003 --operator ChargeCo --out cp3');
    run('firmware device-init --as cp3 --model EVB-22 --version 1.0');
    assert.match(run('firmware unpack --as cp3 --trust policy.json --crl op/crl.pem --in fw.evfw --out cp3.bin', 1).stderr, /ERR_FIRMWARE_REJECTED/);
    assert.match(readFileSync(join(work, 'cp3/security.log'), 'utf8'), /"reason":"crl-missing"/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
