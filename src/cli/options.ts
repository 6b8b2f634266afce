import { InvalidArgumentError } from 'commander';
import { isRole, type Role } from '../core/roles.js';
import { parseSuiteList, type SuiteName } from '../core/suites.js';

export function roleArg(v: string): Role {
  if (!isRole(v)) throw new InvalidArgumentError(`unknown role (charger, service-tool, psp, emsp, fleet, provisioning, firmware-publisher, gateway)`);
  return v;
}

export function algArg(v: string): 'ecdsa-p256' | 'ed25519' {
  if (v !== 'ecdsa-p256' && v !== 'ed25519') throw new InvalidArgumentError('must be ecdsa-p256 or ed25519');
  return v;
}

export function intArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

export function suitesArg(v: string): SuiteName[] {
  try {
    return parseSuiteList(v.split(','), '--suites');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}
