import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteOptions } from 'fastify';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { routeModules, type RouteModule } from '../src/http/app.ts';
import { Harness } from './helpers/harness.ts';
import { orderNo, seedExtra } from './helpers/withdrawals.ts';

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

  it('describes what the API really answers: real answers validate against the documented response schemas', async () => {
    const deref: any = await SwaggerParser.dereference(structuredClone(spec));
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const checked: string[] = [];
    /** Sends the request and checks its answer against what the document says `template` answers with that status. */
    const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', template: string, url: string, options: Parameters<Harness['request']>[2] = {}) => {
      const res = await h.request(method, url, options);
      const documented = deref.paths[template]?.[method.toLowerCase()]?.responses?.[String(res.status)]?.content?.['application/json']?.schema;
      expect(documented, `${method} ${template} ${res.status} is documented`).toBeDefined();
      const validate = ajv.compile(documented);
      expect(validate(res.json) ? null : ajv.errorsText(validate.errors), `${method} ${template} ${res.status}`).toBeNull();
      checked.push(`${method} ${template} ${res.status}`);
      return res.json;
    };
    const app = (rest: string) => h.appPath(rest);
    const A = '/v1/apps/{app}';

    await call('POST', `${A}/users`, app('/users'), { body: { id: 'doc_u1', name: '张三' } });
    await call('POST', `${A}/users`, app('/users'), { body: { id: 'doc_u2' } });
    await call('GET', `${A}/users/{id}`, app('/users/doc_u1'));
    await call('PUT', `${A}/users/{id}`, app('/users/doc_u1'), { body: { mobile: '13800000000' } });
    await call('GET', `${A}/users`, app('/users?per_page=5'));
    await call('POST', `${A}/balance_settlements`, app('/balance_settlements'), { body: { user: 'doc_u1', amount: 10_000, order_no: 'docsettle1' } });
    await call('POST', `${A}/balance_bonuses`, app('/balance_bonuses'), { body: { user: 'doc_u1', amount: 500, order_no: 'docbonus1' } });
    await call('POST', `${A}/balance_transfers`, app('/balance_transfers'), { body: { user: 'doc_u1', recipient: 'doc_u2', amount: 100, order_no: 'doctransfer1' } });
    await call('GET', `${A}/balance_transactions`, app('/balance_transactions?user=doc_u1'));
    const account = await call('POST', `${A}/users/{user}/settle_accounts`, app('/users/doc_u1/settle_accounts'), { body: { channel: 'alipay', recipient: { account: 'payee@example.com', name: '张三', type: 'b2c' } } });
    await call('GET', `${A}/users/{user}/settle_accounts`, app('/users/doc_u1/settle_accounts'));
    await call('DELETE', `${A}/users/{user}/settle_accounts/{id}`, app(`/users/doc_u1/settle_accounts/${account.id}`));
    const w = await call('POST', `${A}/withdrawals`, app('/withdrawals'), { body: { user: 'doc_u1', amount: 1000, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay') } });
    await call('GET', `${A}/withdrawals/{id}`, app(`/withdrawals/${w.id}`));
    await call('GET', `${A}/withdrawals`, app('/withdrawals'));
    const w2 = await call('POST', `${A}/withdrawals`, app('/withdrawals'), { body: { user: 'doc_u1', amount: 1000, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay') } });
    await call('POST', `${A}/batch_withdrawals`, app('/batch_withdrawals'), { body: { withdrawals: [w2.id], status: 'canceled' } });
    await call('PUT', `${A}/withdrawals/{id}`, app(`/withdrawals/${w.id}`), { body: { status: 'canceled' } });
    await call('GET', '/v1/events', '/v1/events');
    // Error answers, in Ping++'s shape.
    await call('POST', `${A}/withdrawals`, app('/withdrawals'), { body: { user: 'doc_u1', amount: 'x', channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay') } });
    await call('GET', `${A}/withdrawals/{id}`, app('/withdrawals/1234567890123456789'));
    await call('GET', `${A}/users`, app('/users'), { key: null });
    expect(checked).toEqual(expect.arrayContaining([
      'POST /v1/apps/{app}/withdrawals 200', 'POST /v1/apps/{app}/withdrawals 400', 'GET /v1/apps/{app}/withdrawals/{id} 404', 'GET /v1/apps/{app}/users 401',
      'DELETE /v1/apps/{app}/users/{user}/settle_accounts/{id} 200', 'POST /v1/apps/{app}/batch_withdrawals 200',
    ]));
  });

  it('serves the reference page at /docs without an API key', async () => {
    const res = await h.request('GET', '/docs', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('swagger-ui');
  });

  it('answers an unknown /docs/ path with the same Ping++ not-found error as any other unknown path', async () => {
    for (const path of ['/docs/no-such-page', '/docs/static/no-such-file.js']) {
      const res = await h.request('GET', path, { key: null });
      expect(res.status, path).toBe(404);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.json).toEqual({ error: { type: 'invalid_request_error', code: 'route_not_found', message: `未找到请求的路径 GET ${path}。` } });
    }
    // As an unknown path elsewhere answers.
    const elsewhere = await h.request('GET', '/no-such-page', { key: null });
    expect(elsewhere.json.error.code).toBe('route_not_found');
  });

  it("answers the docs files' other refusals in Ping++'s shape too (a Range past the end: 416)", async () => {
    const res = await h.request('GET', '/docs/static/index.css', { key: null, headers: { range: 'bytes=99999999-' } });
    expect(res.status).toBe(416);
    expect(res.headers['content-range']).toMatch(/^bytes \*\/\d+$/);
    expect(res.json).toEqual({ error: { type: 'invalid_request_error', code: 'bad_request', message: expect.any(String) } });
  });

  it('documents answers without changing them: a withdrawal list still carries total_withdrawals_amount', async () => {
    const res = await h.request('GET', h.appPath('/withdrawals'));
    expect(Object.keys(res.json).sort()).toEqual(['data', 'has_more', 'object', 'total_withdrawals_amount', 'url']);
    expect(res.json.total_withdrawals_amount).toEqual(expect.any(Number));
  });
});
