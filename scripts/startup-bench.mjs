#!/usr/bin/env node
// Start-up time of `tixian serve`: spawn → first 200 on /healthz, on an existing data dir.
//   node scripts/startup-bench.mjs [runs=5] [serve flags…]     e.g. `node scripts/startup-bench.mjs 5 --no-workers`
// Prints the median wall time (spawn to the answer, as a client sees it), the child's CPU time and
// uptime at that answer, and the load average. Builds nothing: run `npm run build` first.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'packages/server/bin/tixian.mjs');
const probe = path.join(root, 'scripts/startup-probe.mjs');
const runs = Number(process.argv[2] ?? 5);
const flags = process.argv.slice(3);
const dir = mkdtempSync(path.join(tmpdir(), 'tixian-startup-bench-'));
const env = { ...process.env, TIXIAN_DATA_DIR: path.join(dir, 'data'), TIXIAN_LOG_LEVEL: 'warn' };
delete env.NODE_OPTIONS;
// An existing data dir: created and migrated once, with an app.
const init = spawnSync(process.execPath, [bin, 'apps', 'create', '--name', 'bench', '--json'], { env, encoding: 'utf8' });
if (init.status !== 0) throw new Error(init.stderr);

function get(url) {
  return new Promise((resolve, reject) => http.get(url, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }).on('error', reject));
}

async function once(i) {
  const report = path.join(dir, `report-${i}.json`);
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', probe, bin, 'serve', '--port', '0', ...flags], { env: { ...env, TIXIAN_STARTUP_REPORT: report }, stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      text += d;
      const m = /tixian listening on (http:\/\/\S+)/.exec(text);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${text}`)));
  });
  const status = await get(`${url}/healthz`);
  const wall = performance.now() - t0;
  if (status !== 200) throw new Error(`healthz answered ${status}`);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  const r = JSON.parse(readFileSync(report, 'utf8'));
  return { wall, cpu: r.cpu_ms, uptime: r.uptime_ms };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];
for (let i = 0; i < runs; i++) results.push(await once(i));
rmSync(dir, { recursive: true, force: true });
console.log(
  `serve ${flags.join(' ') || '(with workers)'}: median of ${runs}: wall ${Math.round(median(results.map((r) => r.wall)))} ms, ` +
    `cpu ${median(results.map((r) => r.cpu))} ms, uptime ${median(results.map((r) => r.uptime))} ms; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
);
