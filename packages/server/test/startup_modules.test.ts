import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { startServer, type ServerProcess } from './helpers/process.ts';

/**
 * Start-up stays light (#11): `tixian serve` answers its first request without loading what only
 * some requests or a live payout need. Checked through scripts/startup-probe.mjs, which lists every
 * module loaded when /healthz first answers 200 — a property, not a timing (see README "Build and
 * packages" for the measured times).
 */
const PROBE = fileURLToPath(new URL('../../../scripts/startup-probe.mjs', import.meta.url));
/** Loaded only at the first live payout (channels/live.ts) or the first /openapi.json or /docs. */
const DEFERRED = ['alipay-sdk', 'wechatpay-axios-plugin', 'axios', 'urllib', 'undici', '@fastify/swagger', '@fastify/swagger-ui', 'yaml'];

const dir = mkdtempSync(path.join(tmpdir(), 'tixian-startup-modules-'));
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

it('serve --no-workers answers /healthz before loading the payout SDKs and the OpenAPI tooling, which load when asked for', async () => {
  const report = path.join(dir, 'report.json');
  server = await startServer(['--no-workers', '--data-dir', path.join(dir, 'data')], {
    NODE_OPTIONS: `--import=${PROBE}`, TIXIAN_STARTUP_MODULES: '1', TIXIAN_STARTUP_REPORT: report,
  });
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  // What was deferred still answers, through the real server: the document, the page, its assets.
  const spec = await fetch(`${server.url}/openapi.json`);
  expect(spec.status).toBe(200);
  expect(spec.headers.get('content-type')).toMatch(/^application\/json/);
  expect(((await spec.json()) as { paths: Record<string, unknown> }).paths).toHaveProperty(['/v1/apps/{app}/withdrawals']);
  expect(await (await fetch(`${server.url}/docs`)).text()).toContain('swagger-ui');
  const css = await fetch(`${server.url}/docs/static/swagger-ui.css`);
  expect({ status: css.status, type: css.headers.get('content-type') }).toMatchObject({ status: 200, type: expect.stringMatching(/^text\/css/) });
  await server.kill();
  const { modules, cpu_ms } = JSON.parse(readFileSync(report, 'utf8')) as { modules: string[]; cpu_ms: number };
  expect(cpu_ms).toBeGreaterThan(0);
  // The probe sees what was loaded: our own modules, and a package that must load (fastify).
  expect(modules.some((m) => m.includes('/dist/http/app.js'))).toBe(true);
  expect(modules.some((m) => /node_modules\/fastify\//.test(m))).toBe(true);
  const packageOf = (m: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1];
  const loaded = new Set(modules.map(packageOf));
  expect(DEFERRED.filter((p) => loaded.has(p))).toEqual([]);
});
