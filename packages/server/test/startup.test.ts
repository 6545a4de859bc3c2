import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults, loadConfig, settings, ConfigError } from '../src/config.ts';
import { describeEngines, freshStorage, type Engine } from './helpers/harness.ts';

/**
 * Start-up as an operator meets it: `node packages/server/bin/tixian.mjs …` in a child process.
 * Every mistake in the configuration or the environment is one `tixian: …` line naming the
 * setting to fix, exit code 2, no stack trace; nothing is written on the way out.
 */

const BIN = fileURLToPath(new URL('../bin/tixian.mjs', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const COMMAND_TIMEOUT_MS = 30_000;

type Storage = Awaited<ReturnType<typeof freshStorage>>;

/** The child's environment: ours without TIXIAN_* settings or test-runner loader options, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIXIAN_') && k !== 'NODE_OPTIONS') out[k] = v;
  return { ...out, ...env };
}

/** Runs `tixian args…` to its end (killed after COMMAND_TIMEOUT_MS) and collects its output. */
function run(args: string[], options: { env?: Record<string, string>; cwd?: string; until?: RegExp } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? tmpdir(), env: childEnv(options.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tixian ${args.join(' ')} did not exit within ${COMMAND_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, COMMAND_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      // A server that came up when it should not have: stop it, the test reads what it printed.
      if (options.until?.test(stdout)) child.kill('SIGTERM');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A refused start: exit 2 and exactly one `tixian: …` line on stderr matching `re`. */
async function expectRefused(args: string[], re: RegExp, options: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  const res = await run(args, { ...options, until: /tixian listening on/ });
  const lines = res.stderr.trim().split('\n');
  expect({ code: res.code, lines }, res.stdout + res.stderr).toEqual({ code: 2, lines: [expect.stringMatching(/^tixian: /)] });
  expect(lines[0]).toMatch(re);
  expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
  return lines[0]!;
}

describe('tixian start-up', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-startup-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { version: string };
    const res = await run(['--version']);
    expect({ code: res.code, stdout: res.stdout.trim() }).toEqual({ code: 0, stdout: pkg.version });
  });

  const invalid: [string, string[], Record<string, string>, RegExp][] = [
    ['a port that is not a number', ['--port', 'abc'], {}, /--port must be an integer from 0 to 65535, got "abc"/],
    ['a port out of range from the environment', [], { TIXIAN_PORT: '70000' }, /TIXIAN_PORT must be an integer from 0 to 65535, got "70000"/],
    ['an unknown log level', ['--log-level', 'loud'], {}, /--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/],
    ['an unknown log level from the environment', [], { TIXIAN_LOG_LEVEL: 'verbose' }, /TIXIAN_LOG_LEVEL must be one of .*got "verbose"/],
    ['a database URL without a scheme', ['--database-url', 'localhost:5432/db'], {}, /--database-url must be postgres:\/\/user:password@host:5432\/database .*got "localhost:5432\/db"/],
    ['a switch that is neither on nor off', [], { TIXIAN_WORKERS: 'maybe' }, /TIXIAN_WORKERS must be one of 1, true, yes, on, 0, false, no, off, got "maybe"/],
    ['a pool of no connections', ['--pool-size', '0'], {}, /--pool-size must be an integer from 1 to 200 \(connections\), got "0"/],
    ['a fractional delay', ['--sandbox-delay-ms', '1.5'], {}, /--sandbox-delay-ms must be an integer from 0 to 3600000 \(ms\), got "1.5"/],
    ['an unknown SQLite durability', [], { TIXIAN_SQLITE_SYNCHRONOUS: 'OFF' }, /TIXIAN_SQLITE_SYNCHRONOUS must be one of FULL, NORMAL, got "OFF"/],
    // A worker-role process runs nothing but the workers: with them off it would run nothing, and look ready.
    ['a worker role with the workers off', ['--role', 'worker'], { TIXIAN_WORKERS: '0' }, /--role worker .*--no-workers .*would run nothing/],
    ['a worker role with the workers off, from the environment', [], { TIXIAN_ROLE: 'worker', TIXIAN_WORKERS: 'off' }, /--role worker .*--no-workers .*would run nothing/],
  ];
  it.each(invalid)('refuses %s, naming the setting', async (_what, args, env, re) => {
    const data = path.join(dir, `invalid-${Math.random().toString(36).slice(2)}`);
    const port = args.includes('--port') || env.TIXIAN_PORT ? [] : ['--port', '0'];
    await expectRefused(['serve', '--data-dir', data, ...port, ...args], re, { env });
    expect(existsSync(data), 'nothing is written for a refused configuration').toBe(false);
  });

  it('refuses a malformed TIXIAN_MASTER_KEY without echoing it', async () => {
    const secret = 'deadbeef'.repeat(7);
    const line = await expectRefused(['serve', '--port', '0', '--data-dir', path.join(dir, 'badkey')], /TIXIAN_MASTER_KEY must be 64 hex characters \(32 bytes\), got 56 characters/, { env: { TIXIAN_MASTER_KEY: secret } });
    expect(line).not.toContain(secret);
  });

  it('refuses a data directory that is a file', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    await expectRefused(['serve', '--port', '0', '--data-dir', file], /cannot use the data directory .*a-file \(--data-dir \/ TIXIAN_DATA_DIR\): a file is in the way/);
    expect(readFileSync(file, 'utf8')).toBe('not a directory');
  });

  it('refuses a data directory whose database is not a database', async () => {
    const data = path.join(dir, 'not-a-db');
    mkdirSync(data);
    writeFileSync(path.join(data, 'tixian.db'), 'x'.repeat(4096));
    await expectRefused(['serve', '--port', '0', '--data-dir', data], /cannot open the SQLite database in the data directory .*not-a-db \(--data-dir \/ TIXIAN_DATA_DIR\): SQLITE_NOTADB/);
  });

  it('refuses a master key file it cannot read', async () => {
    const keyDir = path.join(dir, 'key-is-a-directory');
    mkdirSync(keyDir);
    await expectRefused(['serve', '--port', '0', '--data-dir', path.join(dir, 'unreadable-key'), '--master-key-file', keyDir], /cannot read the master key file .*key-is-a-directory \(--master-key-file \/ TIXIAN_MASTER_KEY_FILE\): EISDIR/);
  });

  it('refuses a master key file that holds no key', async () => {
    const keyFile = path.join(dir, 'garbage.key');
    writeFileSync(keyFile, 'not hex at all\n');
    await expectRefused(['serve', '--port', '0', '--data-dir', path.join(dir, 'garbage-key'), '--master-key-file', keyFile], /the master key file .*garbage\.key \(--master-key-file \/ TIXIAN_MASTER_KEY_FILE\) does not hold a master key/);
  });

  it('refuses an unreachable PostgreSQL, naming the setting, the password masked', async () => {
    const line = await expectRefused(
      ['serve', '--port', '0', '--data-dir', path.join(dir, 'pg-down'), '--database-url', 'postgres://tixian:hunter2@127.0.0.1:1/tixian'],
      /cannot reach PostgreSQL at postgres:\/\/tixian:\*\*\*@127\.0\.0\.1:1\/tixian \(--database-url \/ TIXIAN_DATABASE_URL\): connect ECONNREFUSED/,
    );
    expect(line).not.toContain('hunter2');
    await expectRefused(['migrate', '--database-url', 'postgres://tixian:hunter2@127.0.0.1:1/tixian'], /^tixian: cannot reach PostgreSQL at postgres:\/\/tixian:\*\*\*@127\.0\.0\.1:1\/tixian \(--database-url/);
  });

  it('refuses a port that is in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expectRefused(['serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', path.join(dir, 'port-taken')], new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use; .*--port / TIXIAN_PORT`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('configuration', () => {
  it('reads every setting from its flag and from its TIXIAN_* variable; the flag wins; empty is unset', () => {
    expect(loadConfig({ port: '9000' }, { TIXIAN_PORT: '9001' }).port).toBe(9000);
    expect(loadConfig({}, { TIXIAN_PORT: '9001' }).port).toBe(9001);
    expect(loadConfig({}, { TIXIAN_PORT: '' }).port).toBe(defaults.port);
    expect(loadConfig({}, { TIXIAN_WORKERS: '0', TIXIAN_SIGN_RESPONSES: 'off' })).toMatchObject({ workers: false, signResponses: false });
    expect(loadConfig({ workers: false }, { TIXIAN_WORKERS: '1' }).workers).toBe(false);
    expect(loadConfig({}, { TIXIAN_LOG_LEVEL: 'DEBUG', TIXIAN_SQLITE_SYNCHRONOUS: 'normal' })).toMatchObject({ logLevel: 'debug', sqliteSynchronous: 'NORMAL' });
    // Every Config field has a setting, and every setting a variable named after it.
    expect(settings.map((s) => s.key).sort()).toEqual(Object.keys(defaults).sort());
    for (const s of settings) {
      const snake = s.key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase().replace('MASTER_KEY_HEX', 'MASTER_KEY');
      expect(s.env).toBe(`TIXIAN_${snake}`);
      // The one exception: `--workers N` counts processes (clusterWorkers); TIXIAN_WORKERS is `--no-workers`'s.
      if (s.flag && s.key !== 'clusterWorkers') expect(s.flag.replace(/^--no-/, '--')).toBe('--' + s.key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
    }
    expect(() => loadConfig({}, { TIXIAN_WEBHOOK_RETRY_SCALE: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ bodyLimitBytes: '12' })).toThrow(/--body-limit-bytes must be an integer from 1024/);
  });

  it('the README\'s Configuration table lists every setting with its flag, variable and default', () => {
    const readme = readFileSync(README, 'utf8');
    const section = readme.slice(readme.indexOf('\n## Configuration'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration') + 1));
    expect(section.length).toBeGreaterThan(100);
    for (const s of settings) {
      const row = section.split('\n').find((l) => l.includes(`\`${s.env}\``));
      expect(row, `${s.env} missing from the README's Configuration table`).toBeDefined();
      if (s.flag) expect(row).toContain(`\`${s.flag}\``);
    }
  });
});

/** One SQL statement straight on the storage, bypassing tixian. */
async function rawSql(engine: Engine, s: Storage, text: string): Promise<Record<string, unknown>[]> {
  if (engine === 'sqlite') {
    const db = new BetterSqlite3(path.join(s.dataDir, 'tixian.db'));
    try {
      const stmt = db.prepare(text);
      return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: s.databaseUrl });
  await c.connect();
  try {
    return (await c.query(text)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describeEngines('master key', (engine) => {
  let s: Storage;
  let elsewhere: string;
  /** The database, named so that it is found from any directory (SQLite by file, not by data dir). */
  const database = () => ['--database-url', s.databaseUrl ?? `sqlite:${path.join(s.dataDir, 'tixian.db')}`];
  beforeAll(async () => {
    s = await freshStorage(engine);
    elsewhere = mkdtempSync(path.join(tmpdir(), 'tixian-elsewhere-'));
    const created = await run(['apps', 'create', '--name', 'Keyed', '--json', '--data-dir', s.dataDir, ...(s.databaseUrl ? ['--database-url', s.databaseUrl] : [])]);
    expect(created.code, created.stderr).toBe(0);
  });
  afterAll(async () => {
    rmSync(elsewhere, { recursive: true, force: true });
    await s?.drop();
  });

  it('a run from another directory without the key says which setting to fix and writes no new key', async () => {
    await expectRefused(['apps', 'list', ...database(), '--data-dir', elsewhere], /no master key: .*master\.key does not exist .*point --master-key-file \/ TIXIAN_MASTER_KEY_FILE \(or --data-dir\) at the key/, { cwd: elsewhere });
    expect(existsSync(path.join(elsewhere, 'master.key'))).toBe(false);
  });

  it('a wrong key is refused at start-up, from the environment or a file', async () => {
    await expectRefused(['apps', 'list', ...database(), '--data-dir', elsewhere], /wrong master key: the key from TIXIAN_MASTER_KEY is not the one/, { env: { TIXIAN_MASTER_KEY: 'ab'.repeat(32) } });
    const wrongFile = path.join(elsewhere, 'wrong.key');
    writeFileSync(wrongFile, 'cd'.repeat(32) + '\n', { mode: 0o600 });
    await expectRefused(['apps', 'list', ...database(), '--master-key-file', wrongFile], /wrong master key: the key from .*wrong\.key is not the one/);
  });

  it('the right key file works from any directory', async () => {
    const res = await run(['apps', 'list', ...database(), '--data-dir', elsewhere, '--master-key-file', path.join(s.dataDir, 'master.key')], { cwd: elsewhere });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('Keyed');
  });

  it('a database from before key check values is checked against its sealed platform key, then gets one', async () => {
    await rawSql(engine, s, "DELETE FROM settings WHERE key = 'master_key_check'");
    await expectRefused(['apps', 'list', ...database(), '--data-dir', elsewhere], /wrong master key/, { env: { TIXIAN_MASTER_KEY: 'ef'.repeat(32) } });
    expect(await rawSql(engine, s, "SELECT key FROM settings WHERE key = 'master_key_check'")).toEqual([]);
    const res = await run(['apps', 'list', ...database(), '--data-dir', s.dataDir]);
    expect(res.code, res.stderr).toBe(0);
    expect(await rawSql(engine, s, "SELECT key FROM settings WHERE key = 'master_key_check'")).toEqual([{ key: 'master_key_check' }]);
  });
});

describeEngines('serve on a fresh database', (engine) => {
  it('prints a create-app command that works from another directory (database and data dir included)', async () => {
    const s = await freshStorage(engine);
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'tixian-hint-'));
    try {
      const data = path.join(s.dataDir, 'data');
      const served = await run(['serve', '--port', '0', '--data-dir', path.relative(s.dataDir, data), ...(s.databaseUrl ? ['--database-url', s.databaseUrl] : [])], {
        cwd: s.dataDir,
        env: { TIXIAN_LOG_LEVEL: 'warn' },
        until: /npx tixian apps create[^\n]*--json\n/,
      });
      const hint = /npx tixian apps create (.*) --json\n/.exec(served.stdout);
      expect(hint, served.stdout + served.stderr).not.toBeNull();
      expect(hint![1]).toContain(`--data-dir ${data}`);
      if (s.databaseUrl) expect(hint![1]).toContain(`--database-url ${s.databaseUrl}`);
      const args = hint![1]!.match(/"[^"]*"|'[^']*'|\S+/g)!.map((a) => a.replace(/^["'](.*)["']$/, '$1'));
      const created = await run(['apps', 'create', ...args, '--json'], { cwd: elsewhere });
      expect(created.code, created.stderr).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ id: expect.stringMatching(/^app_/) });
      expect(existsSync(path.join(elsewhere, 'data'))).toBe(false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
      await s.drop();
    }
  });
});
