import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify';
import { objectOfTag, objectSchemas } from './openapi-objects.ts';

/**
 * The OpenAPI 3.1 reference, generated from the route schemas (@fastify/swagger): GET /openapi.json
 * and a Swagger UI page at /docs, both without an API key. What every v1 route shares — its tag,
 * the secret-key security, the Ping++ error answers and the object it returns — is added here at
 * registration (onRoute), so route files carry only what is particular to them (summary, examples).
 */

/** Errors any authenticated v1 request may get; each has the Ping++ error body. */
const ERROR_STATUSES: Record<number, string> = {
  400: 'Invalid request: a parameter missing, unknown or invalid (error.param names it), an order_no reused, an insufficient balance, or a state that forbids the change.',
  401: 'No API key, or an invalid one.',
  404: 'No such object (or it belongs to another account or mode).',
  429: 'Too many requests.',
  500: 'Internal error; error.message names the request id to quote.',
  503: 'Not processed, send it again: the database is busy (database_busy) or the server is shutting down (service_unavailable).',
};
/** More errors of requests with a body. */
const BODY_ERROR_STATUSES: Record<number, string> = {
  413: 'Request body too large.',
  415: 'Content-Type is not JSON.',
};
/** Confirming a withdrawal needs a payout driver for its channel in the key's mode. */
const CHANNEL_ERROR = { 402: 'channel_error: no payout channel configured for this channel in live mode.' };

const SINGULAR: Record<string, string> = {
  users: 'user', settle_accounts: 'settle account', balance_bonuses: 'balance bonus', balance_settlements: 'balance settlement',
  balance_transactions: 'balance transaction', balance_transfers: 'balance transfer', withdrawals: 'withdrawal',
  batch_withdrawals: 'batch withdrawal', events: 'event',
};

/** The resource of a v1 URL: its last literal segment that names one (`/v1/apps/:app/users/:user/settle_accounts` → settle_accounts). */
export function tagOf(url: string): string {
  const segments = url.split('/').filter((s) => s && !s.startsWith(':') && s in SINGULAR);
  return segments.at(-1) ?? 'other';
}

const capitalised = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The default summary, Stripe's verbs: create, retrieve, update, list, delete. */
function summaryOf(method: string, url: string, tag: string): string {
  const one = SINGULAR[tag] ?? tag;
  const isItem = url.endsWith('/:id');
  const article = /^[aeiou]/.test(one) ? 'an' : 'a';
  if (method === 'POST' && url.endsWith(tag)) return `Create ${article} ${one}`;
  if (method === 'POST') return `${capitalised(url.split('/').at(-1)!)} ${article} ${one}`;
  if (method === 'GET') return isItem ? `Retrieve ${article} ${one}` : `List ${tag.replaceAll('_', ' ')}`;
  if (method === 'PUT') return `Update ${article} ${one}`;
  if (method === 'DELETE') return `Delete ${article} ${one}`;
  return `${method} ${url}`;
}

const ref = (id: string) => ({ $ref: `${id}#` });
const listOf = (id: string) => ({
  type: 'object',
  required: ['object', 'url', 'has_more', 'data'],
  properties: {
    object: { type: 'string', const: 'list' },
    url: { type: ['string', 'null'] },
    has_more: { type: 'boolean' },
    data: { type: 'array', items: ref(id) },
  },
});

/** Path parameters every :name needs in the reference; a route without a params schema gets plain strings. */
function paramsFrom(url: string) {
  const names = [...url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
  return { type: 'object', required: names, properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])) };
}

type Schema = Record<string, unknown> & { response?: Record<string | number, unknown> };

/** Adds what all v1 routes share to one route's schema; whatever the route file set wins. */
export function documentRoute(route: RouteOptions): void {
  const url = route.url;
  const schema = ((route.schema as Schema | undefined) ?? {}) as Schema;
  const method = (Array.isArray(route.method) ? route.method[0] : route.method) ?? 'GET';
  if (!url.startsWith('/v1/')) {
    // Operational routes (/healthz …): listed apart, without the API key.
    if (schema.hide) return;
    schema.tags ??= ['operations'];
    schema.summary ??= `${method} ${url}`;
    schema.security ??= [];
    route.schema = schema;
    return;
  }
  route.schema = schema;
  const tag = tagOf(url);
  schema.tags ??= [tag];
  schema.summary ??= summaryOf(method, url, tag);
  schema.security ??= [{ basicAuth: [] }, { bearerAuth: [] }];
  if (!schema.params && url.includes(':')) schema.params = paramsFrom(url);
  const response = (schema.response ??= {});
  const object = objectOfTag[tag];
  if (response[200] === undefined && object) {
    const isList = method === 'GET' && !url.endsWith('/:id');
    const body =
      method === 'DELETE' ? ref('Deleted')
      : isList && tag === 'withdrawals'
        ? { allOf: [listOf(object), { type: 'object', properties: { total_withdrawals_amount: { type: 'integer', description: 'Sum over all matching withdrawals (fen)' } } }] }
      : isList ? listOf(object)
      : ref(object);
    response[200] = { description: 'OK', ...body };
  }
  const errors = {
    ...ERROR_STATUSES,
    ...(method === 'POST' || method === 'PUT' ? BODY_ERROR_STATUSES : {}),
    ...((tag === 'withdrawals' && method === 'PUT') || (tag === 'batch_withdrawals' && method === 'POST') ? CHANNEL_ERROR : {}),
  };
  for (const [status, description] of Object.entries(errors)) response[status] ??= { description, ...ref('Error') };
}

