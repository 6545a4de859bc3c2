#!/usr/bin/env node
// The `tixian` command: runs the compiled JavaScript in dist/ (no TypeScript loader at run time,
// so it starts fast and installs without tsx). In a checkout, `npm install` (prepare) or
// `npm run build` makes dist/.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('tixian: dist/ is missing; run `npm run build` in the repository first');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
