import { createRequire } from 'node:module';
import ocpp from 'ocpp-rpc';

/** The OCPP-J subprotocols the gateway serves, most preferred first. */
export const OCPP_PROTOCOLS = ['ocpp2.1', 'ocpp2.0.1', 'ocpp1.6'] as const;
export type OcppProtocol = (typeof OCPP_PROTOCOLS)[number];

export function isOcppProtocol(p: unknown): p is OcppProtocol {
  return (OCPP_PROTOCOLS as readonly unknown[]).includes(p);
}

const SCHEMA_FILES: Record<OcppProtocol, string> = {
  'ocpp1.6': 'ocpp-rpc/lib/schemas/ocpp1_6.json',
  'ocpp2.0.1': 'ocpp-rpc/lib/schemas/ocpp2_0_1.json',
  'ocpp2.1': 'ocpp-rpc/lib/schemas/ocpp2_1.json',
};

/**
 * ocpp-rpc looks schemas up as `urn:<Action>.req` / `urn:<Action>.conf`, but
 * its bundled 2.1 file names them `urn:<Action>Request` / `urn:<Action>Response`
 * (and the one-way `urn:NotifyPeriodicEventStream` has no suffix), so strict
 * mode cannot find a single 2.1 schema. The ids are rewritten to the lookup form.
 */
export function normaliseSchemaId(id: string): string {
  if (/\.(req|conf)$/.test(id)) return id;
  const m = /^urn:(.+?)(Request|Response)?$/.exec(id);
  if (!m) return id;
  return `urn:${m[1]}.${m[2] === 'Response' ? 'conf' : 'req'}`;
}

/**
 * The 2.1 enum definitions also carry `additionalProperties: false` on
 * `type: "string"`, which constrains nothing (the keyword applies to objects
 * only) but makes Ajv print a strictTypes warning for each on every start.
 * It is dropped there, so validation is unchanged and the log stays clean.
 */
function dropVacuousKeywords(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropVacuousKeywords);
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    if (k === 'additionalProperties' && typeof o.type === 'string' && o.type !== 'object') continue;
    out[k] = dropVacuousKeywords(x);
  }
  return out;
}

type OcppValidator = ReturnType<typeof ocpp.createValidator>;
let built: { validators: OcppValidator[]; actions: Map<OcppProtocol, ReadonlySet<string>> } | undefined;

function build(): NonNullable<typeof built> {
  const require = createRequire(import.meta.url);
  const actions = new Map<OcppProtocol, ReadonlySet<string>>();
  const validators = OCPP_PROTOCOLS.map((p) => {
    const schemas = (require(SCHEMA_FILES[p]) as { $id: string }[]).map((s) => ({ ...(dropVacuousKeywords(s) as object), $id: normaliseSchemaId(s.$id) }));
    actions.set(p, new Set(schemas.flatMap((s) => /^urn:(.+)\.req$/.exec(s.$id)?.[1] ?? [])));
    return ocpp.createValidator(p, schemas);
  });
  return { validators, actions };
}

/** Strict-mode validators for every served subprotocol, built once per process (Ajv compiles each schema on first use). */
export function ocppValidators(): OcppValidator[] {
  built ??= build();
  return built.validators;
}

/** The actions a protocol's schemas define (requests), e.g. to keep metric labels bounded. */
export function ocppActions(protocol: OcppProtocol): ReadonlySet<string> {
  built ??= build();
  return built.actions.get(protocol)!;
}
