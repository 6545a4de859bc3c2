import { Ajv, type ErrorObject } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { errors, type ApiError } from '../domain/errors.ts';

/**
 * JSON-schema validation at the edge. Bodies are validated strictly: no type coercion (an amount
 * of "100" is an error, not 100), no silent removal of unknown keys (they are errors naming the key).
 * Query strings arrive as text, so they are coerced.
 */
const bodyAjv = new Ajv({ allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false });
const queryAjv = new Ajv({ allErrors: false, coerceTypes: true, useDefaults: true, removeAdditional: false, strict: false });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : queryAjv;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
};

/** `/extra/account` → `extra[account]`, the bracket form Ping++ uses in `param`. */
export function paramName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (child !== undefined) parts.push(child);
  if (parts.length === 0) return '';
  return parts[0] + parts.slice(1).map((p) => `[${p}]`).join('');
}

export function validationError(err: ErrorObject | undefined): ApiError {
  if (!err) return errors.badJson();
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return errors.missingParam(paramName(err.instancePath, String(p.missingProperty)));
    case 'additionalProperties':
      return errors.unknownParam(paramName(err.instancePath, String(p.additionalProperty)));
    case 'type':
      if (err.instancePath === '') return errors.badJson();
      return errors.invalidParam(paramName(err.instancePath), `must be ${describeType(String(p.type))}`, `必须是${describeTypeZh(String(p.type))}`);
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum':
      return errors.invalidParam(paramName(err.instancePath), `must be ${p.comparison} ${p.limit}`, `必须 ${p.comparison} ${p.limit}`);
    case 'minLength':
    case 'maxLength':
      return errors.invalidParam(paramName(err.instancePath), err.message ?? 'has a wrong length', '长度不正确');
    case 'enum':
      return errors.invalidParam(
        paramName(err.instancePath),
        `must be one of ${(p.allowedValues as unknown[]).join(', ')}`,
        `必须是 ${(p.allowedValues as unknown[]).join('、')} 之一`,
      );
    case 'pattern':
      return errors.invalidParam(paramName(err.instancePath), 'has an invalid format', '格式不正确');
    case 'maxProperties':
    case 'maxItems':
    case 'minItems':
      return errors.invalidParam(paramName(err.instancePath), err.message ?? 'has a wrong size', '数量不正确');
    default:
      return errors.invalidParam(paramName(err.instancePath) || 'body', err.message ?? 'is invalid', '不正确');
  }
}

function describeType(type: string): string {
  return type === 'integer' ? 'an integer' : type === 'object' ? 'an object' : type === 'array' ? 'an array' : `a ${type}`;
}
function describeTypeZh(type: string): string {
  return { integer: '整数', string: '字符串', object: '对象', boolean: '布尔值', array: '数组', number: '数字' }[type] ?? type;
}
