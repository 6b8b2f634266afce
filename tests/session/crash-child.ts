// Child process for the crash-safety tests: one session operation on a real
// endpoint directory, its result on stdout (base64url). EVSEAL_FAULT may kill it midway.
import { readFileSync } from 'node:fs';
import { Endpoint } from '../../src/keystore/endpoint.js';
import { trustPolicyFromCaPem } from '../../src/core/x509/index.js';
import { b64u, fromB64u } from '../../src/core/base64url.js';

const [op, dir, caPem, crl, handle, arg, now] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const ep = Endpoint.load(dir, {
  trust: trustPolicyFromCaPem(readFileSync(caPem, 'utf8')),
  crls: [crl],
  passphrase: process.env.EVSEAL_PASSPHRASE,
  wall: () => Number(now),
});
const out = op === 'encrypt' ? ep.sessionEncrypt(handle, new TextEncoder().encode(arg)) : ep.sessionDecrypt(handle, fromB64u(arg));
process.stdout.write(op === 'encrypt' ? b64u(out) : new TextDecoder().decode(out));
