import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EvsealError } from '../core/errors.js';
import { passphraseFromEnv } from '../keystore/secret-store.js';

/** Reads a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const out = rl as unknown as { _writeToOutput: (s: string) => void };
  let asked = false;
  out._writeToOutput = (s: string) => {
    if (!asked) {
      process.stderr.write(s);
      asked = true;
    }
  };
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/**
 * The passphrase for an existing identity directory: undefined for a
 * plaintext keystore, else EVSEAL_PASSPHRASE, else a prompt on a terminal.
 */
export async function passphraseFor(dir: string): Promise<string | undefined> {
  const ks = join(dir, 'keystore.json');
  if (!existsSync(ks)) return passphraseFromEnv();
  try {
    if ((JSON.parse(readFileSync(ks, 'utf8')) as { mode?: string }).mode === 'plaintext') return undefined;
  } catch {
    return undefined; // SecretStore.open reports the broken file
  }
  const env = passphraseFromEnv();
  if (env !== undefined) return env;
  if (process.stdin.isTTY) return promptHidden(`passphrase for ${dir}: `);
  throw new EvsealError('ERR_USAGE', `${dir} is encrypted: set EVSEAL_PASSPHRASE (no terminal to ask on)`);
}

/** A new passphrase: EVSEAL_PASSPHRASE, or asked twice on a terminal. */
export async function newPassphrase(dir: string): Promise<string> {
  const env = passphraseFromEnv();
  if (env !== undefined) return env;
  if (!process.stdin.isTTY) {
    throw new EvsealError('ERR_USAGE', 'set EVSEAL_PASSPHRASE to encrypt the new keystore, or pass --plaintext-keystore for an unencrypted development keystore');
  }
  const a = await promptHidden(`new passphrase for ${dir}: `);
  const b = await promptHidden('repeat it: ');
  if (a !== b) throw new EvsealError('ERR_USAGE', 'the passphrases differ');
  if (a.length < 8) throw new EvsealError('ERR_USAGE', 'a passphrase needs at least 8 characters');
  return a;
}
