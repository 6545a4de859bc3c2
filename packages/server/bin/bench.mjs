#!/usr/bin/env node
// `npm run bench`: load tests against a real `tixian serve` (a benchmark, not a test).
// Runs the TypeScript sources through tsx's loader, like bin/tixian.mjs.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bench/main.ts');
process.exitCode = await main(process.argv.slice(2));
