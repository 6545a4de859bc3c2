import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ManualClock } from '../src/clock.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { BACKLOG_CACHE_MS } from '../src/http/plugins/metrics.ts';
import { registry } from '../src/observability/metrics.ts';
import { loadConfig } from '../src/config.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { Receiver } from './helpers/receiver.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/** One Prometheus sample: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of the samples of `name` whose labels include `labels`. */
const valueOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

describeEngines('metrics', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;
  let worker: PayoutWorker;
  let dispatcher: WebhookDispatcher;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 8, 0, 0));
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    receiver = await Receiver.start();
    worker = new PayoutWorker(h.rt);
    dispatcher = new WebhookDispatcher(h.rt);
    await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: receiver.urlFor('/hook') });
    await h.createUser('metrics_user');
    await h.fund('metrics_user', 100_000);
  });
  afterAll(async () => {
    await dispatcher?.stop();
    await receiver?.close();
    await h?.close();
  });

  const scrape = async () => {
    const res = await h.request('GET', '/metrics', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return { text: res.body, samples: parseExposition(res.body) };
  };
  /** The backlog gauges are cached for BACKLOG_CACHE_MS of the injected clock: step past it. */
  const freshScrape = async () => {
    clock.advance(BACKLOG_CACHE_MS);
    return scrape();
  };

  const createWithdrawal = (payee: string) =>
    h.request('POST', h.appPath('/withdrawals'), {
      body: { user: 'metrics_user', amount: 1000, user_fee: 10, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', payee) },
    });

  it("counts a withdrawal's whole life: create, confirm, payout, webhook", async () => {
    const before = (await freshScrape()).samples;

    const created = await createWithdrawal(sandboxPayee('alipay', ''));
    expect(created.status).toBe(200);
    const id = created.json.id as string;
    expect((await h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })).status).toBe(200);

    // Confirmed, not yet paid: one payout waits to be submitted.
    const confirmed = (await freshScrape()).samples;
    expect(valueOf(confirmed, 'tixian_payouts_pending', { phase: 'submit' })).toBe(1);
    clock.advance(30_000);
    const overdue = (await freshScrape()).samples;
    expect(valueOf(overdue, 'tixian_payouts_oldest_due_age_seconds')).toBe(30 + (2 * BACKLOG_CACHE_MS) / 1000); // confirmed, then two cache steps and 30 s

    expect(await worker.runOnce()).toBe(1);
    // Paid: its event waits for the webhook dispatcher.
    const paid = (await freshScrape()).samples;
    expect(valueOf(paid, 'tixian_payouts_pending')).toBe(0);
    expect(valueOf(paid, 'tixian_payouts_oldest_due_age_seconds')).toBe(0);
    expect(valueOf(paid, 'tixian_webhook_queue_depth')).toBe(1);
    clock.advance(20_000);
    const waiting = (await freshScrape()).samples;
    expect(valueOf(waiting, 'tixian_webhook_oldest_due_age_seconds')).toBe(20 + (2 * BACKLOG_CACHE_MS) / 1000);

    expect(await dispatcher.drain()).toBe(1);
    expect(receiver.to('/hook').map((r) => r.event?.type)).toEqual(['balance.withdrawal.succeeded']);

    const { text, samples: after } = await freshScrape();
    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
    const alipay = { channel: 'alipay' };
    expect(delta('tixian_withdrawal_transitions_total', { ...alipay, from: 'none', to: 'created' })).toBe(1);
    expect(delta('tixian_withdrawal_transitions_total', { ...alipay, from: 'created', to: 'pending' })).toBe(1);
    expect(delta('tixian_withdrawal_transitions_total', { ...alipay, from: 'pending', to: 'succeeded' })).toBe(1);
    expect(delta('tixian_withdrawal_transitions_total')).toBe(3);
    expect(delta('tixian_payout_driver_calls_total', { ...alipay, driver: 'sandbox', call: 'submit', outcome: 'succeeded' })).toBe(1);
    expect(delta('tixian_payout_driver_calls_total')).toBe(1);
    expect(delta('tixian_payout_driver_call_duration_seconds_count', { ...alipay, call: 'submit' })).toBe(1);
    expect(delta('tixian_payout_claim_size_count')).toBe(1);
    expect(delta('tixian_webhook_attempts_total', { result: 'succeeded' })).toBe(1);
    expect(delta('tixian_webhook_attempts_total')).toBe(1);
    expect(delta('tixian_webhook_delivery_attempts_count', { result: 'succeeded' })).toBe(1);
    expect(delta('tixian_webhook_delivery_attempts_sum', { result: 'succeeded' })).toBe(1);
    expect(delta('tixian_webhook_record_batch_size_count')).toBe(1);
    expect(valueOf(after, 'tixian_webhook_queue_depth')).toBe(0);
    expect(valueOf(after, 'tixian_webhook_oldest_due_age_seconds')).toBe(0);

    // Requests by route pattern, never the raw URL (ids would make every withdrawal a new series).
    expect(delta('tixian_http_requests_total', { route: '/v1/apps/:app/withdrawals', method: 'POST', status: '200' })).toBe(1);
    expect(delta('tixian_http_requests_total', { route: '/v1/apps/:app/withdrawals/:id', method: 'PUT', status: '200' })).toBe(1);
    expect(delta('tixian_http_request_duration_seconds_count', { route: '/v1/apps/:app/withdrawals', method: 'POST' })).toBe(1);
    expect(text).not.toContain(h.appId);
    expect(text).not.toContain(id);
  });

  it('counts an idempotent replay of a create as no new withdrawal, and an unknown answer then a query', async () => {
    const before = (await freshScrape()).samples;
    const body = { user: 'metrics_user', amount: 1000, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', sandboxPayee('alipay', '0004')) };
    const first = await h.request('POST', h.appPath('/withdrawals'), { body });
    expect((await h.request('POST', h.appPath('/withdrawals'), { body })).json.id).toBe(first.json.id);
    expect((await h.request('PUT', h.appPath(`/withdrawals/${first.json.id}`), { body: { status: 'pending' } })).status).toBe(200);
    await worker.runOnce(); // submit: the answer is lost
    clock.advance(60_000);
    await worker.runOnce(); // query: succeeded
    expect((await h.request('GET', h.appPath(`/withdrawals/${first.json.id}`))).json.status).toBe('succeeded');

    const after = (await freshScrape()).samples;
    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('tixian_withdrawal_transitions_total', { from: 'none', to: 'created' })).toBe(1);
    expect(delta('tixian_payout_driver_calls_total', { call: 'submit', outcome: 'unknown' })).toBe(1);
    expect(delta('tixian_payout_driver_calls_total', { call: 'query', outcome: 'succeeded' })).toBe(1);
    expect(delta('tixian_withdrawal_transitions_total', { from: 'pending', to: 'succeeded' })).toBe(1);
    await dispatcher.drain();
  });

  it('counts ledger verifications and reports the pool on PostgreSQL', async () => {
    const before = (await scrape()).samples;
    expect((await h.verify()).ok).toBe(true);
    const after = (await scrape()).samples;
    expect(valueOf(after, 'tixian_ledger_verifications_total', { result: 'ok' }) - valueOf(before, 'tixian_ledger_verifications_total', { result: 'ok' })).toBe(1);
    expect(valueOf(after, 'tixian_ledger_drift_items')).toBe(0);
    if (engine === 'postgres') expect(valueOf(after, 'tixian_db_pool_connections', { state: 'total' })).toBeGreaterThan(0);
  });
});

