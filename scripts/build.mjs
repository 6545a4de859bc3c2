#!/usr/bin/env node
// `npm run build` (also run by `npm install`/`npm ci` through `prepare`, by `npm pack` through
// each package's `prepack`, and once before every vitest run): compiles @tixian/sdk (ESM and
// CommonJS) and the server to JavaScript with declarations in each package's dist/.
// `tsc -b` is incremental (its .tsbuildinfo files live in dist/, so deleting dist/ rebuilds):
// with nothing changed it takes about half a second.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
