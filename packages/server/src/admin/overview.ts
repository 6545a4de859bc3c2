import { sql } from 'kysely';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';

/** Days and weeks are China Standard Time (UTC+8, no daylight saving): the merchants' calendar. */
const CST_OFFSET_S = 8 * 3600;
const DAY_S = 86_400;
/** Days the chart shows. */
export const OVERVIEW_DAYS = 14;

const dayStart = (nowS: number) => nowS - ((nowS + CST_OFFSET_S) % DAY_S);
const isoDay = (s: number) => new Date((s + CST_OFFSET_S) * 1000).toISOString().slice(0, 10);

/**
 * The overview page: today's and this week's withdrawals by status, the waiting count, daily
 * volume and success rate, failing webhook endpoints. Each query is one range of the
 * (app, livemode[, status], created, id) indexes, bounded by the chart's days: its cost grows with
 * the last two weeks' withdrawals, not with the table.
 */
export async function overview(rt: Runtime, scope: Scope) {
  const db = rt.store.db;
  const nowS = Math.floor(rt.clock.nowMs() / 1000);
  const today = dayStart(nowS);
  // Monday 00:00 CST (1970-01-01 was a Thursday).
  const weekStart = today - ((Math.floor((today + CST_OFFSET_S) / DAY_S) + 3) % 7) * DAY_S;
  const from = Math.min(today - (OVERVIEW_DAYS - 1) * DAY_S, weekStart);
  const livemode = scope.livemode ? 1 : 0;
  const dayExpr = sql<number>`(created - ((created + ${CST_OFFSET_S}) % ${DAY_S}))`;
  const rows = await db
    .selectFrom('withdrawals')
    .select([dayExpr.as('day'), 'status', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.sum<number>('amount').as('amount')])
    .where('app', '=', scope.app).where('livemode', '=', livemode).where('created', '>=', from)
    .groupBy([dayExpr, 'status'])
    .execute();
  const sumBy = (since: number) => {
    const out = new Map<string, { status: string; count: number; amount: number }>();
    for (const r of rows) {
      if (Number(r.day) < since) continue;
      const e = out.get(r.status) ?? { status: r.status, count: 0, amount: 0 };
      e.count += Number(r.n);
      e.amount += Number(r.amount);
      out.set(r.status, e);
    }
    return [...out.values()].sort((a, b) => a.status.localeCompare(b.status));
  };
  const daily = Array.from({ length: OVERVIEW_DAYS }, (_, i) => {
    const day = today - (OVERVIEW_DAYS - 1 - i) * DAY_S;
    const of = rows.filter((r) => Number(r.day) === day);
    const pick = (s: string) => Number(of.find((r) => r.status === s)?.n ?? 0);
    return {
      day: isoDay(day),
      count: of.reduce((n, r) => n + Number(r.n), 0),
      amount: of.reduce((n, r) => n + Number(r.amount), 0),
      succeeded: pick('succeeded'),
      failed: pick('failed'),
    };
  });
  const waiting = await db.selectFrom('withdrawals').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('app', '=', scope.app).where('livemode', '=', livemode).where('status', '=', 'created').executeTakeFirstOrThrow();
  const failing = await db.selectFrom('webhook_endpoints').select(['id', 'url', 'failure_streak', 'failing_since_ms', 'auto_disabled_ms'])
    .where('app', '=', scope.app).where('livemode', '=', livemode).where('disabled', '=', 0).where('failure_streak', '>', 0)
    .orderBy('failure_streak', 'desc').limit(20).execute();
  return {
    today: sumBy(today),
    week: sumBy(weekStart),
    waiting: Number(waiting.n),
    daily,
    failing_endpoints: failing.map((e) => ({
      id: e.id, url: e.url, failure_streak: e.failure_streak,
      failing_since_ms: e.failing_since_ms === null ? null : Number(e.failing_since_ms), auto_disabled: e.auto_disabled_ms !== null,
    })),
  };
}
