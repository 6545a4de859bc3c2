#!/usr/bin/env node
// `npm run build` (also run by `npm install`/`npm ci` through `prepare`, by `npm pack` through
// each package's `prepack`, and once before every vitest run): compiles @tixian/sdk (ESM and
// CommonJS) and the server to JavaScript with declarations in each package's dist/, then the console.
// The console is also copied into the server's dist/dashboard, so the server's tarball carries it.
// `tsc -b` is incremental (its .tsbuildinfo files live in dist/, so deleting dist/ rebuilds):
// with nothing changed it takes about half a second.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const projects = [
  'packages/sdk/tsconfig.build.json',
  'packages/sdk/tsconfig.build.cjs.json',
  'packages/server/tsconfig.build.json',
];

const result = spawnSync(process.execPath, [tsc, '-b', ...projects], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);

// The SDK package is "type": "module"; this tells Node and TypeScript that dist/cjs (its .js and
// .d.ts files) is CommonJS.
const cjsMarker = path.join(root, 'packages/sdk/dist/cjs/package.json');
const marker = '{\n  "type": "commonjs"\n}\n';
if (!existsSync(cjsMarker) || readFileSync(cjsMarker, 'utf8') !== marker) {
  mkdirSync(path.dirname(cjsMarker), { recursive: true });
  writeFileSync(cjsMarker, marker);
}

// The console (packages/dashboard, Vite + React) builds into packages/dashboard/dist, which
// `tixian serve` serves under /dashboard. Vite is not incremental, so it runs only when a source
// is newer than the last build (about 5 s when it does; nothing otherwise).
const dashboard = path.join(root, 'packages/dashboard');
const built = path.join(dashboard, 'dist/index.html');
const newest = (p) => {
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(p).map((name) => newest(path.join(p, name))));
};
const inputs = ['src', 'index.html', 'vite.config.ts', 'package.json'].map((p) => path.join(dashboard, p)).filter(existsSync);
if (!existsSync(built) || Math.max(...inputs.map(newest)) > statSync(built).mtimeMs) {
  const vite = path.join(path.dirname(createRequire(path.join(dashboard, 'package.json')).resolve('vite/package.json')), 'bin/vite.js');
  const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: dashboard, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// The server package ships the console: a copy in packages/server/dist/dashboard, which `tixian
// serve` prefers (an installed tarball has no packages/dashboard beside it). Copied when the build
// is newer than the copy.
const shipped = path.join(root, 'packages/server/dist/dashboard');
if (!existsSync(path.join(shipped, 'index.html')) || statSync(built).mtimeMs > statSync(path.join(shipped, 'index.html')).mtimeMs) {
  rmSync(shipped, { recursive: true, force: true });
  cpSync(path.dirname(built), shipped, { recursive: true, preserveTimestamps: true });
}
