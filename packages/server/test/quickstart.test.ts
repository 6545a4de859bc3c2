import { afterAll, beforeAll, expect, it, describe } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startServer, TIXIAN_BIN, type ServerProcess } from './helpers/process.ts';

/**
 * The README's Quickstart, run as a reader would: its commands against a real server, its
 * receiver.js as written (only the port changed), its openssl-signed request through bash. If the
 * README drifts from what tixian does, this fails.
 */
const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
const quickstart = README.slice(README.indexOf('## Quickstart'), README.indexOf('## Running it'));
const run = promisify(execFile);

/** The fenced code blocks of the Quickstart with the given language. */
function blocks(lang: string): string[] {
  return [...quickstart.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** The JSON body of the Quickstart's `curl … -d '…' …` whose URL ends with `suffix` (bodies may span lines). */
function curlBody(shell: string, suffix: string): unknown {
  for (const m of shell.matchAll(/-d '([^']*)'[\s\\]*(http\S+)/g)) {
    if (m[2]!.endsWith(suffix)) return JSON.parse(m[1]!.replace(/\n\s*/g, ' '));
  }
  throw new Error(`no curl to …${suffix} in the Quickstart`);
}

describe('README Quickstart', () => {
  let dir: string;
  let server: ServerProcess;
  let receiver: ChildProcess | undefined;
  let receiverOut = '';
  const cli = async (...args: string[]) => (await run(process.execPath, [TIXIAN_BIN, ...args, '--data-dir', path.join(dir, 'data')], { cwd: dir })).stdout;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-quickstart-'));
    server = await startServer(['--data-dir', path.join(dir, 'data'), '--sandbox-delay-ms', '0'], {}, 30_000);
  });
  afterAll(async () => {
    receiver?.kill('SIGKILL');
    await server?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs from a withdrawal request to a verified webhook, and a signed request from a shell', async () => {
    const shell = blocks('sh')[0];
    const signedShell = blocks('sh').find((b) => b.includes('openssl dgst'));
    const [receiverJs] = blocks('js');
    expect(shell && signedShell && receiverJs).toBeTruthy();

    // 1. create an app: the keys are printed this once.
    const app = JSON.parse(await cli('apps', 'create', '--name', 'My shop', '--json')) as { id: string; secret_key_test: string };
    const api = async (method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(server.url + urlPath.replace('app_…', app.id), {
        method,
        headers: { authorization: `Bearer ${app.secret_key_test}`, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };

    // 2. a user with withdrawable money.
    expect((await api('POST', '/v1/apps/app_…/users', curlBody(shell!, '/users'))).status).toBe(200);
    expect((await api('POST', '/v1/apps/app_…/balance_settlements', curlBody(shell!, '/balance_settlements'))).status).toBe(200);

    // 3. the receiver exactly as the README gives it (on a free port), with the key that signs for the app.
    writeFileSync(path.join(dir, 'tixian_public.pem'), await cli('keys', 'platform-public-key', '--app', app.id));
    expect(receiverJs).toContain('listen(3000');
    writeFileSync(path.join(dir, 'receiver.js'), receiverJs!.replace('listen(3000', 'listen(0').concat("\nsetTimeout(() => {}, 1 << 30);\n"));
    writeFileSync(path.join(dir, 'port.js'), "const l = require('node:http').Server.prototype.listen; require('node:http').Server.prototype.listen = function (...a) { this.once('listening', () => console.log('port ' + this.address().port)); return l.apply(this, a); };\n");
    receiver = spawn(process.execPath, ['--require', './port.js', 'receiver.js'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    receiver.stdout!.on('data', (c: Buffer) => (receiverOut += c.toString()));
    receiver.stderr!.on('data', (c: Buffer) => (receiverOut += c.toString()));
    const port = await waitFor(() => /port (\d+)/.exec(receiverOut)?.[1], 10_000);
    await cli('apps', 'update', app.id, '--webhook-url', `http://127.0.0.1:${port}/hooks`);

    // 4. and 5. the withdrawal, then the merchant's confirm; the receiver verifies the webhook.
    const created = await api('POST', '/v1/apps/app_…/withdrawals', curlBody(shell!, '/withdrawals'));
    expect(created.status).toBe(200);
    expect(created.json.status).toBe('created');
    const confirmed = await api('PUT', `/v1/apps/app_…/withdrawals/${String(created.json.id)}`, { status: 'pending' });
    expect(confirmed.json.status).toBe('pending');
    await waitFor(() => receiverOut.includes(`verified balance.withdrawal.succeeded ${String(created.json.id)} succeeded`) || undefined, 30_000);
    expect(receiverOut).not.toContain('bad signature');

    // When signatures are required: the README's openssl lines sign a request that is accepted.
    await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'merchant_private.pem'], { cwd: dir });
    await run('openssl', ['pkey', '-in', 'merchant_private.pem', '-pubout', '-out', 'merchant_public.pem'], { cwd: dir });
    await cli('apps', 'update', app.id, '--rsa-public-key-file', path.join(dir, 'merchant_public.pem'), '--require-signature', 'test');
    const script = signedShell!
      .replaceAll('app_…', app.id)
      .replaceAll('sk_test_…', app.secret_key_test)
      .replace('http://127.0.0.1:8080', server.url);
    // The server may still hold the app's settings from before the update for a moment: an unsigned
    // request is refused once it has them, and the signed one is accepted either way.
    await waitFor(async () => ((await api('POST', '/v1/apps/app_…/users', { id: `probe_${Date.now()}` })).status === 400 ? true : undefined), 30_000);
    const { stdout } = await run('bash', ['-c', script], { cwd: dir });
    const signed = JSON.parse(stdout) as { object?: string; status?: string; error?: unknown };
    expect(signed.error).toBeUndefined();
    expect(signed.object).toBe('withdrawal');
  });
});

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('quickstart: condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
