import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The packages as a user gets them: `npm pack` both workspaces, `npm install` the tarballs into a
 * fresh project outside the repository, then use them there — plain ESM and CommonJS, TypeScript
 * (NodeNext and bundler resolution), and the `tixian` command. This catches what the in-repo tests
 * cannot: a wrong `exports` map, files missing from `files`, a runtime dependency that is only a
 * devDependency, TypeScript sources shipped where JavaScript is needed.
 */

const execFileP = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const requireFromRepo = createRequire(path.join(REPO, 'package.json'));
const TSC = requireFromRepo.resolve('typescript/bin/tsc');
const TYPE_ROOTS = path.join(REPO, 'node_modules/@types');

interface PackResult {
  name: string;
  filename: string;
  files: { path: string }[];
}

/** Commands run as in a user's shell: no npm_* variables from `npm test`, no TIXIAN_* settings. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|TIXIAN_)/i.test(k)) env[k] = v;
  return env;
}

async function run(file: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(file, args, { cwd, env: userEnv(), timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

let tmp: string;
let app: string;
let packs: Map<string, PackResult>;
let server: { child: ChildProcess; url: string; firstAnswerMs: number; firstStatus: number; firstBody: string } | undefined;
let appId: string;
let secretKey: string;

/** Starts the installed `tixian serve` and times spawn → first 200 from /healthz. */
async function startInstalledServer(dataDir: string): Promise<NonNullable<typeof server>> {
  const started = performance.now();
  const child = spawn(path.join(app, 'node_modules/.bin/tixian'), ['serve', '--port', '0', '--data-dir', dataDir], {
    cwd: app,
    env: { ...userEnv(), TIXIAN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`installed tixian did not start within 30 s:\n${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /tixian listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`installed tixian exited with ${code} before listening:\n${out}`));
    });
  });
  const res = await fetch(`${url}/healthz`);
  const firstBody = await res.text();
  return { child, url, firstAnswerMs: performance.now() - started, firstStatus: res.status, firstBody };
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tixian-packaging-'));

  // prepack builds (a no-op after vitest's global setup): the tarballs hold what `npm publish` would.
  const packed = await run('npm', ['pack', '-w', 'packages/sdk', '-w', 'packages/server', '--pack-destination', tmp, '--json'], REPO, 120_000);
  const results = JSON.parse(packed.slice(packed.indexOf('['))) as PackResult[];
  packs = new Map(results.map((p) => [p.name, p]));

  app = path.join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'tixian-packaging-check', version: '0.0.0', private: true }));
  const tarballs = results.map((p) => path.join(tmp, p.filename));
  // --ignore-scripts: neither package has install scripts; the one dependency that does is
  // better-sqlite3, whose from-source build (no prebuilt binaries offline) takes minutes on this
  // machine. Its addon for this Node is already built in the repository: reuse it when the
  // versions match, else build it.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], app, 240_000);
  const sqliteVersion = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
  const addon = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
  if (sqliteVersion(app) === sqliteVersion(REPO) && existsSync(path.join(REPO, addon))) {
    mkdirSync(path.dirname(path.join(app, addon)), { recursive: true });
    copyFileSync(path.join(REPO, addon), path.join(app, addon));
  } else {
    await run('npm', ['rebuild', 'better-sqlite3', '--no-audit', '--no-fund'], app, 300_000);
  }

  const dataDir = path.join(tmp, 'data');
  const created = JSON.parse(await run(path.join(app, 'node_modules/.bin/tixian'), ['apps', 'create', '--name', 'Packaging', '--json', '--data-dir', dataDir], app)) as {
    id: string;
    secret_key_test: string;
  };
  appId = created.id;
  secretKey = created.secret_key_test;
  server = await startInstalledServer(dataDir);
}, 300_000);

afterAll(async () => {
  if (server && server.child.exitCode === null && server.child.signalCode === null) {
    const exited = new Promise((resolve) => server!.child.once('exit', resolve));
    server.child.kill('SIGTERM');
    await exited;
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('the packed tarballs', () => {
  it('@tixian/sdk ships ESM and CommonJS JavaScript with declarations, and no sources', () => {
    const files = packs.get('@tixian/sdk')!.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/esm/index.js',
        'dist/esm/index.d.ts',
        'dist/cjs/index.js',
        'dist/cjs/index.d.ts',
        'dist/cjs/package.json',
      ]),
    );
    expect(files.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md')).toEqual([]);
    expect(files.filter((f) => f.endsWith('.tsbuildinfo') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
    const manifest = JSON.parse(readFileSync(path.join(app, 'node_modules/@tixian/sdk/package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.dependencies).toBeUndefined();
  });

  it('tixian ships its compiled server and bin only, and needs neither tsx nor @tixian/sdk at run time', () => {
    const files = packs.get('tixian')!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'bin/tixian.mjs', 'dist/cli/main.js', 'dist/store/migrations.js']));
    expect(files.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'bin/tixian.mjs'].includes(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.tsbuildinfo') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
    const manifest = JSON.parse(readFileSync(path.join(app, 'node_modules/tixian/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies)).not.toContain('tsx');
    expect(Object.keys(manifest.dependencies)).not.toContain('@tixian/sdk');
    expect(existsSync(path.join(app, 'node_modules/tsx'))).toBe(false);
    // The server uses the SDK's types only: no compiled module may load it.
    const loadingSdk = files.filter((f) => f.endsWith('.js') && /(\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)['"]@tixian\/sdk/.test(readFileSync(path.join(app, 'node_modules/tixian', f), 'utf8')));
    expect(loadingSdk).toEqual([]);
  });
});

describe('the installed tixian command', () => {
  it('prints its help (and its version, once it has --version)', async () => {
    const help = await run('npx', ['--no-install', 'tixian', '--help'], app);
    expect(help).toContain('Usage: tixian');
    expect(help).toContain('serve');
    if (help.includes('--version')) {
      expect((await run('npx', ['--no-install', 'tixian', '--version'], app)).trim()).toContain('0.1.0');
    }
  });

  it('serves the console from the package: / leads to /dashboard/, whose page and assets answer', async () => {
    // The console ships in the tarball (dist/dashboard/): an installed server is not a checkout,
    // so nothing can build packages/dashboard for it.
    expect(packs.get('tixian')!.files.map((f) => f.path)).toContain('dist/dashboard/index.html');
    const root = await fetch(`${server!.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/dashboard/');
    const page = await fetch(`${server!.url}/dashboard/`);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html).toContain('<div id="root"></div>');
    // A client-side route answers the page too; every asset the page names is served.
    expect((await fetch(`${server!.url}/dashboard/withdrawals`)).status).toBe(200);
    const assets = [...html.matchAll(/(?:src|href)="(\/dashboard\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) expect([asset, (await fetch(server!.url + asset)).status]).toEqual([asset, 200]);
  });

  it('serves: `tixian serve --port 0` answers its first request', () => {
    expect(server!.firstStatus).toBe(200);
    expect(server!.firstBody.length).toBeGreaterThan(0);
    // The figure for the record (spawn → first 200); not asserted tightly: two shared cores.
    console.log(`installed tixian: spawn to first 200 on /healthz in ${Math.round(server!.firstAnswerMs)} ms`);
    expect(server!.firstAnswerMs).toBeLessThan(30_000);
  });
});

/** A script that uses the SDK against the installed server and prints what it saw as JSON. */
function sdkScript(kind: 'esm' | 'cjs', userId: string): string {
  const load =
    kind === 'esm'
      ? `import sdk, { Tixian, TixianError, AuthenticationError, webhooks, VERSION } from '@tixian/sdk';\nimport { createSign, generateKeyPairSync } from 'node:crypto';`
      : `const sdk = require('@tixian/sdk');\nconst { Tixian, TixianError, AuthenticationError, webhooks, VERSION } = sdk;\nconst { createSign, generateKeyPairSync } = require('node:crypto');`;
  const body = `
const [baseUrl, appId, apiKey] = process.argv.slice(2);
const tixian = new Tixian({ apiKey, appId, baseUrl, maxNetworkRetries: 0 });
const created = await tixian.users.create({ id: '${userId}' });
const retrieved = await tixian.users.retrieve('${userId}');
let refused;
try {
  await new Tixian({ apiKey: 'sk_test_' + 'x'.repeat(24), appId, baseUrl, maxNetworkRetries: 0 }).users.retrieve('${userId}');
} catch (err) {
  refused = err;
}
const keys = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const event = JSON.stringify({ id: 'evt_1', object: 'event', type: 'balance.withdrawal.succeeded', data: { object: { id: 'w1', object: 'withdrawal' } } });
const signature = createSign('RSA-SHA256').update(event).sign(keys.privateKey, 'base64');
console.log(JSON.stringify({
  version: VERSION,
  defaultIsTixian: (sdk.default ?? sdk) === Tixian,
  created: created.id,
  retrieved: retrieved.id,
  refusedIsAuthenticationError: refused instanceof AuthenticationError,
  refusedIsTixianError: refused instanceof TixianError,
  refusedStatus: refused && refused.statusCode,
  verified: webhooks.verify(event, signature, keys.publicKey),
  tamperedVerified: webhooks.verify(event + ' ', signature, keys.publicKey),
  constructed: webhooks.constructEvent(event, signature, keys.publicKey).id,
}));
`;
  return kind === 'esm' ? `${load}\n${body}` : `${load}\n(async () => {${body}})().catch((err) => { console.error(err); process.exit(1); });\n`;
}

describe('@tixian/sdk installed from its tarball', () => {
  it.each([
    ['esm', 'consumer.mjs', 'pack_esm'],
    ['cjs', 'consumer.cjs', 'pack_cjs'],
  ] as const)('works from plain Node %s against the installed server, errors keep their classes', async (kind, file, userId) => {
    writeFileSync(path.join(app, file), sdkScript(kind, userId));
    const seen = JSON.parse(await run(process.execPath, [file, server!.url, appId, secretKey], app)) as Record<string, unknown>;
    expect(seen).toEqual({
      version: '0.1.0',
      defaultIsTixian: true,
      created: userId,
      retrieved: userId,
      refusedIsAuthenticationError: true,
      refusedIsTixianError: true,
      refusedStatus: 401,
      verified: true,
      tamperedVerified: false,
      constructed: 'evt_1',
    });
  });

  it('type-checks from TypeScript with NodeNext (ESM and CommonJS files) and bundler resolution', async () => {
    // Real types, not `any`: each @ts-expect-error must meet an error or tsc fails on it.
    const typed = (importLine: string) => `${importLine}
export async function check(raw: Buffer, signature: string, publicKey: string): Promise<string> {
  const tixian = new Tixian({ apiKey: 'sk_test_x', appId: 'app_x', baseUrl: 'http://127.0.0.1:8080' });
  const withdrawal: Withdrawal = await tixian.withdrawals.retrieve('1700000000000000001');
  const status: 'created' | 'pending' | 'succeeded' | 'failed' | 'canceled' = withdrawal.status;
  // @ts-expect-error amounts are integer fen, not strings
  await tixian.balanceBonuses.create({ user: 'u1', amount: '100', order_no: 'b1' });
  // @ts-expect-error the API key is a string
  new Tixian({ apiKey: 42 });
  const event = webhooks.constructEvent(raw, signature, publicKey);
  try {
    await tixian.users.retrieve('u1');
  } catch (err) {
    if (err instanceof TixianError) return err.type + String(err.statusCode);
  }
  return event.type === 'balance.withdrawal.failed' ? event.data.object.failure_msg ?? status : status;
}
`;
    writeFileSync(path.join(app, 'typed-esm.mts'), typed(`import { Tixian, TixianError, webhooks, type Withdrawal } from '@tixian/sdk';`));
    writeFileSync(path.join(app, 'typed-cjs.cts'), typed(`import { Tixian, TixianError, webhooks, type Withdrawal } from '@tixian/sdk';`));
    writeFileSync(path.join(app, 'typed-bundler.ts'), typed(`import { Tixian, TixianError, webhooks, type Withdrawal } from '@tixian/sdk';`));
    const common = { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', types: ['node'], typeRoots: [TYPE_ROOTS] };
    writeFileSync(
      path.join(app, 'tsconfig.nodenext.json'),
      JSON.stringify({ compilerOptions: { ...common, module: 'NodeNext', moduleResolution: 'NodeNext' }, files: ['typed-esm.mts', 'typed-cjs.cts'] }),
    );
    writeFileSync(
      path.join(app, 'tsconfig.bundler.json'),
      // Node's own declarations were checked above: skip them (and their ~10 s) this time.
      JSON.stringify({ compilerOptions: { ...common, skipLibCheck: true, module: 'Preserve', moduleResolution: 'Bundler' }, files: ['typed-bundler.ts'] }),
    );
    const traced = await run(process.execPath, [TSC, '-p', 'tsconfig.nodenext.json', '--traceResolution'], app, 120_000);
    // The .mts file gets the ESM declarations, the .cts file the CommonJS ones.
    expect(traced).toMatch(/'@tixian\/sdk' was successfully resolved to '[^']*\/node_modules\/@tixian\/sdk\/dist\/esm\/index\.d\.ts'/);
    expect(traced).toMatch(/'@tixian\/sdk' was successfully resolved to '[^']*\/node_modules\/@tixian\/sdk\/dist\/cjs\/index\.d\.ts'/);
    await run(process.execPath, [TSC, '-p', 'tsconfig.bundler.json'], app, 120_000);
  });
});
