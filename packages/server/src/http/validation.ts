import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

/**
 * JSON-schema validation at the edge. Bodies are validated strictly: no type coercion (an amount
 * of "100" is an error, not 100), no silent removal of unknown keys (they are errors naming the key).
 * Query strings arrive as text, so they are coerced.
 */
const bodyAjv = new Ajv({ allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false });
const queryAjv = new Ajv({ allErrors: false, coerceTypes: true, useDefaults: true, removeAdditional: false, strict: false });

/**
 * Ajv checks an object's `required` before its unknown keys and stops at the first error, so
 * `{"ammount": 100}` would be answered "missing amount". An unknown key is the likelier mistake
 * and the more useful answer, so on failure the body is searched for one first (valid requests pay
 * nothing for it).
 */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : queryAjv;
  const validate = ajv.compile(schema as object);
  const checked = Object.assign(
    (data: unknown): boolean => {
      if (validate(data)) {
        checked.errors = null;
        return true;
      }
      const unknown = firstUnknownKey(ajv, schema as Schema, data, '');
      checked.errors = unknown ? [unknown] : (validate.errors ?? null);
      return false;
    },
    { errors: null as ErrorObject[] | null },
  );
  return checked;
};

/** The parts of JSON Schema that decide which keys an object may have. */
type Schema =
  | boolean
  | {
      type?: string | string[];
      properties?: Record<string, Schema>;
      patternProperties?: Record<string, Schema>;
      additionalProperties?: Schema;
      items?: Schema | Schema[];
      anyOf?: Schema[];
      oneOf?: Schema[];
      allOf?: Schema[];
      if?: Schema;
      then?: Schema;
      else?: Schema;
    };

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function admits(schema: Schema, v: unknown): boolean {
  if (typeof schema === 'boolean') return schema;
  if (schema.type === undefined) return true;
  const t = jsonType(v);
  return [schema.type].flat().some((s) => s === t || (t === 'number' && s === 'integer'));
}

const pointer = (key: string) => '/' + key.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * The first key the schema does not allow, as an Ajv `additionalProperties` error, or null: an
 * object's own keys (in document order) before those of its children. It follows `properties`, array
 * `items`, `allOf`, `if`/`then`/`else` (the `if` run by Ajv), and the one branch of an
 * `anyOf`/`oneOf` that admits the value's JSON type (a nullable object); where that is ambiguous
 * it does not guess and Ajv's own error stands.
 * Recursion follows the schema, which is finite and shallow; the loops are bounded by the body.
 */
function firstUnknownKey(ajv: Ajv, schema: Schema, data: unknown, path: string): ErrorObject | null {
  if (typeof schema === 'boolean' || data === null || typeof data !== 'object') return null;
  const isObject = !Array.isArray(data) && admits(schema, data);
  // 1. This object's own keys.
  const children: [Schema, unknown, string][] = [];
  for (const [key, value] of isObject ? Object.entries(data) : []) {
    const at = path + pointer(key);
    const known = schema.properties && Object.hasOwn(schema.properties, key) ? schema.properties[key]! : undefined;
    const patterned = Object.entries(schema.patternProperties ?? {})
      .filter(([re]) => new RegExp(re, 'u').test(key))
      .map(([, s]) => s);
    if (known !== undefined) children.push([known, value, at]);
    for (const s of patterned) children.push([s, value, at]);
    if (known !== undefined || patterned.length > 0 || schema.additionalProperties === undefined) continue;
    if (schema.additionalProperties === false) {
      return {
        keyword: 'additionalProperties',
        instancePath: path,
        schemaPath: '#/additionalProperties',
        params: { additionalProperty: key },
        message: 'must NOT have additional properties',
      };
    }
    children.push([schema.additionalProperties, value, at]);
  }
  // 2. Subschemas that apply to this same value.
  const alike: Schema[] = [...(schema.allOf ?? [])];
  if (schema.if !== undefined) {
    const branch = conditionHolds(ajv, schema.if, data) ? schema.then : schema.else;
    if (branch !== undefined) alike.push(branch);
  }
  for (const union of [schema.anyOf, schema.oneOf]) {
    const candidates = (union ?? []).filter((s) => admits(s, data));
    if (candidates.length === 1) alike.push(candidates[0]!);
  }
  for (const sub of alike) {
    const found = firstUnknownKey(ajv, sub, data, path);
    if (found) return found;
  }
  // 3. Its children: property values, array items.
  if (Array.isArray(data) && schema.items !== undefined) {
    const items = schema.items;
    data.forEach((item, i) => children.push([Array.isArray(items) ? (items[i] ?? true) : items, item, `${path}/${i}`]));
  }
  for (const [sub, value, at] of children) {
    const found = firstUnknownKey(ajv, sub, value, at);
    if (found) return found;
  }
  return null;
}

const conditions = new WeakMap<Ajv, WeakMap<object, ValidateFunction>>();

/** Runs an `if` schema, compiled once per schema object (schemas live as long as the app). */
function conditionHolds(ajv: Ajv, schema: Schema, data: unknown): boolean {
  if (typeof schema === 'boolean') return schema;
  let compiled = conditions.get(ajv);
  if (!compiled) conditions.set(ajv, (compiled = new WeakMap()));
  let validate = compiled.get(schema);
  if (!validate) compiled.set(schema, (validate = ajv.compile(schema)));
  return validate(data) === true;
}