describe('/metrics access', () => {
  const TOKEN = 'metrics-token-0123456789abcdef';
  let guarded: Harness;
  let off: Harness;
  beforeAll(async () => {
    guarded = await Harness.start('sqlite', { config: { metricsToken: TOKEN } });
    off = await Harness.start('sqlite', { config: { metrics: false } });
  });
  afterAll(async () => {
    await guarded?.close();
    await off?.close();
  });

  it('with a token, answers only a request that carries it, in Ping++ error shape otherwise', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Basic ${Buffer.from(TOKEN).toString('base64')}`, `Bearer ${TOKEN}x`]) {
      const res = await guarded.request('GET', '/metrics', { key: null, headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ error: { type: 'invalid_request_error', code: 'invalid_metrics_token', message: expect.any(String) } });
      expect(res.body).not.toContain(TOKEN);
    }
    const ok = await guarded.request('GET', '/metrics', { key: null, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('# TYPE tixian_http_requests_total counter');
  });

  it('counts a request no route matched as route "unmatched", never under its URL', async () => {
    const scrapeGuarded = async () =>
      parseExposition((await guarded.request('GET', '/metrics', { key: null, headers: { authorization: `Bearer ${TOKEN}` } })).body);
    const labels = { route: 'unmatched', method: 'GET', status: '404' };
    const before = valueOf(await scrapeGuarded(), 'tixian_http_requests_total', labels);
    const junk = `/no/such/path/${Math.random().toString(36).slice(2)}`;
    expect((await guarded.request('GET', junk, { key: null })).status).toBe(404);
    const res = await guarded.request('GET', '/metrics', { key: null, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(valueOf(parseExposition(res.body), 'tixian_http_requests_total', labels) - before).toBe(1);
    expect(res.body).not.toContain(junk);
  });

  it('switched off, there is no /metrics (404) and the API still answers', async () => {
    expect((await off.request('GET', '/metrics', { key: null })).status).toBe(404);
    expect((await off.request('GET', off.appPath('/users'))).status).toBe(200);
  });

  it('reads the switches from flags and TIXIAN_* variables', () => {
    expect(loadConfig({}, {}).metrics).toBe(true);
    expect(loadConfig({}, { TIXIAN_METRICS: '0' }).metrics).toBe(false);
    expect(loadConfig({ metrics: false }, { TIXIAN_METRICS: '1' }).metrics).toBe(false);
    // A flag wins over its variable (the CLI passes only flags actually given, never commander's defaults).
    expect(loadConfig({ metrics: true }, { TIXIAN_METRICS: '0' }).metrics).toBe(true);
    expect(loadConfig({}, { TIXIAN_METRICS_TOKEN: TOKEN }).metricsToken).toBe(TOKEN);
    expect(() => loadConfig({}, { TIXIAN_METRICS_TOKEN: 'short' })).toThrow(/16\.\.256/);
  });
});

describe('deploy/prometheus/alerts.yml', () => {
  const file = fileURLToPath(new URL('../../../deploy/prometheus/alerts.yml', import.meta.url));
  const doc = parseYaml(readFileSync(file, 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string; for?: string; labels?: object; annotations?: object }[] }[] };

  it('is Prometheus rule-file YAML: groups of named alerts with an expression, a severity and a summary', () => {
    expect(doc.groups.length).toBeGreaterThan(0);
    const alerts = doc.groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining(['TixianWebhookBacklogGrowing', 'TixianPayoutsStuckPending', 'TixianPayoutsStuckUnknown', 'TixianHttp5xxRate']),
    );
    for (const a of alerts) {
      expect(a.expr, a.alert).toEqual(expect.any(String));
      expect(a.for, a.alert).toMatch(/^\d+[smh]$/);
      expect(a.labels, a.alert).toMatchObject({ severity: expect.stringMatching(/^(page|ticket)$/) });
      expect(a.annotations, a.alert).toMatchObject({ summary: expect.any(String) });
    }
  });

  it('names only metrics that tixian exports', async () => {
    const exported = new Set<string>();
    for (const m of await registry.getMetricsAsJSON()) {
      exported.add(m.name);
      if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m.name + suffix);
    }
    const named = doc.groups.flatMap((g) => g.rules).flatMap((a) => a.expr.match(/\btixian_\w+/g) ?? []);
    expect(named.length).toBeGreaterThan(0);
    for (const name of named) expect(exported, name).toContain(name);
  });
});
