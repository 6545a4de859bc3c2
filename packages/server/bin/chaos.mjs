#!/usr/bin/env node
// `npm run chaos`: processes killed, PostgreSQL restarted, money checked (bench/chaos.ts).
// Runs the TypeScript sources through tsx's loader; the servers it starts run the compiled dist/.
import { register } from 'tsx/esm/api';

register();
const { chaosMain } = await import('../bench/chaos.ts');
process.exitCode = await chaosMain(process.argv.slice(2));
