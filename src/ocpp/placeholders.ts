import type { Json } from './json.js';
import type { Schema } from './schemas.js';

/**
 * The value left in place of a sealed field that the OCPP schema requires
 * (docs/ocpp.md, "Placeholders"). It depends only on the field's schema, so
 * both ends and any reader of the schema can tell what it will be:
 *
 * | schema of the field | placeholder |
 * | --- | --- |
 * | `enum` | its first value |
 * | string | `"evseal:sealed"`, cut to `maxLength` |
 * | integer, number | `0`, raised to `minimum` / lowered to `maximum` |
 * | boolean | `false` |
 *
 * A field with no placeholder (a required object or array, a string with a
 * `pattern` or `format`, a `minLength` above 13, an exclusive bound) cannot
 * be sealed whole; the policy loader refuses such a rule and says so. An
 * optional field never gets a placeholder: it is removed.
 */
export const PLACEHOLDER_STRING = 'evseal:sealed';

export type Placeholder = { ok: true; value: Json } | { ok: false; why: string };

export function placeholderFor(s: Schema): Placeholder {
  if (Array.isArray(s.enum)) {
    return s.enum.length > 0 ? { ok: true, value: s.enum[0] as Json } : { ok: false, why: 'an empty enum' };
  }
  switch (s.type) {
    case 'string': {
      if (s.pattern !== undefined || s.format !== undefined) return { ok: false, why: 'a string with a pattern or format has no placeholder' };
      const max = typeof s.maxLength === 'number' ? s.maxLength : PLACEHOLDER_STRING.length;
      const value = PLACEHOLDER_STRING.slice(0, max);
      if (typeof s.minLength === 'number' && value.length < s.minLength) return { ok: false, why: `no placeholder of minLength ${s.minLength}` };
      return { ok: true, value };
    }
    case 'integer':
    case 'number': {
      if (s.exclusiveMinimum !== undefined || s.exclusiveMaximum !== undefined) return { ok: false, why: 'a number with an exclusive bound has no placeholder' };
      let value = 0;
      if (typeof s.minimum === 'number' && value < s.minimum) value = s.minimum;
      if (typeof s.maximum === 'number' && value > s.maximum) value = s.maximum;
      if (s.type === 'integer' && !Number.isInteger(value)) return { ok: false, why: 'no integer placeholder within the bounds' };
      if (typeof s.multipleOf === 'number' && value !== 0) return { ok: false, why: 'no placeholder that is a multiple of multipleOf within the bounds' };
      return { ok: true, value };
    }
    case 'boolean':
      return { ok: true, value: false };
    case 'object':
    case 'array':
      return { ok: false, why: `a required ${s.type} cannot be sealed whole; seal its members instead` };
    default:
      return { ok: false, why: 'a required field without a simple type cannot be sealed' };
  }
}