/**
 * Builds the OpenAPI document and the /docs page; must run before any route is registered.
 *
 * @fastify/swagger and @fastify/swagger-ui (with yaml, the UI's static files: about a tenth of the
 * modules the server loads) load at the first GET /openapi.json or /docs, not at start-up: this
 * app only records its routes (onRoute); the first request builds a separate, never-listening
 * Fastify instance with the same shared schemas and the same routes (no-op handlers) and the two
 * swagger plugins, and the document and pages are answered from it (inject), then kept.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  // Response schemas document the answers; bodies stay JSON.stringify of what handlers return,
  // exactly as before schemas existed, so the reference can never strip a field from an answer.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  for (const [id, schema] of Object.entries(objectSchemas)) app.addSchema({ ...schema, $id: id });
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (route) => {
    documentRoute(route);
    // As @fastify/swagger: HEAD routes (Fastify's automatic ones) are not documented.
    if (route.method !== 'HEAD' && !isDocsRoute(route.url)) routes.push(route);
  });
  let docs: Promise<FastifyInstance> | null = null;
  const docsApp = () => (docs ??= buildDocsApp(app, routes).catch((err: unknown) => {
    docs = null;
    throw err;
  }));
  const forward = async (req: FastifyRequest, reply: FastifyReply) => {
    const doc = await docsApp();
    const headers: Record<string, string> = {};
    for (const h of FORWARDED_HEADERS) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
    const res = await doc.inject({ method: 'GET', url: req.url, headers });
    // The docs instance answers its errors in Fastify's own shape; this server answers Ping++'s.
    // A path it does not have gets this app's not-found answer, as any other unknown path does.
    if (res.statusCode === 404) return reply.callNotFound();
    if (res.statusCode >= 400) {
      // Another refusal (416 for a Range past the end of a file) keeps its status and goes
      // through the app's error handler; Content-Range tells the client the file's length.
      const range = res.headers['content-range'];
      if (typeof range === 'string') reply.header('content-range', range);
      throw Object.assign(new Error(STATUS_CODES[res.statusCode] ?? 'Error'), { statusCode: res.statusCode });
    }
    reply.code(res.statusCode);
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP_HEADERS.has(k)) reply.header(k, v);
    return reply.send(res.rawPayload);
  };
  app.get('/openapi.json', { schema: { hide: true } }, forward);
  app.get('/docs', { schema: { hide: true } }, forward);
  app.get('/docs/*', { schema: { hide: true } }, forward);
}

const isDocsRoute = (url: string) => url === '/openapi.json' || url === '/docs' || url.startsWith('/docs/');
/** Request headers the docs instance may use (caching, compression); nothing else (no credentials). */
const FORWARDED_HEADERS = ['accept', 'accept-encoding', 'if-none-match', 'if-modified-since', 'range'] as const;
/** Answer headers set by this server's own connection, not copied from the docs instance. */
const HOP_HEADERS = new Set(['connection', 'content-length', 'date', 'keep-alive', 'transfer-encoding']);

async function buildDocsApp(app: FastifyInstance, routes: readonly RouteOptions[]): Promise<FastifyInstance> {
  const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')]);
  const doc = Fastify({ logger: false });
  // Nothing is validated or serialized here: the routes only carry their schemas to the document.
  doc.setValidatorCompiler(() => () => true);
  doc.setSerializerCompiler(() => (data) => JSON.stringify(data));
  for (const schema of Object.values(app.getSchemas())) doc.addSchema(schema as { $id: string });
  await doc.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'tixian API',
        version: 'v1',
        description:
          "Ping++'s v1 balance and withdrawal API as tixian serves it. Money is integer fen; times are Unix seconds. " +
          'Authenticate with the app\'s secret key: `Authorization: Bearer sk_test_…` or HTTP Basic with the key as user name. ' +
          'sk_test_ keys see only test-mode objects, sk_live_ only live ones. Every error answers `{"error":{"type","message","code","param"}}`.',
      },
      servers: [{ url: '/' }],
      tags: [
        { name: 'users', description: '用户: the wallet holders of an app, with their available and withdrawable balances.' },
        { name: 'settle_accounts', description: '结算账户: where a user\'s withdrawals are paid (alipay, wx, bank_account).' },
        { name: 'balance_settlements', description: '余额结算: credit a user\'s earnings as withdrawable money (tixian extension).' },
        { name: 'balance_bonuses', description: '余额赠送: give a user balance they may spend but not withdraw.' },
        { name: 'balance_transfers', description: '余额转账: move balance from one user to another.' },
        { name: 'balance_transactions', description: '余额明细: every change of a user\'s balance, one line each.' },
        { name: 'withdrawals', description: '余额提现: create (holds the amount), then confirm (pays out) or cancel (returns it).' },
        { name: 'batch_withdrawals', description: '批量提现: confirm or cancel up to 200 withdrawals at once, all or nothing.' },
        { name: 'events', description: 'Events: withdrawal results, also sent as signed webhooks.' },
        { name: 'operations', description: 'Health checks (no API key).' },
      ],
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'User name: the secret key; password: empty.' },
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'The secret key (sk_test_… or sk_live_…).' },
        },
      },
    },
    // Shared objects keep their own names in components.schemas (Withdrawal, Error …).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await doc.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  doc.get('/openapi.json', { schema: { hide: true } }, () => doc.swagger());
  const noop = () => null;
  for (const r of routes) {
    doc.route({ method: r.method, url: r.url, ...(r.schema ? { schema: r.schema } : {}), ...(r.config ? { config: r.config } : {}), ...(r.constraints ? { constraints: r.constraints } : {}), handler: noop });
  }
  await doc.ready();
  return doc;
}
