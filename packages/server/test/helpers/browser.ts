import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createOperator } from '../../src/admin/operators.ts';
import { Harness, type HarnessOptions } from './harness.ts';

/**
 * The console in a real browser: Debian's Chromium driven by playwright-core (no browser
 * download; .ci/run installs the package when it is missing). Screenshots go to
 * test-artifacts/console/.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/console/', import.meta.url));

/** The operator the console tests log in as. */
export const OPERATOR = { email: 'ops@example.com', password: 'console test password' };

/** Whether Chromium is installed; in CI it must be, so a browser suite can never pass by not running. */
export function chromiumInstalled(): boolean {
  const installed = existsSync(CHROMIUM);
  if (!installed && process.env.CI) throw new Error(`CI must have ${CHROMIUM} (.ci/run installs Debian's chromium)`);
  return installed;
}

/** A server on SQLite listening on 127.0.0.1 (its console at `base`), with OPERATOR in the default account. */
export async function startConsole(options: HarnessOptions): Promise<{ h: Harness; base: string }> {
  const h = await Harness.start('sqlite', options);
  try {
    await createOperator(h.rt, { email: OPERATOR.email, password: OPERATOR.password, account: 'default' });
    return { h, base: await h.app.listen({ host: '127.0.0.1', port: 0 }) };
  } catch (err) {
    await h.close();
    throw err;
  }
}

/** Fills in the console's login form (on the page already) as OPERATOR and submits it. */
export async function logIn(page: Page): Promise<void> {
  await page.getByTestId('login-email').fill(OPERATOR.email);
  await page.getByTestId('login-password').fill(OPERATOR.password);
  await page.getByTestId('login-submit').click();
}

/** Headless Chromium with a fresh profile each run (launchPersistentContext with its own user-data-dir) and one page. */
export class ChromiumSession {
  private constructor(
    private readonly context: BrowserContext,
    readonly page: Page,
    private readonly profile: string,
  ) {}

  static async launch(): Promise<ChromiumSession> {
    mkdirSync(ARTIFACTS, { recursive: true });
    const profile = mkdtempSync(path.join(tmpdir(), 'tixian-chromium-'));
    try {
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
        viewport: { width: 1440, height: 900 },
        locale: 'zh-CN',
      });
      return new ChromiumSession(context, context.pages()[0] ?? (await context.newPage()), profile);
    } catch (err) {
      rmSync(profile, { recursive: true, force: true });
      throw err;
    }
  }

  /** Saves a full-page screenshot as test-artifacts/console/<name>.png. */
  shot(name: string): Promise<Buffer> {
    return this.page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  }

  async close(): Promise<void> {
    const browser = this.context.browser();
    await this.context.close();
    await browser?.close().catch(() => {});
    rmSync(this.profile, { recursive: true, force: true });
  }
}
