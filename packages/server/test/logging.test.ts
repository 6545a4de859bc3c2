import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { generateKeyPairSync, sign as rsaSign } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { defaults, type Config } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/http/app.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { updateSignatureSettings } from '../src/services/app_settings.ts';
import { DefaultDrivers } from '../src/channels/sandbox.ts';
import type { DriverRegistry } from '../src/channels/driver.ts';
import { createLogger, REDACTED } from '../src/logging.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';

/** Every line the logger writes, parsed; `request` resolves when a request's access line is written. */
class LogCapture extends EventEmitter {
  readonly lines: string[] = [];
  write(chunk: string): boolean {
    for (const line of chunk.split('\n')) {
      if (!line) continue;
      this.lines.push(line);
      this.emit('line', JSON.parse(line) as Record<string, unknown>);
    }
    return true;
  }
  parsed(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  /** The access line of a request id: found already, or awaited (onResponse may log after inject resolves). */
  request(reqId: string): Promise<Record<string, unknown>> {
    const isIt = (l: Record<string, unknown>) => l.msg === 'request' && l.reqId === reqId;
    const found = this.parsed().find(isIt);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const on = (l: Record<string, unknown>) => {
        if (!isIt(l)) return;
        this.off('line', on);
        resolve(l);
      };
      this.on('line', on);
    });
  }
  text(): string {
    return this.lines.join('\n');
  }
}

const CARD = '6225210207078888';
const PAYEE = '张三丰';
const merchantKey = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** Drivers as usual, except that asking for one throws while `broken` is set (a failing dependency). */
class BreakableDrivers implements DriverRegistry {
  broken: string | null = null;
  constructor(private readonly inner: DriverRegistry) {}
  driverFor(...args: Parameters<DriverRegistry['driverFor']>) {
    if (this.broken) throw new Error(this.broken);
    return this.inner.driverFor(...args);
  }
}

