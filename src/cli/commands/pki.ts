import { join } from 'node:path';
import type { Command } from 'commander';
import { initCaDir, refreshCrl, revokeWithCaDir, signCsrWithCaDir } from '../../keystore/ca-dir.js';
import { initIdentity, installCert, renewIdentity, rotatePrekeys } from '../../keystore/identity-dir.js';
import { algArg, intArg, roleArg } from '../options.js';
import { printJson, readInput, wallClock, writeOutput } from '../io.js';
import { newPassphrase, passphraseFor } from '../passphrase.js';

export function registerPki(program: Command): void {
  const pki = program.command('pki').description('certificate authority and identity lifecycle');

  pki
    .command('init')
    .description('create a root CA: CA_DIR/ca.pem, ca.key (0600) and an empty crl.pem')
    .requiredOption('--dir <CA_DIR>', 'directory for the new CA')
    .requiredOption('--name <NAME>', 'CA name (certificate subject CN)')
    .option('--alg <ALG>', 'ecdsa-p256 (default) or ed25519', algArg, 'ecdsa-p256')
    .option('--crl-days <N>', 'days until the CRL nextUpdate', intArg, 7)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const now = new Date(wallClock()());
      await initCaDir(o.dir, { name: o.name, alg: o.alg, now, crlDays: o.crlDays });
      const out = { ca: join(o.dir, 'ca.pem'), crl: join(o.dir, 'crl.pem'), alg: o.alg };
      if (o.json) printJson(out);
      else process.stdout.write(`created CA ${o.name} in ${o.dir} (${o.alg})\n`);
    });

  pki
    .command('sign')
    .description('certify a CSR made by `evseal keys init`')
    .requiredOption('--ca <CA_DIR>', 'CA directory')
    .requiredOption('--csr <FILE>', 'certification request (PEM)')
    .requiredOption('--out <CERT.pem>', 'where to write the certificate')
    .option('--days <N>', 'validity in days', intArg, 365)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const csrPem = readInput(o.csr).toString('utf8');
      const r = await signCsrWithCaDir(o.ca, csrPem, { now: new Date(wallClock()()), validityDays: o.days });
      writeOutput(o.out, r.certPem, 0o644);
      if (o.json) printJson({ cert: o.out, serial: r.serialHex });
      else process.stdout.write(`signed ${o.out} (serial ${r.serialHex})\n`);
    });

  pki
    .command('issue')
    .description('keys init + pki sign + keys install in one step, locally (a convenience for tests and demos: the CA and the endpoint share a machine)')
    .requiredOption('--ca <CA_DIR>', 'CA directory')
    .requiredOption('--role <ROLE>', 'endpoint role', roleArg)
    .requiredOption('--id <ID>', 'endpoint id')
    .requiredOption('--operator <ORG>', 'operator (organisation)')
    .requiredOption('--out <ID_DIR>', 'identity directory to create')
    .option('--alg <ALG>', 'ecdsa-p256 (default) or ed25519', algArg, 'ecdsa-p256')
    .option('--days <N>', 'certificate validity in days', intArg, 365)
    .option('--plaintext-keystore', 'store the private keys unencrypted (development only)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const wall = wallClock();
      const plaintext = Boolean(o.plaintextKeystore);
      const passphrase = plaintext ? undefined : await newPassphrase(o.out);
      const { csrPem } = await initIdentity(o.out, { role: o.role, id: o.id, operator: o.operator, alg: o.alg, passphrase, plaintext });
      const r = await signCsrWithCaDir(o.ca, csrPem, { now: new Date(wall()), validityDays: o.days });
      const { bundlePath } = installCert(o.out, r.certPem, Math.floor(wall() / 1000), passphrase);
      if (o.json) printJson({ dir: o.out, bundle: bundlePath, serial: r.serialHex });
      else process.stdout.write(`issued ${o.role} ${o.id} (${o.operator}) in ${o.out}\n`);
    });

  pki
    .command('revoke')
    .description('revoke a certificate and publish a new CA_DIR/crl.pem with the next CRL number')
    .requiredOption('--ca <CA_DIR>', 'CA directory')
    .requiredOption('--cert <CERT.pem>', 'certificate to revoke')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const certPem = readInput(o.cert).toString('utf8');
      const r = await revokeWithCaDir(o.ca, certPem, { now: new Date(wallClock()()) });
      if (o.json) printJson({ crl: join(o.ca, 'crl.pem'), crlNumber: r.crlNumber });
      else process.stdout.write(`revoked; ${join(o.ca, 'crl.pem')} is now CRL number ${r.crlNumber}\n`);
    });

  pki
    .command('crl')
    .description('re-issue CA_DIR/crl.pem with a new number and dates (run before nextUpdate)')
    .requiredOption('--ca <CA_DIR>', 'CA directory')
    .option('--days <N>', 'days until nextUpdate', intArg, 7)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const r = await refreshCrl(o.ca, { now: new Date(wallClock()()), crlDays: o.days });
      if (o.json) printJson({ crl: join(o.ca, 'crl.pem'), crlNumber: r.crlNumber });
      else process.stdout.write(`${join(o.ca, 'crl.pem')} is now CRL number ${r.crlNumber}\n`);
    });

  pki
    .command('renew')
    .description('start a certificate renewal: a new identity key and ID_DIR/renew.csr.pem keeping role, id and operator; install the CA\'s answer with `keys install`')
    .requiredOption('--as <ID_DIR>', 'identity directory')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const r = await renewIdentity(o.as, await passphraseFor(o.as));
      if (o.json) printJson({ csr: r.csrPath });
      else process.stdout.write(`renewal started; send ${r.csrPath} to your CA, then run evseal keys install --as ${o.as} --cert NEW.pem\n`);
    });

  pki
    .command('rotate')
    .description('make new prekeys when due, republish bundle.json, delete private prekeys past grace + longest message lifetime')
    .requiredOption('--as <ID_DIR>', 'identity directory')
    .option('--force', 'make new prekeys even if the current ones are not due')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const now = Math.floor(wallClock()() / 1000);
      const r = rotatePrekeys(o.as, now, { force: Boolean(o.force), passphrase: await passphraseFor(o.as) });
      if (o.json) printJson(r);
      else process.stdout.write(`prekeys: ${r.created.length} created, ${r.deleted.length} deleted, ${r.published.length} published; ${r.oneTimeCreated.length} one-time prekeys added\n`);
    });

}
