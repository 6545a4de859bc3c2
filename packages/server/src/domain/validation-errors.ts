/**
 * How a JSON-schema (Ajv) failure is told to the caller: Ping++'s error codes, the param in its
 * bracket form. Pure: used at the HTTP edge and by services that check a nested schema themselves
 * (a withdrawal's per-channel `extra`).
 */

import type { ErrorObject } from 'ajv';
import { errors, type ApiError } from './errors.ts';

/** `/extra/account` → `extra[account]`, the bracket form Ping++ uses in `param`. */
export function paramName(instancePath: string, child?: string): string {
  const parts = instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (child !== undefined) parts.push(child);
  if (parts.length === 0) return '';
  return parts[0] + parts.slice(1).map((p) => `[${p}]`).join('');
}

/**
 * The ApiError for Ajv's errors (the first decides; pass them all, so that a union of constants
 * can list every allowed value).
 */
export function validationError(errs: ErrorObject | readonly ErrorObject[] | null | undefined): ApiError {
  const all = errs === null || errs === undefined ? [] : Array.isArray(errs) ? (errs as readonly ErrorObject[]) : [errs as ErrorObject];
  const err = all[0];
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
    case 'const':
      return oneOfError(err.instancePath, allowedValues(all, err.instancePath));
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

/**
 * A TypeBox union of literals fails as one `const` error per literal (then `anyOf`), a plain
 * `enum` as one error: either way, every value allowed at that place.
 */
function allowedValues(all: readonly ErrorObject[], instancePath: string): unknown[] {
  const values: unknown[] = [];
  for (const e of all) {
    if (e.instancePath !== instancePath) continue;
    const p = e.params as Record<string, unknown>;
    if (e.keyword === 'const') values.push(p.allowedValue);
    else if (e.keyword === 'enum') values.push(...(p.allowedValues as unknown[]));
  }
  return [...new Set(values)];
}

function oneOfError(instancePath: string, values: unknown[]): ApiError {
  const shown = values.map((v) => (typeof v === 'string' && v !== '' ? v : JSON.stringify(v))).join(', ');
  const shownZh = values.map((v) => (typeof v === 'string' && v !== '' ? v : JSON.stringify(v))).join('、');
  return errors.invalidParam(paramName(instancePath), `must be one of: ${shown}`, `必须是 ${shownZh} 之一`);
}

function describeType(type: string): string {
  return type === 'integer' ? 'an integer' : type === 'object' ? 'an object' : type === 'array' ? 'an array' : `a ${type}`;
}
function describeTypeZh(type: string): string {
  return { integer: '整数', string: '字符串', object: '对象', boolean: '布尔值', array: '数组', number: '数字' }[type] ?? type;
}
