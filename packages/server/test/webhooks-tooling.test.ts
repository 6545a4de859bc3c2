import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { trigger } from '../src/cli/trigger.ts';
import { createUser } from '../src/services/users.ts';
import { createBalanceSettlement } from '../src/services/balance_settlements.ts';
import { confirmWithdrawal, createWithdrawal } from '../src/services/withdrawals.ts';
import { seedExtra } from './helpers/withdrawals.ts';
import type { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, failFirst, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { harnessStorageArgs, runCli } from './helpers/cli.ts';
import { TIXIAN_BIN } from './helpers/process.ts';

// The system clock throughout: `events tail` runs in another process and looks at real time.
describeEngines('webhook tooling', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let receiver: Receiver;
  let d: WebhookDispatcher;

  beforeAll(async () => {
    rig = await WebhookRig.start(engine, { config: { webhookTimeoutMs: 2_000 } });
    ({ h, receiver } = rig);
    d = rig.fileDispatcher();
  });
  afterEach(() => rig.reset({ behaviour: () => ({ status: 200 }) }));
  afterAll(() => rig?.close());

  const cli = (...args: string[]) => runCli(h, ...args);

  describe('GET /v1/events/{id}/deliveries and tixian events deliveries', () => {
    it('shows every try with its status code, answer excerpt and time; only to the owner', async () => {
      const m = await rig.newMerchant('deliveries');
      receiver.behaviour = failFirst(1);
      const { endpoint } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/hook?token=s3cret') });
      const eventId = await emitTestEvent(h.rt, { app: m.id, accountId: m.account });
      await d.drain();
      // The retry is due 5 s later; move its schedule instead of waiting.
      await h.rt.store.db.updateTable('webhook_deliveries').set({ next_attempt_ms: Date.now() }).where('event_id', '=', eventId).execute();
      await d.drain();

      const res = await h.request('GET', `/v1/events/${eventId}/deliveries`, { key: m.secret_key_test });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ object: 'list', url: `/v1/events/${eventId}/deliveries`, has_more: false });
      expect(res.json.data).toHaveLength(1);
      const [delivery] = res.json.data;
      expect(delivery).toMatchObject({
        object: 'webhook_delivery', event: eventId, endpoint: endpoint.id, url: receiver.urlFor('/hook'), status: 'succeeded', attempt_count: 2, next_attempt: null,
      });
      expect(delivery.attempts.map((a: { status_code: number; response_body: string }) => [a.status_code, a.response_body])).toEqual([
        [500, 'fail 1'],
        [200, 'ok'],
      ]);
      for (const a of delivery.attempts) {
        expect(a.object).toBe('webhook_attempt');
        expect(Math.abs(a.attempted_ms - Date.now())).toBeLessThan(60_000);
        expect(a.created).toBe(Math.floor(a.attempted_ms / 1000));
      }
      expect(res.body).not.toContain('s3cret');

      // Another account, the other mode, an unknown id: 404 as if it did not exist.
      const other = await rig.newMerchant('other');
      for (const key of [other.secret_key_test, m.secret_key_live]) {
        const denied = await h.request('GET', `/v1/events/${eventId}/deliveries`, { key });
        expect(denied.status).toBe(404);
        expect(denied.json.error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
      }
      expect((await h.request('GET', `/v1/events/${eventId}/deliveries`, { key: null })).status).toBe(401);

      const shown = await cli('events', 'deliveries', eventId);
      expect(shown.code).toBe(0);
      expect(shown.out[0]).toContain(`endpoint ${endpoint.id}  ${receiver.urlFor('/hook')}  succeeded after 2 tries`);
      expect(shown.out[1]).toMatch(/^ {2}\d{4}-\d\d-\d\dT.*Z {2}500 {2}\d+ ms {2}"fail 1"$/);
      expect(shown.out[2]).toMatch(/ 200 {2}\d+ ms {2}"ok"$/);
      expect(shown.out.join('\n')).not.toContain('s3cret');
      expect((await cli('events', 'deliveries', 'evt_missing')).code).toBe(2);
    });

    it('logs a failed try at warn with the endpoint URL (no query) and status', async () => {
      const m = await rig.newMerchant('warn');
      receiver.behaviour = () => ({ status: 502, body: 'bad gateway' });
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/warn?token=s3cret') });
      const warn = vi.spyOn(h.rt.log, 'warn');
      onTestFinished(() => warn.mockRestore());
      await emitTestEvent(h.rt, { app: m.id, accountId: m.account });
      await d.drain();
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ url: receiver.urlFor('/warn'), status_code: 502, attempt: 1 }), expect.stringContaining('failed'));
      expect(JSON.stringify(warn.mock.calls)).not.toContain('s3cret');
    });
  });

  it('tixian apps webhooks list shows a disabled or failing endpoint; enable turns it back on', async () => {
    const m = await rig.newMerchant('enable');
    const { endpoint } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/enable') });
    const since = Date.UTC(2026, 0, 1);
    await h.rt.store.db
      .updateTable('webhook_endpoints')
      .set({ failure_streak: 42, failing_since_ms: since, auto_disabled_ms: since + 3 * 86_400_000, auto_disabled_reason: 'every try failed for 72 h (42 in a row)' })
      .where('id', '=', endpoint.id)
      .execute();
    const listed = await cli('apps', 'webhooks', 'list', m.id);
    expect(listed.out.join('\n')).toContain(`DISABLED since 2026-01-04T00:00:00.000Z: every try failed for 72 h (42 in a row) (tixian apps webhooks enable ${m.id} ${endpoint.id})`);

    const enabled = await cli('apps', 'webhooks', 'enable', m.id, endpoint.id);
    expect(enabled.code).toBe(0);
    expect(enabled.out[0]).toMatch(new RegExp(`^webhook endpoint enabled: ${endpoint.id} `));
    expect(enabled.out[0]).not.toContain('DISABLED');
    expect(await h.rt.store.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', endpoint.id).executeTakeFirstOrThrow()).toMatchObject({
      failure_streak: 0, failing_since_ms: null, auto_disabled_ms: null, auto_disabled_reason: null,
    });
    await h.rt.store.db.updateTable('webhook_endpoints').set({ failure_streak: 3, failing_since_ms: since }).where('id', '=', endpoint.id).execute();
    expect((await cli('apps', 'webhooks', 'list', m.id)).out.join('\n')).toContain('failing: 3 tries in a row since 2026-01-01T00:00:00.000Z');
    expect((await cli('apps', 'webhooks', 'enable', m.id, 'we_missing')).code).toBe(2);
  });

  describe('tixian trigger', () => {
    it.each([
      ['balance.withdrawal.succeeded', 'succeeded', 'balance.withdrawal.succeeded'],
      ['balance.withdrawal.failed', 'failed', 'balance.withdrawal.failed'],
      ['balance.withdrawal.canceled', 'canceled', null],
      ['balance.withdrawal.created', 'created', null],
    ] as const)('%s runs a test-mode withdrawal to %s', async (what, status, eventType) => {
      vi.stubEnv('TIXIAN_SANDBOX_DELAY_MS', '0');
      onTestFinished(() => void vi.unstubAllEnvs());
      const m = await rig.newMerchant('trigger');
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor(`/trigger/${status}`) });
      const res = await cli('trigger', what, '--app', m.id, '--json');
      expect(res.code, res.err.join('')).toBe(0);
      const out = JSON.parse(res.out.join('\n')) as { withdrawal: { id: string; status: string; livemode: boolean }; event: { id: string; type: string } | null };
      expect(out.withdrawal).toMatchObject({ status, livemode: false });
      const events = await h.rt.store.db.selectFrom('events').select(['id', 'type', 'livemode']).where('app', '=', m.id).execute();
      if (eventType === null) {
        expect(out.event).toBeNull();
        expect(events).toHaveLength(0);
      } else {
        expect(events).toEqual([{ id: out.event!.id, type: eventType, livemode: 0 }]);
        // Queued for the app's endpoint; a dispatcher delivers it.
        await d.drain();
        expect(receiver.to(`/trigger/${status}`).map((r) => r.event!.id)).toEqual([out.event!.id]);
      }
      expect((await h.verify()).ok).toBe(true);
    });

    it("pays out its own withdrawal only, not another merchant's due in the same database", async () => {
      const bystander = await rig.newMerchant('bystander');
      const scope = { accountId: bystander.account, app: bystander.id, livemode: false, requestId: null };
      await createUser(h.rt, scope, { id: 'waiting' });
      await createBalanceSettlement(h.rt, scope, { user: 'waiting', amount: 500, order_no: 'bys1' });
      const waiting = await createWithdrawal(h.rt, scope, { user: 'waiting', amount: 500, channel: 'alipay', order_no: 'bys2', extra: seedExtra('alipay') });
      await confirmWithdrawal(h.rt, scope, waiting.id);
      const m = await rig.newMerchant('trigger-alone');
      const result = await trigger(h.rt, m.id, 'balance.withdrawal.succeeded', 100);
      expect(result.withdrawal.status).toBe('succeeded');
      // Due, but left to the processes that run payout workers: never claimed here.
      expect(await h.rt.store.db.selectFrom('withdrawals').select(['status', 'payout_lease_ms', 'payout_tries']).where('id', '=', waiting.id).executeTakeFirstOrThrow())
        .toEqual({ status: 'pending', payout_lease_ms: null, payout_tries: 0 });
    });

    it('refuses an unknown app', async () => {
      const res = await cli('trigger', 'balance.withdrawal.succeeded', '--app', 'app_missing');
      expect(res.code).toBe(2);
      expect(res.err.join('')).toContain('no such app');
    });
  });

  it('tixian events tail prints events and delivery results as they happen, and ends on SIGINT', async () => {
    const m = await rig.newMerchant('tail');
    const other = await rig.newMerchant('tail-other');
    receiver.behaviour = () => ({ status: 200, body: 'ok' });
    await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/tail') });
    const before = await emitTestEvent(h.rt, { app: m.id, accountId: m.account });
    await d.drain();

    const child = spawn(process.execPath, [TIXIAN_BIN, 'events', 'tail', '--app', m.id, '--interval-ms', '100', ...harnessStorageArgs(h)], {
      env: { ...process.env, TIXIAN_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    onTestFinished(() => void child.kill('SIGKILL'));
    const lines: string[] = [];
    const waiters = new Set<() => void>();
    createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l);
      for (const w of [...waiters]) w();
    });
    let stderr = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('watching')) resolve();
      });
      child.once('exit', () => reject(new Error(`tail exited early: ${stderr}`)));
    });
    const lineMatching = (re: RegExp, timeoutMs = 15_000) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => re.test(l));
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; got:\n${lines.join('\n')}\n${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });

    await ready;
    const eventId = await emitTestEvent(h.rt, { app: m.id, accountId: m.account, type: 'balance.withdrawal.failed' });
    await emitTestEvent(h.rt, { app: other.id, accountId: other.account });
    expect(await lineMatching(new RegExp(`event +${eventId}`))).toContain('balance.withdrawal.failed');
    await d.drain();
    expect(await lineMatching(new RegExp(`delivery ${eventId} +-> ${receiver.urlFor('/tail')} +200`))).toContain('delivery succeeded');

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    // Only what happened while it watched, and only this app.
    expect(lines.join('\n')).not.toContain(before);
    expect(lines.filter((l) => l.includes(' event '))).toHaveLength(1);
  });
});