describeEngines('logs: one line per request, request ids, nothing secret', (engine) => {
  const capture = new LogCapture();
  let rt: Runtime;
  let app: FastifyInstance;
  let merchant: CreatedApp;
  let drivers: BreakableDrivers;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const storage = await freshStorage(engine);
    drop = storage.drop;
    const config: Config = { ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, rateLimit: 0 };
    rt = await openRuntime(config, { log: createLogger('info', capture) });
    drivers = new BreakableDrivers(new DefaultDrivers(rt.store, rt.clock, 0));
    rt.drivers = drivers;
    app = await buildApp(rt);
    merchant = await createApp(rt, { name: 'logged' });
  });
  afterAll(async () => {
    await app?.close();
    await rt?.close();
    await drop?.();
  });

  const path = (rest: string) => `/v1/apps/${merchant.id}${rest}`;
  async function call(method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await app.inject({
      method, url,
      headers: { authorization: `Bearer ${merchant.secret_key_test}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body ? { payload: JSON.stringify(body) } : {}),
    });
    const id = res.headers['x-request-id'];
    expect(id).toEqual(expect.any(String));
    return { res, id: id as string, line: await capture.request(id as string) };
  }

  function expectNoSecrets(...secrets: string[]) {
    const text = capture.text();
    for (const s of [merchant.secret_key_test, merchant.secret_key_live, CARD, PAYEE, ...secrets]) expect(text).not.toContain(s);
  }

  it('logs a successful withdrawal create as one line, without the card number or the payee name', async () => {
    await call('POST', path('/users'), { id: 'u1' });
    await call('POST', path('/balance_settlements'), { user: 'u1', amount: 10_000, order_no: 'fund1' });
    const { res, id, line } = await call('POST', path('/withdrawals'), {
      user: 'u1', amount: 1000, channel: 'unionpay', order_no: '20260101000001', description: 'logged',
      extra: { account: CARD, name: PAYEE, open_bank_code: '0308', open_bank: '招商银行' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(CARD); // the API answers it; only the logs must not hold it
    expect(line).toMatchObject({
      level: 30, reqId: id, method: 'POST', route: '/v1/apps/:app/withdrawals', status: 200,
      duration_ms: expect.any(Number), app: merchant.id, livemode: false,
    });
    expect(capture.lines.filter((l) => l.includes(id))).toHaveLength(1);
    expectNoSecrets();
  });

  it('logs a wrong key without the key', async () => {
    const wrong = 'sk_test_' + 'Q'.repeat(24);
    const { res, line } = await call('GET', path('/users'), undefined, { authorization: `Bearer ${wrong}` });
    expect(res.statusCode).toBe(401);
    expect(line).toMatchObject({ status: 401, route: '/v1/apps/:app/users', error_code: 'invalid_api_key' });
    expectNoSecrets(wrong, 'Q'.repeat(10));
  });

  it('logs a bad request signature without the signature', async () => {
    await updateSignatureSettings(rt, merchant.id, { rsa_public_key: merchantKey.publicKey.export({ type: 'spki', format: 'pem' }).toString() });
    const body = JSON.stringify({ id: 'u_signed' });
    // Signed over other bytes: a well-formed signature that does not verify.
    const signature = rsaSign('sha256', Buffer.from('other bytes'), merchantKey.privateKey).toString('base64');
    const { res, line } = await call('POST', path('/users'), JSON.parse(body), {
      'pingplusplus-signature': signature,
      'pingplusplus-request-timestamp': String(Math.floor(Date.now() / 1000)),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('signature_invalid');
    expect(line).toMatchObject({ status: 400, error_code: 'signature_invalid' });
    expectNoSecrets(signature, signature.slice(0, 40));
  });

  it('answers an unexpected failure with a 500 naming the request id that the log line and header carry', async () => {
    await call('POST', path('/users'), { id: 'u2' });
    await call('POST', path('/balance_settlements'), { user: 'u2', amount: 5000, order_no: 'fund2' });
    const created = await call('POST', path('/withdrawals'), {
      user: 'u2', amount: 100, channel: 'unionpay', order_no: '20260101000002', extra: { account: CARD, name: PAYEE, open_bank_code: '0308' },
    });
    const wid = (created.res.json() as { id: string }).id;
    // The failing dependency's message holds a secret key: it must reach neither the client nor the log.
    drivers.broken = `driver registry lost its config (key ${merchant.secret_key_live})`;
    try {
      const { res, id, line } = await call('PUT', path(`/withdrawals/${wid}`), { status: 'pending' }, { 'accept-language': 'en' });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({ error: { type: 'api_error', code: 'internal_error', message: `Internal server error (request ${id}).` } });
      expect(line).toMatchObject({ reqId: id, status: 500, error_code: 'internal_error' });
      const errorLine = capture.parsed().find((l) => l.reqId === id && l.level === 50);
      expect(errorLine).toMatchObject({ msg: 'unhandled error', err: { message: expect.stringContaining('driver registry lost its config') } });
      expect(JSON.stringify(errorLine)).toContain('sk_live_***');
      expect(res.body).not.toContain('driver registry');
    } finally {
      drivers.broken = null;
    }
    expectNoSecrets();
  });

  it('logs successful health probes at debug only, not as access lines', async () => {
    const probe = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'probe-1' } });
    expect(probe.statusCode).toBe(200);
    // A later request's line is written after the probe's would have been.
    await call('GET', path('/users'));
    expect(capture.parsed().filter((l) => l.reqId === 'probe-1')).toEqual([]);
  });

  it('keeps a sane incoming X-Request-Id and replaces anything else', async () => {
    const mine = await call('GET', path('/users'), undefined, { 'x-request-id': 'trace-42.abc:DEF_1' });
    expect(mine.id).toBe('trace-42.abc:DEF_1');
    expect(mine.line).toMatchObject({ reqId: 'trace-42.abc:DEF_1', status: 200 });
    for (const bad of ['a'.repeat(129), 'has space', 'new\\nline', '"quoted"', '']) {
      const { id } = await call('GET', path('/users'), undefined, { 'x-request-id': bad });
      expect(id).toMatch(/^iar_[0-9A-Za-z]{24}$/);
    }
  });
});

describe('the logger redacts wherever an object is logged', () => {
  it('censors credentials and payee data at any depth up to four levels, and secret keys inside text', () => {
    const capture = new LogCapture();
    const log = createLogger('info', capture);
    const secrets = {
      authorization: 'Basic c2tfdGVzdF94eHh4Og==',
      signature: 'U2lnbmF0dXJlQnl0ZXM=',
      webhookSignature: 'V2ViaG9va1NpZ25hdHVyZQ==',
      card: '6214850288881234',
      name: '李四',
      openid: 'o_wx_secret_openid',
      key: 'sk_live_' + 'Z'.repeat(24),
    };
    log.info({
      req: { headers: { authorization: secrets.authorization, 'pingplusplus-signature': secrets.signature } },
      delivery: { headers: { 'x-pingplusplus-signature': secrets.webhookSignature } },
      withdrawal: { extra: { account: secrets.card, name: secrets.name } },
      event: { data: { object: { extra: { open_id: secrets.openid, openid: secrets.openid } } } },
      secret_key_live: secrets.key,
    }, `created app with ${secrets.key}`);
    log.child({ reqId: 'r1' }).error({ err: Object.assign(new Error(`boom ${secrets.key}`), { card_number: secrets.card }) }, 'failed');
    const rawPacket = Buffer.from(`GET / HTTP/1.1\r\nAuthorization: ${secrets.authorization}\r\n`);
    log.trace({ err: Object.assign(new Error('Parse Error'), { rawPacket }) }, 'client error');
    log.level = 'trace';
    log.trace({ err: Object.assign(new Error('Parse Error'), { rawPacket }) }, 'client error');
    // Serialised as a byte array, the head would be readable to anyone who decodes it.
    expect(capture.parsed().find((l) => l.msg === 'client error')).toMatchObject({ err: { rawPacket: REDACTED } });
    const text = capture.text();
    for (const s of Object.values(secrets)) expect(text).not.toContain(s);
    expect(text).toContain(REDACTED);
    expect(text).toContain('sk_live_***');
  });
});

describe('standard output takes log lines in batches, and never holds one back for long', () => {
  // A process of its own (the built logger): standard output is shared by a process's loggers.
  const LOGGING = pathToFileURL(path.resolve(import.meta.dirname, '../dist/logging.js')).href;
  let dir: string;
  let child: ChildProcessWithoutNullStreams | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
    rmSync(dir, { recursive: true, force: true });
  });
  /** A process that logs what it reads on stdin: `info`, `warn` (an info line, then a warning) or `exit`. */
  function logger(flushMs: number) {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-stdout-'));
    const script = path.join(dir, 'log.mjs');
    writeFileSync(script, `
      const { createLogger } = await import(${JSON.stringify(LOGGING)});
      const log = createLogger('info', undefined, ${flushMs});
      process.stdin.setEncoding('utf8').on('data', (cmd) => {
        for (const c of cmd.split('\\n').filter(Boolean)) {
          if (c === 'info') log.info('quiet');
          if (c === 'warn') { log.info('before'); log.warn('alarm'); }
          if (c === 'exit') { log.info('last words'); process.exit(0); }
        }
      });
      process.stdout.write('{"msg":"ready"}\\n');
    `);
    const p = (child = spawn(process.execPath, [script]));
    const lines: string[] = [];
    let rest = '';
    p.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const part of parts) lines.push((JSON.parse(part) as { msg: string }).msg);
    });
    return { p, lines, send: (cmd: string) => p.stdin.write(cmd + '\n') };
  }

  it('an info line on a quiet server goes out within the flush period, with nothing after it', async () => {
    const { lines, send } = logger(100);
    await vi.waitFor(() => expect(lines).toContain('ready'), 10_000);
    send('info');
    await vi.waitFor(() => expect(lines).toContain('quiet'), 5_000);
  });

  it('writes whole lines, many per write(2) and at most PIPE_BUF bytes each, so processes sharing a pipe never interleave within a line', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-stdout-'));
    const script = path.join(dir, 'burst.mjs');
    // Each write(2) to standard output recorded as sonic-boom makes it (fs.writeSync), reported on stderr at exit.
    writeFileSync(script, `
      import fs from 'node:fs';
      const writeSync = fs.writeSync;
      const sizes = [];
      let whole = true;
      fs.writeSync = function (fd, data, ...rest) {
        // A flush with nothing waiting writes nothing (a zero-length write, as at exit after a burst).
        if (fd === 1 && String(data).length > 0) {
          const text = String(data);
          sizes.push(Buffer.byteLength(text));
          whole &&= text.endsWith('\\n');
        }
        return writeSync.call(this, fd, data, ...rest);
      };
      process.on('exit', () => writeSync(2, JSON.stringify({ sizes, whole })));
      const { createLogger } = await import(${JSON.stringify(LOGGING)});
      const log = createLogger('info');
      for (let i = 0; i < 2000; i++) log.info({ i, pad: 'x'.repeat(200 + (i % 97)) }, 'burst');
    `);
    const p = (child = spawn(process.execPath, [script]));
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    p.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const [code] = (await once(p, 'close')) as [number];
    expect(code).toBe(0);
    expect(out.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { i: number }).i)).toEqual([...Array(2000).keys()]);
    const { sizes, whole } = JSON.parse(err) as { sizes: number[]; whole: boolean };
    expect(whole).toBe(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4096);
    // ~300-byte lines, ≥ 3 KiB a write: about a tenth as many writes as lines.
    expect(sizes.length).toBeLessThan(2000 / 5);
  });

  it('writes a log file but never fsyncs it: not at the flush period, not at a warning, not at exit', async () => {
    // Standard output redirected to a file: an fsync there is the event loop waiting for the disk.
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-stdout-'));
    const script = path.join(dir, 'file.mjs');
    const logFile = path.join(dir, 'out.log');
    writeFileSync(script, `
      import fs from 'node:fs';
      const fsyncSync = fs.fsyncSync;
      let syncs = 0;
      fs.fsyncSync = function (fd) {
        if (fd === 1) syncs++;
        return fsyncSync.call(this, fd);
      };
      process.on('exit', () => fs.writeSync(2, JSON.stringify({ syncs })));
      const { createLogger } = await import(${JSON.stringify(LOGGING)});
      const log = createLogger('info', undefined, 20);
      process.stdin.setEncoding('utf8').on('data', (cmd) => {
        for (const c of cmd.split('\\n').filter(Boolean)) {
          if (c === 'info') log.info('quiet');
          if (c === 'warn') log.warn('alarm');
          if (c === 'exit') { log.info('last words'); process.exit(0); }
        }
      });
    `);
    const out = openSync(logFile, 'w');
    const p = spawn(process.execPath, [script], { stdio: ['pipe', out, 'pipe'] });
    closeSync(out);
    const stdin = p.stdin!;
    try {
      let err = '';
      p.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
      const logged = () => readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
      stdin.write('info\n');
      await vi.waitFor(() => expect(logged()).toEqual(['quiet']), 10_000); // by the 20 ms flush
      stdin.write('warn\n');
      await vi.waitFor(() => expect(logged()).toEqual(['quiet', 'alarm']), 5_000);
      const exited = once(p, 'close');
      stdin.write('exit\n');
      expect((await exited)[0]).toBe(0);
      expect(logged()).toEqual(['quiet', 'alarm', 'last words']);
      expect(JSON.parse(err)).toEqual({ syncs: 0 });
    } finally {
      p.kill('SIGKILL');
    }
  });

  it('a warning goes out at once, with the lines before it, and the rest at exit', async () => {
    // A flush period longer than the test: only the warning and the exit can write.
    const { p, lines, send } = logger(600_000);
    await vi.waitFor(() => expect(lines).toContain('ready'), 10_000);
    send('warn');
    await vi.waitFor(() => expect(lines).toEqual(['ready', 'before', 'alarm']), 5_000);
    const exited = once(p, 'close'); // the process gone and its output read to the end
    send('exit');
    expect((await exited)[0]).toBe(0);
    expect(lines).toEqual(['ready', 'before', 'alarm', 'last words']);
  });
});
