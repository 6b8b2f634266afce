import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { EvsealError } from '../../core/errors.js';
import { encodeAuditExport, parseAuditExport, readAuditLog, verifyAuditLog, type AuditExport, type AuditSummary } from '../../gateway/audit/export.js';
import { rootBytes } from '../../gateway/audit/leaf.js';
import { withAdminStore } from '../../gateway/cluster/open-store.js';
import { publicKeyFromB64u } from '../../gateway/identity.js';
import { printJson, readInput, writeOutput } from '../io.js';

function expectArg(v: string): { size: number; root: string } {
  const m = /^(\d+):(.+)$/.exec(v);
  const size = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(size) || rootBytes(m[2] as string) === undefined) {
    throw new InvalidArgumentError('must be SIZE:ROOT (a tree size and its base64url SHA-256 root, as in a receipt)');
  }
  return { size, root: m[2] as string };
}

function keyArg(v: string): string {
  try {
    publicKeyFromB64u(v, '--key');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return v;
}

/** Reads the audit log of a gateway data directory or of a cluster's PostgreSQL store (exactly one). */
async function readFromStore(where: { data?: string; store?: string }): Promise<AuditExport> {
  if (where.data !== undefined && !existsSync(join(where.data, 'evseal.db'))) throw new EvsealError('ERR_NOT_FOUND', `no gateway store in ${where.data} (evseal.db not found)`);
  return withAdminStore(where, readAuditLog);
}

const when = (t: number): string => new Date(t).toISOString();

function printSummary(s: AuditSummary): void {
  const lines = [`audit log valid: ${s.size} entries, ${s.treeHeads} signed tree heads (gateway '${s.gateway}')`];
  if (s.latest) lines.push(`latest tree head: size ${s.latest.size}, root ${s.latest.root}, ${when(s.latest.time)}`);
  if (s.unsigned > 0) lines.push(`${s.unsigned} entries after the latest tree head are not signed yet`);
  process.stdout.write(lines.join('\n') + '\n');
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description("the gateway's audit log: a signed, append-only Merkle log of message metadata (never contents)");

  audit
    .command('export')
    .description('write the audit log of a gateway data directory to a self-contained JSON file (entries, signed tree heads, gateway key)')
    .option('--data <DIR>', 'gateway data directory (holds evseal.db)')
    .option('--store <URL>', "a cluster's PostgreSQL store (postgres://…), instead of --data")
    .requiredOption('--out <FILE>', 'file to write (- for stdout)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      if ((o.data === undefined) === (o.store === undefined)) throw new EvsealError('ERR_USAGE', 'give exactly one of --data DIR or --store URL');
      const x = await readFromStore({ data: o.data, store: o.store });
      writeOutput(o.out, encodeAuditExport(x));
      const out = { out: o.out, entries: x.entries.length, treeHeads: x.treeHeads.length };
      if (o.out === '-') return;
      if (o.json) printJson(out);
      else process.stdout.write(`exported ${out.entries} entries and ${out.treeHeads} tree heads to ${o.out}\n`);
    });

  audit
    .command('verify')
    .description('recompute every leaf and check every tree head (root, signature, consistency); exit 1 on any edit, deletion, reordering or truncation')
    .option('--data <DIR>', 'gateway data directory (holds evseal.db)')
    .option('--store <URL>', "a cluster's PostgreSQL store (postgres://…): one log for every node")
    .option('--file <FILE>', 'an audit log written by `evseal audit export`')
    .option('--key <B64U_SPKI>', "require this gateway public key (base64url SPKI): catches a log re-signed with another key", keyArg)
    .option('--expect <SIZE:ROOT>', 'require the log to contain this tree (from a receipt): catches a truncation of entries and heads together', expectArg)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      if ([o.data, o.store, o.file].filter((x) => x !== undefined).length !== 1) throw new EvsealError('ERR_USAGE', 'give --store URL, or exactly one of --data DIR or --file FILE');
      let x: AuditExport;
      let s: AuditSummary;
      try {
        x = o.file !== undefined ? parseAuditExport(readInput(o.file).toString('utf8')) : await readFromStore({ data: o.data, store: o.store });
        s = verifyAuditLog(x, { key: o.key, expect: o.expect });
      } catch (e) {
        if (!(e instanceof EvsealError) || e.code !== 'ERR_INVALID_INPUT') throw e;
        const reason = e.message.replace(/^audit log invalid: /, '');
        if (o.json) printJson({ valid: false, reason });
        throw new EvsealError('ERR_INVALID_INPUT', `audit log invalid: ${reason}`);
      }
      if (o.json) printJson({ valid: true, ...s });
      else printSummary(s);
    });
}
