import type { Command } from 'commander';
import { ServiceTool, ToolError, parseCommandArgs } from '../../client/service-tool.js';
import type { ToolCommand } from '../../client/session-frames.js';
import { intArg } from '../options.js';
import { connect, netOptions, type NetOpts } from './messaging.js';

/** Exit codes of `evseal tool` (docs/service-tool.md §6). */
export const TOOL_EXIT = { ok: 0, refused: 1, usage: 2, commandFailed: 3, timeout: 4 } as const;

type Row = Record<string, unknown>;

/** Human-readable result lines; --json prints the result object itself. */
function describe(c: ToolCommand, result: unknown): string {
  const r = (result ?? {}) as Row;
  switch (c.cmd) {
    case 'get-config': {
      const rows = (r.configuration as Row[] | undefined) ?? [];
      const lines = rows.map((x) => `${String(x.key)} = ${String(x.value)}${x.readonly ? ' (read-only)' : ''}`);
      const unknown = (r.unknownKeys as string[] | undefined) ?? [];
      if (unknown.length > 0) lines.push(`unknown keys: ${unknown.join(', ')}`);
      return lines.join('\n');
    }
    case 'set-config':
      return `${String(r.key)} = ${String(r.value)} (was ${String(r.previous)})`;
    case 'reset':
      return `reset ${String(r.type)}: ${String(r.status)} (reset count ${String(r.resets)})`;
    case 'unlock-connector':
      return `connector ${String(r.connector)}: ${String(r.status)}`;
    case 'get-diagnostics':
      return Object.entries(r)
        .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
        .join('\n');
  }
}

export function registerTool(program: Command): void {
  netOptions(
    program
      .command('tool')
      .description('service tool: run one command on a charger over an end-to-end session (the charger checks who may command it)')
      .argument('<command>', 'get-diagnostics | get-config [KEY...] | set-config KEY=VALUE | reset [Soft|Hard] | unlock-connector N')
      .argument('[args...]', 'the command\'s arguments'),
  )
    .requiredOption('--charger <ID>', 'the charger\'s id (its OCPP station id)')
    .option('--timeout <SECONDS>', 'wait this long for the result; the gateway holds the command (charger offline) no longer', intArg, 30)
    .option('--no-one-time-prekey', 'do not claim a one-time prekey of the charger from the directory')
    .option('--json', 'print the result (or the failure) as one JSON object')
    .action(async (name: string, args: string[], o: NetOpts & { charger: string; timeout: number; oneTimePrekey: boolean; json?: boolean }) => {
      const command = parseCommandArgs(name, args);
      // deliveries may arrive before connect() returns: they wait for the tool
      let tool: ServiceTool | undefined;
      const early: ((t: ServiceTool) => void)[] = [];
      const later = (f: (t: ServiceTool) => void) => (tool ? f(tool) : void early.push(f));
      const { ep, gw } = await connect(o, { onMessage: (d) => later((t) => t.onDelivery(d)), onNotice: (n) => later((t) => t.onNotice(n)) });
      tool = new ServiceTool(ep);
      tool.attach(gw);
      for (const f of early.splice(0)) f(tool);
      try {
        const { result } = await tool.open(o.charger, command, { timeoutMs: o.timeout * 1000, oneTimePrekey: o.oneTimePrekey });
        if (o.json) process.stdout.write(JSON.stringify({ charger: o.charger, command, ...result }) + '\n');
        if (result.ok) {
          if (!o.json) process.stdout.write(describe(command, result.result) + '\n');
        } else {
          if (!o.json) process.stderr.write(`evseal: ${o.charger} could not run ${command.cmd}: ${result.message ?? result.error} [${result.error}]\n`);
          process.exitCode = TOOL_EXIT.commandFailed;
        }
      } catch (e) {
        if (!(e instanceof ToolError)) throw e;
        if (o.json) process.stdout.write(JSON.stringify({ charger: o.charger, command, ok: false, outcome: e.outcome, error: e.code }) + '\n');
        if (e.outcome === 'refused') throw e; // one line on stderr, exit 1
        process.stderr.write(`evseal: ${e.message} [${e.code}]\n`);
        process.exitCode = TOOL_EXIT.timeout;
      } finally {
        await tool.close();
      }
    });
}
