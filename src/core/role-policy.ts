import type { Role } from './roles.js';
import { isRole } from './roles.js';
import { EvsealError } from './errors.js';
import { checkShape } from './canonical-json.js';

/**
 * Which sender role may send which kind of sealed payload to which recipient
 * role. Anything not listed is refused, on sealing and again on opening.
 * The gateway role appears nowhere: it is an intermediary and never an
 * endpoint of sealed content.
 */
export interface RoleRule {
  kind: string;
  from: Role[];
  to: Role[];
}
export interface RolePolicy {
  rules: RoleRule[];
}

export const DEFAULT_ROLE_POLICY: RolePolicy = {
  rules: [
    { kind: 'credentials', from: ['provisioning'], to: ['charger'] },
    { kind: 'config', from: ['provisioning', 'service-tool'], to: ['charger'] },
    { kind: 'command', from: ['service-tool'], to: ['charger'] },
    { kind: 'diagnostics', from: ['charger'], to: ['service-tool'] },
    { kind: 'payment', from: ['charger'], to: ['psp'] },
    { kind: 'payment', from: ['psp'], to: ['charger'] },
    { kind: 'identity', from: ['charger'], to: ['emsp'] },
    { kind: 'identity', from: ['emsp'], to: ['charger'] },
    { kind: 'fleet-data', from: ['charger'], to: ['fleet'] },
    { kind: 'fleet-data', from: ['fleet'], to: ['charger'] },
    { kind: 'firmware-key', from: ['firmware-publisher'], to: ['charger'] },
    { kind: 'provisioning-report', from: ['charger'], to: ['provisioning'] },
  ],
};

const KIND = /^[a-z][a-z0-9-]{0,31}$/;

export function isAllowed(policy: RolePolicy, from: Role, kind: string, to: Role): boolean {
  return policy.rules.some((r) => r.kind === kind && r.from.includes(from) && r.to.includes(to));
}

/** The first kind the policy allows from `from` to `to`, used when the caller names none. */
export function defaultKind(policy: RolePolicy, from: Role, to: Role): string | undefined {
  return policy.rules.find((r) => r.from.includes(from) && r.to.includes(to))?.kind;
}

/** Every (from, kind, to) triple the policy allows. */
export function allowedTriples(policy: RolePolicy): { from: Role; kind: string; to: Role }[] {
  const out: { from: Role; kind: string; to: Role }[] = [];
  for (const r of policy.rules) for (const f of r.from) for (const t of r.to) out.push({ from: f, kind: r.kind, to: t });
  return out;
}

export function isKind(x: unknown): x is string {
  return typeof x === 'string' && KIND.test(x);
}

/** Parses an override file: {"rules":[{"kind":"...","from":[roles],"to":[roles]}]} */
export function parseRolePolicy(text: string): RolePolicy {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'role policy: not JSON');
  }
  const top = checkShape(v, [['rules', 'object[]']], 'role policy');
  const rules = (top.rules as unknown[]).map((r, i) => {
    const o = checkShape(r, [['kind', 'string'], ['from', 'string[]'], ['to', 'string[]']], `role policy rule ${i}`);
    if (!isKind(o.kind)) throw new EvsealError('ERR_INVALID_INPUT', `role policy rule ${i}: bad kind`);
    for (const role of [...(o.from as string[]), ...(o.to as string[])]) {
      if (!isRole(role)) throw new EvsealError('ERR_INVALID_INPUT', `role policy rule ${i}: unknown role ${JSON.stringify(role)}`);
    }
    return { kind: o.kind as string, from: o.from as Role[], to: o.to as Role[] };
  });
  return { rules };
}
