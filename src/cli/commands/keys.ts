import type { Command } from 'commander';
import { initIdentity, installCert } from '../../keystore/identity-dir.js';
import { keyStatus } from '../../keystore/status.js';
import { DEFAULT_SUITES } from '../../core/suites.js';
import { algArg, roleArg, suitesArg } from '../options.js';
import { printJson, readInput, wallClock } from '../io.js';
import { newPassphrase, passphraseFor } from '../passphrase.js';
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
    .option('--plaintext-keystore', 'store the private keys unencrypted (development only; default: encrypted under EVSEAL_PASSPHRASE or a prompted passphrase)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const plaintext = Boolean(o.plaintextKeystore);
      const passphrase = plaintext ? undefined : await newPassphrase(o.out);
      await initIdentity(o.out, { role: o.role, id: o.id, operator: o.operator, alg: o.alg, suites: o.suites, passphrase, plaintext });
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
    .action(async (o) => {
      const certPem = readInput(o.cert).toString('utf8');
      const { bundlePath, renewed } = installCert(o.as, certPem, Math.floor(wallClock()() / 1000), await passphraseFor(o.as));
      if (o.json) printJson({ dir: o.as, bundle: bundlePath, renewed });
      else process.stdout.write(`${renewed ? 'renewed certificate and key installed' : 'certificate installed'}; publish ${bundlePath}\n`);
    });

  keys
    .command('status')
    .description('show key ages, certificate expiry, prekey and one-time prekey stock, and what is due')
    .requiredOption('--as <ID_DIR>', 'identity directory')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const st = keyStatus(o.as, wallClock()(), await passphraseFor(o.as));
      if (o.json) {
        printJson(st);
        return;
      }
      const lines = [
        `${st.role} ${st.id} (${st.operator}), ${st.alg}, keystore ${st.keystore}`,
        `certificate ${st.certificate.serial}: valid until ${st.certificate.notAfter} (${st.certificate.daysLeft} days left)${st.certificate.renewalPending ? ', renewal pending' : ''}`,
        ...st.prekeys.map((k) => `prekey ${k.kid} ${k.kem}: ${k.ageDays} days old, expires ${k.expires}, private half deleted after ${k.deleteAfter}`),
        `one-time prekeys: ${st.oneTimePrekeys.stock} of ${st.oneTimePrekeys.target}`,
        `trusted time: ${st.trustedTime ?? 'none yet'}`,
        `due: ${st.due.length ? st.due.join(', ') : 'nothing'}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
