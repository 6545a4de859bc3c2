import { loadProblems, startWindow } from '../lib/run.ts';
import { startServer } from '../lib/server.ts';
import type { CustomScenario } from '../scenario.ts';
import { fundedUsers, withdrawalBodies } from './withdrawal.ts';

/**
 * withdrawal_create with `tixian serve --workers N` (N API processes sharing the port, node:cluster). Unlike every other scenario the server is NOT pinned to core 0: N processes on one
 * core would measure nothing. They float over both cores, with the load generator (pinned to core
 * 1 when pinning works) and PostgreSQL, so on this 2-core machine the figures show where adding
 * processes stops paying, not what a bigger host would do. `srv cpu` is blank: the primary does no
 * request work and the children's CPU is not tracked.
 *
 * Sketch (2 cores, PostgreSQL on the same machine): one process is bound by its own core (~350/s
 * measured pinned, README "Performance"); a second process can use the other core only as far as
 * autocannon and the PostgreSQL backends leave it free: ~1.3–1.6×. Four processes on two cores add
 * only context switches: ≤ the two-process figure.
 */
function scaleScenario(processes: number): CustomScenario {
  return {
    name: `withdrawal_create_procs${processes}`,
    description: `POST withdrawals, \`serve --workers ${processes}\` (unpinned; cluster of ${processes} API process${processes > 1 ? 'es' : ''})`,
    async run(ctx) {
      const server = await startServer(ctx.storage, {
        pin: false,
        nodeArgs: ctx.options.serverNodeArgs,
        // With SQLite the processes queue for its one write lock: busy waits of up to 5 s are
        // expected at 50 connections, so the scenario shows that cost rather than hiding it.
        extraArgs: ['--workers', String(processes), '--role', 'api'],
      });
      try {
        const target = ctx.target(server);
        const users = await fundedUsers(target);
        await ctx.storage.analyze();
        const body = withdrawalBodies(users);
        const requests = [{ method: 'POST' as const, path: `/v1/apps/${target.appId}/withdrawals`, headers: target.headers, setupRequest: (req: object) => ({ ...req, body: body() }) }];
        if (ctx.options.warmupS > 0) await ctx.load(server, requests, ctx.options.warmupS);
        const window = startWindow(null);
        const load = await ctx.load(server, requests, ctx.options.durationS);
        const used = window.end();
        return { load, ...used, server: null, metrics: [{ name: 'api processes', value: processes, unit: '' }], problems: loadProblems(load) };
      } finally {
        const stopped = await server.stop();
        if (stopped.code !== 0) console.error(`tixian serve --workers ${processes} exited with ${stopped.code ?? stopped.signal}\n${server.output()}`);
      }
    },
  };
}

export const withdrawalCreateProcs1 = scaleScenario(1);
export const withdrawalCreateProcs2 = scaleScenario(2);
export const withdrawalCreateProcs4 = scaleScenario(4);
