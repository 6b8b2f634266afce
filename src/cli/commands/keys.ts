import type { Command } from 'commander';
import { initIdentity, installCert } from '../../keystore/identity-dir.js';
import { DEFAULT_SUITES } from '../../core/suites.js';
import { algArg, roleArg, suitesArg } from '../options.js';
import { printJson, readInput, wallClock } from '../io.js';
import { join } from 'node:path';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('endpoint keys: generated on the endpoint, never exported');

  keys
    .command('init')
    .description('generate an identity key on this endpoint and write ID_DIR/csr.pem for a CA to sign')
    .requiredOption('--role <ROLE>', 'endpoint role', roleArg)
    .requiredOption('--id <ID>', 'endpoint id (charger: its OCPP station id)')
    .requiredOption('--operator <ORG>', 'operator (organisation)')
    .requiredOption('--out <ID_DIR>', 'identity directory to create')
    .option('--alg <ALG>', 'signing key: ecdsa-p256 (default) or ed25519', algArg, 'ecdsa-p256')
    .option('--suites <LIST>', `accepted suites, preferred first (default ${DEFAULT_SUITES.join(',')})`, suitesArg)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      await initIdentity(o.out, { role: o.role, id: o.id, operator: o.operator, alg: o.alg, suites: o.suites });
      const csr = join(o.out, 'csr.pem');
      if (o.json) printJson({ dir: o.out, csr });
      else process.stdout.write(`identity key created; send ${csr} to your CA\n`);
    });

  keys
    .command('install')
    .description('install the certificate a CA issued for this identity, then make prekeys and bundle.json')
    .requiredOption('--as <ID_DIR>', 'identity directory')
    .requiredOption('--cert <CERT.pem>', 'certificate issued for csr.pem')
    .option('--json', 'print the result as JSON')
    .action((o) => {
      const certPem = readInput(o.cert).toString('utf8');
      const { bundlePath } = installCert(o.as, certPem, Math.floor(wallClock()() / 1000));
      if (o.json) printJson({ dir: o.as, bundle: bundlePath });
      else process.stdout.write(`certificate installed; publish ${bundlePath}\n`);
    });
}
