import { dirname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { EvsealError } from '../../core/errors.js';
import { loadIdentity } from '../../keystore/identity-dir.js';
import { packFirmware } from '../../firmware/pack.js';
import { unpackFirmware } from '../../firmware/unpack.js';
import { devicePrefix, readPackageIndex } from '../../firmware/package.js';
import { readInstalled, writeInstalled } from '../../firmware/installed.js';
import { checkModel, parseVersion } from '../../firmware/version.js';
import { createTempOutput } from '../../firmware/temp-output.js';
import { collect } from '../options.js';
import { printJson, readInput } from '../io.js';
import { loadEndpoint } from './envelope.js';
import { passphraseFor } from '../passphrase.js';
import { open as openFile } from 'node:fs/promises';
import { registerDelete, registerRollout } from './firmware-rollout.js';

/**
 * A progress bar on stderr, drawn only when stderr is a terminal (never in
 * logs or pipes), at most ten times a second.
 */
export function progressBar(label: string): { update: (done: number, total: number) => void; finish: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, finish: () => {} };
  let last = 0;
  let drawn = false;
  const draw = (done: number, total: number): void => {
    const frac = total === 0 ? 1 : done / total;
    const width = 30;
    const fill = Math.round(frac * width);
    const mib = (n: number): string => (n / 1048576).toFixed(1);
    process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${Math.floor(frac * 100)}% ${mib(done)}/${mib(total)} MiB`);
    drawn = true;
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw(done, total);
    },
    finish() {
      if (drawn) process.stderr.write('\n');
    },
  };
}

/** A recipient file: a bundle.json (JSON) or a certificate (PEM). */
function recipientFrom(path: string): { bundleJson?: string; certPem?: string } {
  const text = readInput(path).toString('utf8');
  return text.trimStart().startsWith('{') ? { bundleJson: text } : { certPem: text };
}

/** --fleet FILE: one bundle or certificate path per line (relative to the file), '#' comments. */
function fleetFile(path: string): string[] {
  const base = dirname(resolve(path));
  return readInput(path)
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (isAbsolute(l) ? l : resolve(base, l)));
}

function trustOptions(c: Command): Command {
  return c
    .requiredOption('--as <ID_DIR>', "this endpoint's identity directory")
    .requiredOption('--trust <T>', 'a CA certificate (trusted for every role) or a trust-policy JSON file')
    .option('--crl <CRL.pem>', 'a CRL to load (repeatable); remembered in ID_DIR/state.json', collect, [])
    .option('--no-revocation-check', 'waive CRL checking (explicit opt-out; revocation otherwise fails closed)');
}

export function registerFirmware(program: Command): Command {
  const fw = program.command('firmware').description('signed, encrypted firmware packages (docs/firmware.md)');

  trustOptions(fw.command('pack'))
    .description('encrypt an image for a set of devices and sign its manifest (--as a firmware-publisher; --trust validates the recipients)')
    .requiredOption('--in <IMAGE>', 'firmware image')
    .requiredOption('--version <V>', 'image version: 1 to 4 dotted numbers, e.g. 2.1.7')
    .requiredOption('--model <M>', 'device model the image is for')
    .option('--to <BUNDLE|CERT>', "a recipient device's bundle.json or certificate (repeatable)", collect, [])
    .option('--fleet <FILE>', 'a file of recipient bundle/certificate paths, one per line')
    .requiredOption('--out <PACKAGE>', 'package file to write')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const paths: string[] = [...o.to, ...(o.fleet ? fleetFile(o.fleet) : [])];
      const publisher = await loadEndpoint(o);
      const bar = progressBar('pack');
      const r = await packFirmware({ publisher, input: o.in, output: o.out, version: o.version, model: o.model, recipients: paths.map(recipientFrom), onProgress: bar.update });
      bar.finish();
      if (o.json) printJson({ ...r, out: o.out });
      else process.stdout.write(`packed ${o.model} ${o.version} (${r.size} bytes) for ${r.slots} device(s) into ${o.out}\n`);
    });

  trustOptions(fw.command('unpack'))
    .description('verify, decrypt and install a package addressed to this device; nothing is written unless every check passes')
    .requiredOption('--in <PACKAGE>', 'full or device package')
    .requiredOption('--out <IMAGE>', 'where to write the image')
    .option('--allow-downgrade', 'accept a version older than or equal to the installed one')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const endpoint = await loadEndpoint(o);
      const bar = progressBar('unpack');
      const r = await unpackFirmware({ endpoint, input: o.in, output: o.out, allowDowngrade: Boolean(o.allowDowngrade), onProgress: bar.update });
      bar.finish();
      if (o.json) printJson({ ...r, out: o.out });
      else process.stdout.write(`installed ${r.model} ${r.version} from ${r.publisher} (${r.size} bytes) to ${o.out}\n`);
    });

  fw.command('device-init')
    .description('record the model and installed firmware version of a device (ID_DIR/firmware.json)')
    .requiredOption('--as <ID_DIR>', 'device identity directory')
    .requiredOption('--model <M>', 'device model')
    .requiredOption('--version <V>', 'installed firmware version')
    .option('--force', 'overwrite an existing record')
    .action(async (o) => {
      loadIdentity(o.as, await passphraseFor(o.as)); // must be an identity directory
      checkModel(o.model);
      parseVersion(o.version);
      if (readInstalled(o.as) !== undefined && !o.force) throw new EvsealError('ERR_USAGE', `${o.as} already has a firmware record (--force to overwrite)`);
      writeInstalled(o.as, { model: o.model, version: o.version });
      process.stdout.write(`${o.as}: model ${o.model}, firmware ${o.version}\n`);
    });

  fw.command('status')
    .description("print a device's model and installed firmware version")
    .requiredOption('--as <ID_DIR>', 'device identity directory')
    .option('--json', 'print as JSON')
    .action((o) => {
      const s = readInstalled(o.as);
      if (s === undefined) throw new EvsealError('ERR_NOT_FOUND', `${o.as} has no firmware record (evseal firmware device-init)`);
      if (o.json) printJson(s);
      else process.stdout.write(`model ${s.model}, firmware ${s.version}\n`);
    });

  fw.command('inspect')
    .description("print a package's public fields as JSON (nothing is verified or decrypted)")
    .requiredOption('--in <PACKAGE>', 'package file')
    .action(async (o) => {
      printJson(await readPackageIndex(o.in));
    });

  fw.command('device-package')
    .description("cut one device's package (its key slot and inclusion proof plus the shared ciphertext) from a full package")
    .requiredOption('--in <PACKAGE>', 'full package')
    .requiredOption('--device <ID>', 'device id')
    .requiredOption('--out <FILE>', 'device package to write')
    .action(async (o) => {
      const index = await readPackageIndex(o.in);
      const prefix = await devicePrefix(o.in, index, o.device);
      const out = await createTempOutput(o.out, 0o644);
      const src = await openFile(o.in, 'r');
      try {
        await out.fh.write(prefix, 0, prefix.length, 0);
        const buf = Buffer.alloc(1 << 20);
        for (let off = 0; off < index.shared.length; ) {
          const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, index.shared.length - off), index.shared.offset + off);
          if (bytesRead === 0) throw new EvsealError('ERR_INVALID_INPUT', 'package shorter than its index');
          await out.fh.write(buf, 0, bytesRead, prefix.length + off);
          off += bytesRead;
        }
        await out.commit({ durable: false });
      } catch (e) {
        await out.abort();
        throw e;
      } finally {
        await src.close();
      }
      process.stdout.write(`device package for ${o.device}: ${prefix.length} + ${index.shared.length} bytes in ${o.out}\n`);
    });

  registerRollout(fw);
  registerDelete(fw);
  return fw;
}
