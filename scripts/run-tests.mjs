// Runs every tests/**/*.test.ts file with node's own test runner (TypeScript via tsx).
// Node 20's --test does not expand globs, so the file list is built here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : collect('tests');
if (files.length === 0) {
  console.error('no test files found under tests/');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', './tests/helpers/fc-seed.ts', '--test', '--test-timeout=600000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, EVSEAL_TEST: '1' },
});
process.exit(r.status ?? 1);
