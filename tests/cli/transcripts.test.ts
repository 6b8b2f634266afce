// CLI transcript tests in the style of Go's testscript (as used by age's
// cmd/age/testdata): each tests/cli/testdata/*.txt scripts the real binary
// with its expected output and exit codes. Commands:
//   exec evseal ARGS      run, expect exit 0       ! exec evseal ARGS   expect non-zero
//   exit N                the last exit code was N
//   stdout RE / ! stdout RE / stderr RE / ! stderr RE   match the last output
//   stdin FILE            feed FILE to the next exec
//   exists F / ! exists F,  grep RE F / ! grep RE F,  env K=V
// Files after the script, as txtar sections (-- name --), are written first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const bin = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const dataDir = new URL('./testdata/', import.meta.url).pathname;

function splitArgs(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] ?? (m[2] as string));
  return out;
}

function parseTxtar(text: string): { script: string[]; files: Map<string, string> } {
  const lines = text.split('\n');
  const script: string[] = [];
  const files = new Map<string, string>();
  let current: string | undefined;
  for (const line of lines) {
    const m = /^-- (.+) --$/.exec(line);
    if (m) {
      current = m[1] as string;
      files.set(current, '');
    } else if (current !== undefined) files.set(current, files.get(current) + line + '\n');
    else script.push(line);
  }
  return { script, files };
}

for (const name of readdirSync(dataDir).filter((f) => f.endsWith('.txt')).sort()) {
  test(`transcript ${name}`, () => {
    const { script, files } = parseTxtar(readFileSync(join(dataDir, name), 'utf8'));
    const work = mkdtempSync(join(tmpdir(), 'evseal-cli-'));
    try {
      for (const [f, content] of files) {
        mkdirSync(dirname(join(work, f)), { recursive: true });
        writeFileSync(join(work, f), content);
      }
      const env: Record<string, string> = { ...process.env, NO_COLOR: '1' } as Record<string, string>;
      let last = { status: 0 as number | null, stdout: '', stderr: '' };
      let stdin: string | undefined;
      script.forEach((raw, i) => {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) return;
        const where = `${name}:${i + 1}: ${line}`;
        const neg = line.startsWith('! ');
        const [cmd, ...args] = splitArgs(neg ? line.slice(2) : line);
        switch (cmd) {
          case 'env': {
            const [k, ...v] = (args[0] as string).split('=');
            env[k as string] = v.join('=');
            break;
          }
          case 'stdin':
            stdin = readFileSync(join(work, args[0] as string), 'utf8');
            break;
          case 'exec': {
            assert.equal(args[0], 'evseal', where);
            const r = spawnSync(process.execPath, [bin, ...args.slice(1)], { cwd: work, env, input: stdin ?? '', encoding: 'utf8', timeout: 60_000 });
            stdin = undefined;
            last = { status: r.status, stdout: r.stdout, stderr: r.stderr };
            if (neg) assert.notEqual(r.status, 0, `${where}\nexpected failure, got exit 0\n${r.stdout}`);
            else assert.equal(r.status, 0, `${where}\nstderr: ${r.stderr}`);
            break;
          }
          case 'exit':
            assert.equal(last.status, Number(args[0]), `${where}\nstderr: ${last.stderr}`);
            break;
          case 'stdout':
          case 'stderr': {
            const text = cmd === 'stdout' ? last.stdout : last.stderr;
            const re = new RegExp(args.join(' '), 'm');
            assert.equal(re.test(text), !neg, `${where}\n${cmd} was:\n${text}`);
            break;
          }
          case 'exists':
            assert.equal(existsSync(join(work, args[0] as string)), !neg, where);
            break;
          case 'grep': {
            const f = join(work, args[args.length - 1] as string);
            const re = new RegExp(args.slice(0, -1).join(' '), 'm');
            assert.equal(re.test(readFileSync(f, 'utf8')), !neg, where);
            break;
          }
          default:
            assert.fail(`${where}: unknown transcript command`);
        }
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}
