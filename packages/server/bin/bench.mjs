#!/usr/bin/env node
// `npm run bench`: load tests against a real `tixian serve` (a benchmark, not a test).
// Runs the bench's TypeScript sources through tsx's loader (tsx is a devDependency); the server
// it starts is bin/tixian.mjs, the compiled dist/ (`npm run bench` builds first).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bench/main.ts');
process.exitCode = await main(process.argv.slice(2));
