import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Harness } from './helpers/harness.ts';
import { Receiver } from './helpers/receiver.ts';
import { orderNo, seedExtra } from './helpers/withdrawals.ts';
import { ChromiumSession, chromiumInstalled, logIn, OPERATOR, startConsole } from './helpers/browser.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { startWorkers, type Worker } from '../src/workers.ts';

/**
 * The console in a real browser (helpers/browser.ts). One server on SQLite (storage is covered on
 * both engines by console-admin.test.ts), its workers running, a webhook receiver. Screenshots of
 * each page go to test-artifacts/console/.
 */
describe.skipIf(!chromiumInstalled())('console in Chromium', () => {
  let h: Harness;
  let workers: Worker;
  let receiver: Receiver;
  let session: ChromiumSession;
  let page: Page;
  let base: string;

  beforeAll(async () => {
    ({ h, base } = await startConsole({ config: { sandboxDelayMs: 0, allowPrivateWebhooks: true } }));
    receiver = await Receiver.start();
    await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: receiver.urlFor('/hook') });
    await h.createUser('bu1');
    await h.fund('bu1', 1_000_000);
    workers = startWorkers(h.rt);
    session = await ChromiumSession.launch();
    page = session.page;
  }, 120_000);

  afterAll(async () => {
    await session?.close();
    await workers?.stop();
    await receiver?.close();
    await h?.close();
  });

  async function withdrawal(amount: number): Promise<string> {
    const res = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'bu1', amount, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', 'payee@example.com') } });
    expect(res.status, res.body).toBe(200);
    return res.json.id as string;
  }
  const shot = (name: string) => session.shot(name);
  const status = async (id: string) => (await h.request('GET', h.appPath(`/withdrawals/${id}`))).json.status as string;

  it('logs in, confirms a withdrawal from the queue, sees it succeed with its webhook attempt, and finds it in the audit log', async () => {
    const id = await withdrawal(1234);
    await page.goto(base + '/');
    expect(page.url()).toBe(base + '/dashboard/');
    await page.getByTestId('login-email').waitFor();
    await shot('01-login');
    await logIn(page);

    const row = page.getByTestId(`row-${id}`);
    await row.waitFor();
    expect(await row.textContent()).toContain('¥12.34');
    expect(await row.textContent()).toContain('待审核');
    await shot('02-withdrawals-queue');

    await page.getByTestId(`confirm-${id}`).click();
    await page.locator('[data-testid=popconfirm-ok]:visible').click();
    await row.waitFor({ state: 'detached' }); // left the review queue
    await receiver.waitFor((reqs) => reqs.some((r) => r.event?.type === 'balance.withdrawal.succeeded'), 20_000);
    expect(await status(id)).toBe('succeeded');

    await page.getByRole('tab', { name: '全部提现' }).click();
    await page.getByTestId(`row-${id}`).getByText(id).click();
    const detail = page.getByTestId('withdrawal-detail');
    await detail.getByTestId('status-succeeded').waitFor();
    await detail.getByTestId('attempt-status').filter({ hasText: '200' }).first().waitFor({ timeout: 20_000 });
    expect(await detail.textContent()).toContain('balance.withdrawal.succeeded');
    expect(await detail.textContent()).toContain(receiver.urlFor('/hook'));
    await shot('03-withdrawal-detail');
    await page.keyboard.press('Escape');

    await page.goto(base + '/dashboard/audit');
    const line = page.getByTestId(`audit-withdrawal.confirm-${id}`);
    await line.waitFor();
    expect(await line.textContent()).toContain(OPERATOR.email);
    await shot('04-audit');
  });

  it('batch-cancels three selected withdrawals after asking', async () => {
    const ids = [await withdrawal(101), await withdrawal(202), await withdrawal(303)];
    await page.goto(base + '/dashboard/withdrawals');
    for (const id of ids) await page.getByTestId(`row-${id}`).locator('input[type=checkbox]').check();
    await page.getByTestId('batch-cancel').click();
    await shot('05-batch-cancel-confirm');
    await page.getByTestId('batch-ok').click();
    for (const id of ids) await page.getByTestId(`row-${id}`).waitFor({ state: 'detached' });
    for (const id of ids) expect(await status(id)).toBe('canceled');
    expect((await h.verify()).ok).toBe(true);
  });

  it('shows the overview with its chart, switches to English, and never puts a secret key in the page', async () => {
    await page.goto(base + '/dashboard/overview');
    await page.getByTestId('overview').locator('canvas').first().waitFor();
    await shot('06-overview');
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('menuitem', { name: 'Withdrawals' }).waitFor();
    await page.getByRole('menuitem', { name: 'Withdrawals' }).click();
    await page.getByRole('tab', { name: 'Review queue' }).waitFor();
    await shot('07-withdrawals-en');
    const html = await page.content();
    expect(html).not.toContain(h.testKey);
    expect(html).not.toContain(h.liveKey);
    // The session cookie is not readable by the page.
    expect(await page.evaluate('document.cookie')).not.toContain('tixian_session');
  });

  it('adds a webhook endpoint and sends a test event to it', async () => {
    await page.getByRole('button', { name: '中文' }).click(); // back to Chinese
    await page.goto(base + '/dashboard/webhooks');
    const url = receiver.urlFor('/console-hook');
    await page.getByTestId('endpoint-url').fill(url);
    await page.getByTestId('endpoint-add').click();
    await page.getByTestId(`endpoint-${url}`).waitFor();
    await page.getByTestId('send-test-event').click();
    await receiver.waitFor((reqs) => reqs.some((r) => r.path === '/console-hook' && r.event?.type === 'balance.withdrawal.succeeded'), 20_000);
    await shot('08-webhooks');
    await page.goto(base + '/dashboard/users');
    await page.getByTestId('users').getByText('bu1').first().waitFor();
    await shot('10-users');
  });

  it('uploads the merchant public key and requires signatures in test mode: an unsigned API call is then refused', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const before = await h.request('POST', h.appPath('/users'), { body: { id: 'unsigned_ok' } });
    expect(before.status).toBe(200);
    await page.goto(base + '/dashboard/developers');
    await page.getByTestId('api-base').filter({ hasText: base }).waitFor();
    await page.getByTestId('platform-key').filter({ hasText: 'BEGIN PUBLIC KEY' }).waitFor();
    await page.getByTestId('public-key-input').fill(publicKey.export({ type: 'spki', format: 'pem' }).toString());
    await page.getByTestId('public-key-upload').click();
    await page.getByTestId('key-fingerprint').filter({ hasText: 'SHA-256' }).waitFor();
    await page.getByTestId('require-test').click();
    await page.getByTestId('switch-ok').click();
    try {
      await page.locator('[data-testid=require-test][aria-checked=true]').waitFor();
    } catch (err) {
      // Seen once in CI (2026-11-26) and not reproduced since: keep what the page showed, and
      // whether the switch's change reached the server, so the next occurrence says which side stalled.
      await shot('FAILED-09-developers').catch(() => {});
      const toasts = await page.locator('.ant-message').innerText().catch(() => '(no message)');
      // Whether the confirmation is still open, and waiting on its request (a loading OK button).
      const ok = page.getByTestId('switch-ok');
      const dialog = (await ok.isVisible()) ? `open, OK ${(await ok.getAttribute('class'))?.includes('loading') ? 'loading' : 'idle'}` : 'closed';
      // Bounded: if the database itself is stuck, that is the answer.
      const stored = await Promise.race([
        h.rt.store.db.selectFrom('apps').select(['require_signature_test']).where('id', '=', h.appId).executeTakeFirst().then((r) => String(r?.require_signature_test)),
        new Promise<string>((resolve) => setTimeout(() => resolve('(the database did not answer within 5 s)'), 5_000).unref()),
      ]);
      throw new Error(`the switch did not turn on; page messages: ${toasts}; confirmation: ${dialog}; stored require_signature_test: ${stored}`, { cause: err });
    }
    await shot('09-developers');
    const unsigned = await h.request('POST', h.appPath('/users'), { body: { id: 'unsigned_refused' } });
    expect(unsigned.status).toBe(400);
    expect(unsigned.json.error.code).toBe('signature_missing');
    const audit = await h.rt.store.db.selectFrom('audit_log').select(['action', 'detail']).where('action', '=', 'signature.update').execute();
    expect(audit.map((a) => JSON.parse(a.detail).require_signature_test)).toContain(true);
    // Room for Playwright's own 30 s waits to run out and the catch above to say which side stalled:
    // at 60 s a second CI stall (2026-11-26 13:40, under the full suite's load) ended as a bare test timeout.
  }, 120_000);
});
