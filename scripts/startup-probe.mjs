// Start-up probe: `node --import ./scripts/startup-probe.mjs packages/server/bin/tixian.mjs serve …`.
// At the first 200 answer to GET /healthz, writes to $TIXIAN_STARTUP_REPORT (JSON): the CPU time
// and the time since the process started, and (with TIXIAN_STARTUP_MODULES=1, which slows the
// start a little) every module loaded so far: CommonJS from require.cache, ES modules through a
// resolve hook. Used by scripts/startup-bench.mjs and packages/server/test/startup_modules.test.ts.
import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

const out = process.env.TIXIAN_STARTUP_REPORT;
const require = createRequire(import.meta.url);
const esm = new Set();
if (process.env.TIXIAN_STARTUP_MODULES === '1') {
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (url) => esm.add(url));
  port1.unref();
  register('./startup-hooks.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] });
}
let done = false;
dc.subscribe('http.server.response.finish', ({ request, response }) => {
  if (done || !out || request.url !== '/healthz' || response.statusCode !== 200) return;
  done = true;
  const cpu = process.cpuUsage();
  const report = {
    uptime_ms: Math.round(performance.now()),
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
    modules: process.env.TIXIAN_STARTUP_MODULES === '1' ? [...Object.keys(require.cache), ...esm] : undefined,
  };
  writeFileSync(out, JSON.stringify(report));
});
