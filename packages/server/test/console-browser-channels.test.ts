import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Harness } from './helpers/harness.ts';
import { ChromiumSession, chromiumInstalled, logIn, startConsole } from './helpers/browser.ts';
import { FakeAlipay } from './fakes/alipay.ts';

/**
 * The Developers page's live payout channels in a real browser (helpers/browser.ts, as in
 * console-browser.test.ts): Alipay keys uploaded as files, pointed at the local fake gateway,
 * only the fingerprint shown, and the connectivity check passing. SQLite only (the API is covered
 * on both engines by console-channels.test.ts).
 */
describe.skipIf(!chromiumInstalled())('console payout channels in Chromium', () => {
  let h: Harness;
  let fake: FakeAlipay;
  let session: ChromiumSession;
  let page: Page;
  let base: string;

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    ({ h, base } = await startConsole({ config: { sandboxDelayMs: 0 } }));
    session = await ChromiumSession.launch();
    page = session.page;
  }, 120_000);

  afterAll(async () => {
    await session?.close();
    await h?.close();
    await fake?.close();
  });

  it('uploads Alipay credentials from files, shows only the fingerprint, and passes the check against the gateway', async () => {
    await page.goto(base + '/dashboard/');
    await logIn(page);
    await page.getByRole('tab', { name: '全部提现' }).waitFor();

    await page.goto(base + '/dashboard/developers');
    const card = page.getByTestId('live-channels');
    await card.waitFor();
    await card.getByTestId('cred-mode').getByText('生产模式').click();
    await card.getByTestId('cred-app-id').fill(fake.appId);
    await card.getByTestId('pem-private-key').locator('input[type=file]').setInputFiles({ name: 'app_private.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(fake.appPrivateKey) });
    await card.getByTestId('pem-private-key-loaded').waitFor();
    await card.getByTestId('pem-alipay-public-key').locator('input[type=file]').setInputFiles({ name: 'alipay_public.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(fake.alipayPublicKey) });
    await card.getByTestId('pem-alipay-public-key-loaded').waitFor();
    await card.getByTestId('cred-endpoint').fill(fake.endpoint);
    await card.getByTestId('cred-save').click();

    const fingerprint = card.getByTestId('cred-fingerprint-alipay-live');
    await fingerprint.filter({ hasText: /sha256:[0-9a-f]{16}/ }).waitFor();
    const stored = await h.rt.store.db.selectFrom('channel_credentials').select(['fingerprint', 'livemode']).where('app', '=', h.appId).executeTakeFirstOrThrow();
    expect(stored.livemode).toBe(1);
    expect(await fingerprint.textContent()).toBe(stored.fingerprint);

    await card.getByTestId('cred-check-alipay-live').click();
    const result = card.getByTestId('cred-check-result');
    await result.filter({ hasText: '检查通过' }).waitFor();
    expect(await result.textContent()).toContain('verified');
    await session.shot('10-developers-channels');

    // The page never shows the key back.
    const html = await page.content();
    for (const line of fake.appPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'))) expect(html.includes(line)).toBe(false);
    const audit = await h.rt.store.db.selectFrom('audit_log').select('action').where('app', '=', h.appId).orderBy('created').execute();
    expect(audit.map((a) => a.action)).toEqual(['channel_credentials.set', 'channel_credentials.check']);
  });

  it('asks for WeChat Pay\'s APIv3 key as a password field, with its label and hint', async () => {
    await page.goto(base + '/dashboard/developers');
    const card = page.getByTestId('live-channels');
    await card.waitFor();
    await card.getByTestId('cred-channel').click();
    await page.locator('.ant-select-item-option', { hasText: '微信支付' }).click();
    const key = card.getByTestId('cred-apiv3-key');
    await key.waitFor();
    expect(await key.getAttribute('type')).toBe('password');
    expect(await key.getAttribute('maxlength')).toBe('32');
    await card.getByText('APIv3 密钥').waitFor();
    await card.getByText('用于解密微信支付的结果通知', { exact: false }).waitFor();
  });
});
