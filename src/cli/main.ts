#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EvsealError } from '../core/errors.js';
import { registerEnvelope } from './commands/envelope.js';
import { registerKeys } from './commands/keys.js';
import { registerPki } from './commands/pki.js';
import { registerGateway } from './commands/gateway.js';
import { registerMessaging } from './commands/messaging.js';
import { registerAudit } from './commands/audit.js';
import { registerStation } from './commands/station.js';
import { registerSim } from './commands/sim.js';
import { registerTool } from './commands/tool.js';
import { registerFirmware } from './commands/firmware.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('evseal')
  .description('end-to-end encryption for EV charging: seal payloads a CSMS can route but not read')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  // program options (--version) only before the subcommand: `firmware pack --version V` is the image's version
  .enablePositionalOptions()
  .exitOverride();

registerKeys(program);
registerPki(program);
registerEnvelope(program);
registerGateway(program);
registerMessaging(program);
registerAudit(program);
registerStation(program);
registerSim(program);
registerTool(program);
registerFirmware(program);

/** One line on stderr and a non-zero exit: 1 for a refused operation, 2 for bad usage. */
function fail(e: unknown): never {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof EvsealError) {
    process.stderr.write(`evseal: ${e.message} [${e.code}]\n`);
    process.exit(e.code === 'ERR_USAGE' ? 2 : 1);
  }
  process.stderr.write(`evseal: unexpected error: ${(e as Error)?.message ?? String(e)}\n`);
  process.exit(1);
}

program.parseAsync(process.argv).catch(fail);
