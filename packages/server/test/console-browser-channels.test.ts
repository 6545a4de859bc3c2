import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Harness } from './helpers/harness.ts';
import { createOperator } from '../src/admin/operators.ts';
import { FakeAlipay } from './fakes/alipay.ts';

/**
 * The Developers page's live payout channels in a real browser (Debian's Chromium, as in
 * console-browser.test.ts): Alipay keys uploaded as files, pointed at the local fake gateway,
 * only the fingerprint shown, and the connectivity check passing. SQLite only (the API is covered
 * on both engines by console-channels.test.ts).
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/console/', import.meta.url));
const PASSWORD = 'console test password';

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`CI must have ${CHROMIUM} (.ci/run installs Debian's chromium)`);

describe.skipIf(!hasChromium)('console payout channels in Chromium', () => {
  let h: Harness;
  let fake: FakeAlipay;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let profile: string;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    fake = await new FakeAlipay().start();
    h = await Harness.start('sqlite', { config: { sandboxDelayMs: 0 } });
    await createOperator(h.rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    profile = mkdtempSync(path.join(tmpdir(), 'tixian-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      viewport: { width: 1440, height: 900 },
      locale: 'zh-CN',
    });
    browser = context.browser()!;
    page = context.pages()[0] ?? (await context.newPage());
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close().catch(() => {});
    await h?.close();
    await fake?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('uploads Alipay credentials from files, shows only the fingerprint, and passes the check against the gateway', async () => {
    await page.goto(base + '/dashboard/');
    await page.getByTestId('login-email').fill('ops@example.com');
    await page.getByTestId('login-password').fill(PASSWORD);
    await page.getByTestId('login-submit').click();
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
    await page.screenshot({ path: path.join(ARTIFACTS, '10-developers-channels.png'), fullPage: true });

    // The page never shows the key back.
    const html = await page.content();
    for (const line of fake.appPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'))) expect(html.includes(line)).toBe(false);
    const audit = await h.rt.store.db.selectFrom('audit_log').select('action').where('app', '=', h.appId).orderBy('created').execute();
    expect(audit.map((a) => a.action)).toEqual(['channel_credentials.set', 'channel_credentials.check']);
  });
});
