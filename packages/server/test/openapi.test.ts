import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteOptions } from 'fastify';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { routeModules, type RouteModule } from '../src/http/app.ts';
import { Harness } from './helpers/harness.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- walking an untyped JSON document */

/** /v1/apps/:app/users/:id → /v1/apps/{app}/users/{id} */
const openApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, '{$1}');

/** Every (path, method) of the document. */
function operations(spec: any): { path: string; method: string; op: any }[] {
  const out: { path: string; method: string; op: any }[] = [];
  for (const [path, item] of Object.entries<any>(spec.paths)) {
    for (const [method, op] of Object.entries<any>(item)) out.push({ path, method: method.toUpperCase(), op });
  }
  return out;
}

/** Each example of the (dereferenced) document with the schema it claims to follow. */
function examplesIn(node: any, where: string, out: { where: string; schema: any; value: unknown }[] = [], seen = new Set<any>()) {
  if (node === null || typeof node !== 'object' || seen.has(node)) return out;
  seen.add(node);
  // A media type: `example`, or `examples` as a map of { value }, and `schema` its schema.
  if (node.schema && node.examples && !Array.isArray(node.examples)) {
    for (const [name, ex] of Object.entries<any>(node.examples)) out.push({ where: `${where} ${name}`, schema: node.schema, value: ex.value });
  }
  if (node.schema && 'example' in node) out.push({ where: `${where} example`, schema: node.schema, value: node.example });
  // A schema: JSON Schema's `examples` array.
  if (Array.isArray(node.examples) && (node.type || node.properties || node.allOf || node.anyOf)) {
    node.examples.forEach((value: unknown, i: number) => out.push({ where: `${where}[${i}]`, schema: node, value }));
  }
  for (const [k, v] of Object.entries(node)) if (k !== 'examples') examplesIn(v, `${where}/${k}`, out, seen);
  return out;
}

describe('OpenAPI reference', () => {
  let h: Harness;
  let spec: any;
  const routes: RouteOptions[] = [];
  // Sees every v1 route as it is registered, in the same scope the route files use.
  const collect: RouteModule = async (v1) => {
    v1.addHook('onRoute', (r) => void routes.push(r));
  };

  beforeAll(async () => {
    routeModules.unshift(collect);
    try {
      h = await Harness.start('sqlite');
    } finally {
      routeModules.splice(routeModules.indexOf(collect), 1);
    }
    const res = await h.request('GET', '/openapi.json', { key: null });
    expect(res.status).toBe(200);
    spec = res.json;
  });
  afterAll(async () => h?.close());

  it('is served without an API key and is a valid OpenAPI 3.1 document', async () => {
    expect(spec.openapi).toBe('3.1.0');
    // validate() mutates (dereferences) what it is given.
    await expect(SwaggerParser.validate(structuredClone(spec))).resolves.toBeTruthy();
  });

  it('has every registered v1 route with its method, and nothing else under /v1', () => {
    // Fastify adds a HEAD route for each GET; the reference lists the GET.
    const registered = routes.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${openApiPath(r.url)}`);
    expect(registered.length).toBeGreaterThanOrEqual(25);
    const documented = operations(spec).map((o) => `${o.method} ${o.path}`).filter((o) => o.includes(' /v1/'));
    expect(documented.sort()).toEqual([...new Set(registered)].sort());
  });

  it('gives every v1 operation a tag, a summary, the secret-key security, its path parameters and Ping++ error answers', () => {
    for (const { path, method, op } of operations(spec).filter((o) => o.path.startsWith('/v1/'))) {
      const name = `${method} ${path}`;
      expect(op.tags, name).toHaveLength(1);
      expect(op.summary, name).toMatch(/^[A-Z]/);
      expect(op.security, name).toEqual([{ basicAuth: [] }, { bearerAuth: [] }]);
      const pathParams = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect((op.parameters ?? []).filter((p: any) => p.in === 'path').map((p: any) => p.name).sort(), name).toEqual(pathParams);
      expect(op.responses['200'].content['application/json'].schema, name).toBeDefined();
      for (const status of ['400', '401', '404', '500']) {
        expect(op.responses[status]?.content['application/json'].schema, `${name} ${status}`).toEqual({ $ref: '#/components/schemas/Error' });
      }
      if (method === 'POST' || method === 'PUT') expect(op.responses['413'], name).toBeDefined();
    }
    expect(spec.components.securitySchemes).toMatchObject({ basicAuth: { type: 'http', scheme: 'basic' }, bearerAuth: { type: 'http', scheme: 'bearer' } });
  });

  it('has an example for every v1 operation, and each example validates against its schema', async () => {
    const deref: any = await SwaggerParser.dereference(structuredClone(spec));
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = (schema: any, value: unknown) => {
      const v = ajv.compile(schema);
      return v(value) ? null : ajv.errorsText(v.errors);
    };

    for (const { path, method, op } of operations(deref).filter((o) => o.path.startsWith('/v1/'))) {
      const examples = examplesIn({ request: op.requestBody, ok: op.responses['200'] }, `${method} ${path}`);
      expect(examples.length, `${method} ${path} has no example`).toBeGreaterThan(0);
      if (op.requestBody) expect(examplesIn(op.requestBody, 'body').length, `${method} ${path} has no request example`).toBeGreaterThan(0);
    }

    const all = examplesIn(deref, '#');
    expect(all.length).toBeGreaterThanOrEqual(20);
    for (const ex of all) expect(validate(ex.schema, ex.value), ex.where).toBeNull();

    // The check can fail: a withdrawal whose amount is text is refused by the same validation.
    const withdrawal = deref.components.schemas.Withdrawal;
    expect(validate(withdrawal, { ...withdrawal.examples[0], amount: '1000' })).toMatch(/amount/);
  });

  it('serves the reference page at /docs without an API key', async () => {
    const res = await h.request('GET', '/docs', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('swagger-ui');
  });

  it('documents answers without changing them: a list still carries total_withdrawals_amount', async () => {
    const res = await h.request('GET', h.appPath('/withdrawals'));
    expect(res.json).toEqual({ object: 'list', url: h.appPath('/withdrawals'), has_more: false, data: [], total_withdrawals_amount: 0 });
  });
});
