import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { inspectEnvelope } from '../../core/envelope.js';
import { parseRolePolicy } from '../../core/role-policy.js';
import { Endpoint } from '../../keystore/endpoint.js';
import { loadTrust } from '../../keystore/trust-files.js';
import { collect, intArg } from '../options.js';
import { printJson, readEnvelopeText, readInput, wallClock, writeOutput } from '../io.js';
import { b64u } from '../../core/base64url.js';
import { passphraseFor } from '../passphrase.js';

interface TrustOpts {
  as: string;
  trust: string;
  crl: string[];
  revocationCheck: boolean;
  rolePolicy?: string;
}

/** The endpoint of `--as` with the trust options every endpoint command takes. */
export async function loadEndpoint(o: TrustOpts): Promise<Endpoint> {
  return Endpoint.load(o.as, {
    passphrase: await passphraseFor(o.as),
    trust: loadTrust(o.trust),
    crls: o.crl,
    revocationCheck: o.revocationCheck,
    rolePolicy: o.rolePolicy ? parseRolePolicy(readFileSync(o.rolePolicy, 'utf8')) : undefined,
    wall: wallClock(),
  });
}

function trustOptions(c: Command): Command {
  return c
    .requiredOption('--as <ID_DIR>', 'this endpoint\'s identity directory')
    .requiredOption('--trust <T>', 'a CA certificate (trusted for every role) or a trust-policy JSON file')
    .option('--crl <CRL.pem>', 'a CRL to load (repeatable); remembered in ID_DIR/state.json', collect, [])
    .option('--no-revocation-check', 'waive CRL checking (explicit opt-out; revocation otherwise fails closed)')
    .option('--role-policy <FILE>', 'override the default role policy (JSON)');
}

/** What to seal: shared by `seal` (to a bundle file) and `send` (through a gateway). */
export function payloadOptions(c: Command): Command {
  return c
    .option('--kind <KIND>', 'payload kind (default: the first kind the role policy allows for this pair)')
    .option('--content-type <TYPE>', 'media type of the payload', 'application/octet-stream')
    .option('--lifetime <SECONDS>', 'envelope lifetime (default from identity settings)', intArg)
    .option('--in <FILE>', 'payload file (default stdin)');
}

export function registerEnvelope(program: Command): void {
  payloadOptions(trustOptions(program.command('seal')).description('seal a payload to a recipient bundle (reads stdin, writes stdout by default)'))
    .requiredOption('--to <BUNDLE.json>', 'the recipient\'s published bundle')
    .option('--out <FILE>', 'envelope file (default stdout)')
    .action(async (o) => {
      const ep = await loadEndpoint(o);
      const bundleText = readInput(o.to).toString('utf8');
      const env = ep.seal(bundleText, readInput(o.in), { kind: o.kind, contentType: o.contentType, lifetimeSec: o.lifetime });
      writeOutput(o.out, env + '\n', 0o644);
    });

  trustOptions(program.command('open').description('verify and open an envelope addressed to this endpoint; a second open of the same envelope is refused as a replay'))
    .option('--in <FILE>', 'envelope file (default stdin)')
    .option('--out <FILE>', 'plaintext file (default stdout); nothing is written unless the envelope opens')
    .option('--json', 'print sender and header as JSON (plaintext as base64url when no --out)')
    .action(async (o) => {
      const ep = await loadEndpoint(o);
      const opened = ep.open(readEnvelopeText(o.in));
      if (o.json) {
        if (o.out) writeOutput(o.out, opened.plaintext);
        printJson({
          header: opened.header,
          sender: { id: opened.sender.id, role: opened.sender.role, operator: opened.sender.operator, fingerprint: opened.sender.fingerprint, anchor: opened.sender.anchor },
          ...(o.out ? { out: o.out } : { plaintext: b64u(opened.plaintext) }),
        });
      } else {
        writeOutput(o.out, opened.plaintext);
      }
    });

  program
    .command('inspect')
    .description('print an envelope\'s clear metadata as JSON (nothing is verified or decrypted)')
    .option('--in <FILE>', 'envelope file (default stdin)')
    .action((o) => {
      printJson(inspectEnvelope(readEnvelopeText(o.in)));
    });
}
