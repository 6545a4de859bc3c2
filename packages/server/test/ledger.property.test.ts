import { afterAll, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import type { WithdrawalChannel, WithdrawalStatus } from '@tixian/sdk';
import { createApp } from '../src/services/accounts.ts';
import { createUser, updateUser } from '../src/services/users.ts';
import { createBalanceBonus } from '../src/services/balance_bonuses.ts';
import { createBalanceSettlement } from '../src/services/balance_settlements.ts';
import { createBalanceTransfer } from '../src/services/balance_transfers.ts';
import { cancelWithdrawal, confirmWithdrawal, createWithdrawal } from '../src/services/withdrawals.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { ManualClock } from '../src/clock.ts';
import { ApiError } from '../src/domain/errors.ts';
import { paysOutsideTixian, WITHDRAWAL_CHANNELS } from '../src/domain/channels.ts';
import { canTransition } from '../src/domain/withdrawal.ts';
import { appAccount, type AppAccount } from '../src/ledger/ledger.ts';
import type { Scope } from '../src/services/common.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * Model-based test of the money path: random sequences of ledger operations run through the
 * service layer against a tiny model (balances per user, which order_nos were used with which
 * parameters, each withdrawal's status, the balance of each app ledger account). After every step
 * the journal must balance, no balance may be negative, withdrawable ≤ available, balances must
 * equal their journal, the API must show the balances and withdrawal statuses the model expects,
 * every withdrawal status observed must have moved along the state machine, the withdrawal_hold
 * account must equal the holds outstanding, and each final withdrawal must have exactly one event.
 *
 * To add an operation keyed by order_no: write one class implementing `Op` (what the model
 * expects, and the service call), and add its arbitrary to `operations` below. Other operations
 * (confirm, cancel, a payout worker round, time passing) are `fc.AsyncCommand`s of their own.
 *
 * Time is a ManualClock: every command moves it 1 ms (so ids made by different commands never
 * share a millisecond), and a command moves it further, so scheduled payout retries become due
 * without sleeping.
 */

// Amounts of a similar size, so that transfers land on every side of a balance (withdrawable
// short but available enough, exactly enough, …). Balances stay far below 2^31−1: the cap has
// its own test in invalid_input.
const amount = fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.constantFrom(1, 100, 500, 1_000), fc.integer({ min: 1, max: 1_000_000 }));

/** Who operations name: three customers, the system user "0" and someone who does not exist. */
const CUSTOMERS = ['alice', 'bob', 'carol'];
const userName = fc.oneof({ arbitrary: fc.constantFrom(...CUSTOMERS), weight: 4 }, { arbitrary: fc.constantFrom('0', 'ghost'), weight: 1 });
/**
 * Order numbers: a small shared pool (so replays and duplicates happen) or a fresh one. Digits, so
 * that they suit every withdrawal channel, except 'p3', which unionpay (digits only) refuses.
 */
const orderNo = fc.oneof(fc.constantFrom('11', '12', 'p3'), fc.constant(null));

/** At most this many commands per run; the payout worker's round must be able to take them all. */
const MAX_COMMANDS = 40;

interface ModelUser {
  available: number;
  withdrawable: number;
  disabled: boolean;
}

/** The sandbox's outcome is chosen by the payee's ending (see channels/sandbox.ts). */
type Ending = '' | '0002' | '0003' | '0004';

interface ModelWithdrawal {
  id: string;
  user: string;
  amount: number;
  fee: number;
  ending: Ending;
  status: WithdrawalStatus;
  /** How often it was confirmed (the payout round). */
  round: number;
  /** Whether the worker's next step for this round submits, or asks the channel first. */
  phase: 'submit' | 'query' | null;
  /** When the worker's next step is due (model clock), while pending. */
  dueMs: number | null;
  /** Submits the channel has seen: one per payout round that reached the worker. */
  submits: number;
}

const APP_ACCOUNTS: AppAccount[] = ['withdrawal_hold', 'payout_clearing', 'fee_income', 'bonus_funding', 'settlement_funding'];
type AppDeltas = Partial<Record<AppAccount, number>>;

interface Model {
  users: Map<string, ModelUser>;
  /** `<resource>:<order_no>` → the parameters it was first used with and the object made. */
  orders: Map<string, { params: string; id: string }>;
  /** balance_transactions the app should have. */
  lines: number;
  /** The model's clock; the real ManualClock moves with it. */
  nowMs: number;
  withdrawals: ModelWithdrawal[];
  /** The balance (sum of postings) of each of the app's ledger accounts. */
  accounts: Record<AppAccount, number>;
}

interface Real {
  h: Harness;
  clock: ManualClock;
  worker: PayoutWorker;
  scope: Scope;
  nextOrder: () => string;
  /** The status each withdrawal had at the last check, to check the transitions between checks. */
  seen: Map<string, WithdrawalStatus>;
}

/** Every command starts by letting a millisecond pass. */
function tick(m: Model, r: Real, ms = 1) {
  m.nowMs += ms;
  r.clock.advance(ms);
  expect(r.clock.nowMs()).toBe(m.nowMs);
}

/** The error the model expects (status 400 unless said), or null for success. */
type Expected = { status?: number; param: string; code: string } | null;

/** The balance changes a successful operation makes: user → [available delta, withdrawable delta]. */
type Deltas = Map<string, [number, number]>;

interface Op {
  /** Predicts the outcome from the model alone, in the same order the service checks things. */
  expect(m: Model, orderKey: string, orderNo: string): { error: Expected; deltas: Deltas; lines: number; apps?: AppDeltas };
  /** Calls the service; returns the id of the object made (or replayed). */
  call(r: Real, orderNo: string): Promise<string>;
  /** Records a newly made object in the model (not called for a replay). */
  made?(m: Model, id: string): void;
  resource: string;
  params: unknown[];
  label: string;
}

const err = (param: string, code: string, status = 400): Expected => ({ param, code, status });

function userError(m: Model, id: string, param: string): Expected {
  const u = m.users.get(id);
  if (!u) return err(param, 'user_not_found');
  if (u.disabled) return err(param, 'user_disabled');
  return null;
}

function applyDeltas(m: Model, deltas: Deltas, apps: AppDeltas = {}) {
  for (const [user, [available, withdrawable]] of deltas) {
    const u = m.users.get(user)!;
    u.available += available;
    u.withdrawable += withdrawable;
  }
  for (const [account, delta] of Object.entries(apps) as [AppAccount, number][]) m.accounts[account] += delta;
}

class Credit implements Op {
  readonly resource: string;
  readonly params: unknown[];
  readonly label: string;
  constructor(
    private readonly kind: 'bonus' | 'settlement',
    private readonly user: string,
    private readonly amount: number,
  ) {
    this.resource = kind;
    this.params = [user, amount];
    this.label = `${kind}(${user}, ${amount})`;
  }
  expect(m: Model, orderKey: string) {
    const none = { deltas: new Map() as Deltas, lines: 0 };
    if (this.user === '0') return { error: err('user', 'invalid_parameter'), ...none };
    const replay = replayOutcome(m, orderKey, this.params);
    if (replay) return { error: replay === 'same' ? null : replay, ...none };
    const e = userError(m, this.user, 'user');
    if (e) return { error: e, ...none };
    const withdrawable = this.kind === 'settlement' ? this.amount : 0;
    const funding: AppAccount = this.kind === 'settlement' ? 'settlement_funding' : 'bonus_funding';
    return { error: null, deltas: new Map([[this.user, [this.amount, withdrawable]]]) as Deltas, lines: 1, apps: { [funding]: -this.amount } };
  }
  async call(r: Real, order_no: string) {
    const p = { user: this.user, amount: this.amount, order_no };
    const o = this.kind === 'bonus' ? await createBalanceBonus(r.h.rt, r.scope, p) : await createBalanceSettlement(r.h.rt, r.scope, p);
    return o.id;
  }
}

class Transfer implements Op {
  readonly resource = 'transfer';
  readonly params: unknown[];
  readonly label: string;
  constructor(
    private readonly user: string,
    private readonly recipient: string,
    private readonly amount: number,
    private readonly fee: number,
  ) {
    this.params = [user, recipient, amount, fee];
    this.label = `transfer(${user} → ${recipient}, ${amount} + fee ${fee})`;
  }
  expect(m: Model, orderKey: string) {
    const none = { deltas: new Map() as Deltas, lines: 0 };
    if (this.user === '0') return { error: err('user', 'invalid_parameter'), ...none };
    if (this.user === this.recipient) return { error: err('recipient', 'invalid_parameter'), ...none };
    const replay = replayOutcome(m, orderKey, this.params);
    if (replay) return { error: replay === 'same' ? null : replay, ...none };
    const e = userError(m, this.user, 'user') ?? userError(m, this.recipient, 'recipient');
    if (e) return { error: e, ...none };
    const debit = this.amount + this.fee;
    if (m.users.get(this.user)!.withdrawable < debit) return { error: err('amount', 'insufficient_balance'), ...none };
    const deltas: Deltas = new Map([
      [this.user, [-debit, -debit]],
      [this.recipient, [this.amount, this.amount]],
    ]);
    return { error: null, deltas, lines: 2, apps: { fee_income: this.fee } };
  }
  async call(r: Real, order_no: string) {
    const t = await createBalanceTransfer(r.h.rt, r.scope, { user: this.user, recipient: this.recipient, amount: this.amount, user_fee: this.fee, order_no });
    return t.id;
  }
}

/** 提现申请: holds `amount` at once (withdrawable → withdrawal_hold), status `created`. */
class WithdrawalCreate implements Op {
  readonly resource = 'withdrawal';
  readonly params: unknown[];
  readonly label: string;
  constructor(
    private readonly user: string,
    private readonly channel: WithdrawalChannel,
    private readonly ending: Ending,
    private readonly amount: number,
    private readonly fee: number,
  ) {
    this.params = [user, channel, ending, amount, fee];
    this.label = `withdraw(${user}, ${amount} incl. fee ${fee}, ${channel} payee …${ending || 'ok'})`;
  }
  expect(m: Model, orderKey: string, orderNo: string) {
    const none = { deltas: new Map() as Deltas, lines: 0 };
    if (this.fee >= this.amount) return { error: err('user_fee', 'invalid_parameter'), ...none };
    if (this.user === '0') return { error: err('user', 'invalid_parameter'), ...none };
    // unionpay takes digits only (§6.4); the other channels take our alphanumeric order_nos.
    if (this.channel === 'unionpay' && !/^[0-9]+$/.test(orderNo)) return { error: err('order_no', 'invalid_parameter'), ...none };
    const replay = replayOutcome(m, orderKey, this.params);
    if (replay) return { error: replay === 'same' ? null : replay, ...none };
    const e = userError(m, this.user, 'user');
    if (e) return { error: e, ...none };
    if (m.users.get(this.user)!.withdrawable < this.amount) return { error: err('amount', 'insufficient_balance'), ...none };
    const deltas: Deltas = new Map([[this.user, [-this.amount, -this.amount]]]);
    return { error: null, deltas, lines: 1, apps: { withdrawal_hold: this.amount } };
  }
  async call(r: Real, order_no: string) {
    const w = await createWithdrawal(r.h.rt, r.scope, {
      user: this.user, amount: this.amount, user_fee: this.fee, channel: this.channel, order_no,
      extra: seedExtra(this.channel, sandboxPayee(this.channel, this.ending)),
    });
    return w.id;
  }
  made(m: Model, id: string) {
    m.withdrawals.push({
      id, user: this.user, amount: this.amount, fee: this.fee, ending: this.ending,
      status: 'created', round: 0, phase: null, dueMs: null, submits: 0,
    });
  }
}

/** For a create keyed by order_no: 'same' (an identical retry), a duplicate error, or null (new). */
function replayOutcome(m: Model, orderKey: string, params: unknown[]): 'same' | Expected {
  const used = m.orders.get(orderKey);
  if (!used) return null;
  return used.params === JSON.stringify(params) ? 'same' : err('order_no', 'duplicate_order_no');
}

/** Any operation keyed by order_no becomes a command the same way. */
class OrderCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    private readonly op: Op,
    private readonly pooledOrderNo: string | null,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(m, r);
    const order = this.pooledOrderNo ?? r.nextOrder();
    const key = `${this.op.resource}:${order}`;
    const predicted = this.op.expect(m, key, order);
    let id: string | undefined;
    let thrown: unknown;
    try {
      id = await this.op.call(r, order);
    } catch (e) {
      thrown = e;
    }
    if (predicted.error) {
      expect(thrown, `${this.op.label} should fail with ${predicted.error.code}`).toBeInstanceOf(ApiError);
      const e = thrown as ApiError;
      expect({ status: e.status, param: e.param, code: e.code }).toEqual(predicted.error);
    } else {
      if (thrown) throw thrown;
      const used = m.orders.get(key);
      if (used) expect(id, 'an identical retry returns the object made the first time').toBe(used.id);
      else {
        m.orders.set(key, { params: JSON.stringify(this.op.params), id: id! });
        this.op.made?.(m, id!);
      }
      applyDeltas(m, predicted.deltas, predicted.apps);
      m.lines += predicted.lines;
      if (predicted.lines > 0) await checkNewestLines(r, m, [id!], [...predicted.deltas.keys()]);
    }
    await checkInvariants(m, r);
  }
  toString() {
    return `${this.op.label} #${this.pooledOrderNo ?? 'fresh'}`;
  }
}

class SetDisabled implements fc.AsyncCommand<Model, Real> {
  constructor(
    private readonly user: string,
    private readonly disabled: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(m, r);
    const u = m.users.get(this.user);
    const predicted: Expected = !u ? err('id', 'resource_missing', 404) : this.user === '0' ? err('disabled', 'invalid_parameter') : null;
    try {
      const res = await updateUser(r.h.rt, r.scope, this.user, { disabled: this.disabled });
      expect(predicted, `disabling ${this.user} should have failed`).toBeNull();
      expect(res.disabled).toBe(this.disabled);
      u!.disabled = this.disabled;
    } catch (e) {
      if (!(e instanceof ApiError) || !predicted) throw e;
      expect({ status: e.status, param: e.param, code: e.code }).toEqual(predicted);
    }
    await checkInvariants(m, r);
  }
  toString() {
    return `${this.disabled ? 'disable' : 'enable'}(${this.user})`;
  }
}

/**
 * Which withdrawal a confirm or cancel names: `pick` indexes the run's withdrawals (only the
 * `created` ones when `createdOnly`, if any), or names one that does not exist.
 */
interface Target {
  pick: number;
  createdOnly: boolean;
  ghost: boolean;
}

function targetOf(m: Model, t: Target): ModelWithdrawal | undefined {
  if (t.ghost) return undefined;
  const created = m.withdrawals.filter((w) => w.status === 'created');
  const pool = t.createdOnly && created.length > 0 ? created : m.withdrawals;
  return pool.length === 0 ? undefined : pool[t.pick % pool.length];
}

const GHOST_WITHDRAWAL = '1700000000000000000000000000000';

/** PUT status=pending (confirm) or status=canceled (cancel): only from `created`. */
class UpdateWithdrawal implements fc.AsyncCommand<Model, Real> {
  constructor(
    private readonly action: 'confirm' | 'cancel',
    private readonly target: Target,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(m, r);
    const w = targetOf(m, this.target);
    const id = w?.id ?? GHOST_WITHDRAWAL;
    const predicted: Expected = !w ? err('id', 'resource_missing', 404) : w.status !== 'created' ? err('status', 'invalid_state') : null;
    let res: Awaited<ReturnType<typeof confirmWithdrawal>> | undefined;
    try {
      res = this.action === 'confirm' ? await confirmWithdrawal(r.h.rt, r.scope, id) : await cancelWithdrawal(r.h.rt, r.scope, id);
    } catch (e) {
      if (!(e instanceof ApiError) || !predicted) throw e;
      expect({ status: e.status, param: e.param, code: e.code }).toEqual(predicted);
    }
    if (!predicted) {
      expect(res, `${this} should have succeeded`).toBeDefined();
      if (this.action === 'confirm') {
        w!.status = 'pending';
        w!.round += 1;
        w!.phase = 'submit';
        w!.dueMs = m.nowMs;
        // The payout's transfer id and the channel's key are fixed per confirm round.
        expect(res).toMatchObject({ id, status: 'pending', source: `tr_${id}_${w!.round}`, failure_msg: null });
      } else {
        w!.status = 'canceled';
        applyDeltas(m, new Map([[w!.user, [w!.amount, w!.amount]]]), { withdrawal_hold: -w!.amount });
        m.lines += 1;
        expect(res).toMatchObject({ id, status: 'canceled', time_canceled: Math.floor(m.nowMs / 1000) });
        await checkNewestLines(r, m, [id], [w!.user]);
      }
    } else {
      expect(res, `${this} should have failed with ${predicted.code}`).toBeUndefined();
    }
    await checkInvariants(m, r);
  }
  toString() {
    const t = this.target;
    return `${this.action}(${t.ghost ? 'ghost' : `#${t.pick}${t.createdOnly ? ' of created' : ''}`})`;
  }
}

/**
 * One round of the payout worker. Every pending withdrawal whose next step is due is handled; the
 * sandbox answers at once (sandboxDelayMs 0): payee …0002 fails (the user's fault, hold returned),
 * …0003 goes back to `created` on its first round (the merchant's fault, hold kept) and succeeds on
 * later ones, …0004 loses the submit's answer (retry later, by query) and then succeeds, anything
 * else succeeds.
 */
class RunPayoutWorker implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    tick(m, r);
    const due = m.withdrawals.filter((w) => w.status === 'pending' && w.dueMs! <= m.nowMs);
    const handled = await r.worker.runOnce();
    expect(handled, 'the worker handles exactly the due pending withdrawals').toBe(due.length);

    const failedBy = new Map<string, string[]>();
    const succeeded: ModelWithdrawal[] = [];
    const unknown: ModelWithdrawal[] = [];
    for (const w of due) {
      if (w.phase === 'submit') w.submits += 1;
      if (w.phase === 'submit' && w.ending === '0004') {
        w.phase = 'query';
        unknown.push(w);
        continue;
      }
      w.phase = null;
      w.dueMs = null;
      if (w.ending === '0002') {
        w.status = 'failed';
        applyDeltas(m, new Map([[w.user, [w.amount, w.amount]]]), { withdrawal_hold: -w.amount });
        m.lines += 1;
        failedBy.set(w.user, [...(failedBy.get(w.user) ?? []), w.id]);
      } else if (w.ending === '0003' && w.round === 1) {
        w.status = 'created';
      } else {
        w.status = 'succeeded';
        applyDeltas(m, new Map(), { withdrawal_hold: -w.amount, payout_clearing: w.amount - w.fee, fee_income: w.fee });
        succeeded.push(w);
      }
    }

    const db = r.h.rt.store.db;
    // An unknown answer is retried later (by query, never by a blind resubmit): the schedule is the
    // worker's, but it must be in the future and within its longest delay (10 min).
    for (const w of unknown) {
      const row = await db.selectFrom('withdrawals').select(['status', 'payout_phase', 'payout_due_ms', 'payout_lease_ms']).where('id', '=', w.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', payout_phase: 'query', payout_lease_ms: null });
      expect(row.payout_due_ms).toBeGreaterThan(m.nowMs);
      expect(row.payout_due_ms).toBeLessThanOrEqual(m.nowMs + 10 * 60_000);
      w.dueMs = row.payout_due_ms;
    }
    // A success moves the hold out once: amount − user_fee to payout_clearing, user_fee to fee_income.
    for (const w of succeeded) {
      const entries = await db.selectFrom('journal_entries').select('id').where('source', '=', w.id).where('type', '=', 'withdrawal_succeeded').execute();
      expect(entries, `one withdrawal_succeeded entry for ${w.id}`).toHaveLength(1);
      const postings = await db.selectFrom('postings').select(['account', 'amount']).where('entry_id', '=', entries[0]!.id).execute();
      const account = (kind: AppAccount) => appAccount(r.scope.app, false, kind);
      const expected = [
        { account: account('withdrawal_hold'), amount: -w.amount },
        { account: account('payout_clearing'), amount: w.amount - w.fee },
        ...(w.fee > 0 ? [{ account: account('fee_income'), amount: w.fee }] : []),
      ];
      expect(postings.map((p) => ({ account: p.account, amount: Number(p.amount) }))).toEqual(expect.arrayContaining(expected));
      expect(postings).toHaveLength(expected.length);
    }
    // The channel saw one order per payout round, keyed by the withdrawal (and round), paying amount − user_fee.
    for (const w of due) {
      const orders = await db.selectFrom('sandbox_payouts').select(['key', 'amount']).where('withdrawal_id', '=', w.id).execute();
      const keys = Array.from({ length: w.submits }, (_, i) => (i === 0 ? w.id : `${w.id}_${i + 1}`));
      const seen = orders.map((o) => ({ key: o.key, amount: Number(o.amount) })).sort((a, b) => (a.key < b.key ? -1 : 1));
      expect(seen).toEqual(keys.map((key) => ({ key, amount: w.amount - w.fee })));
    }
    // Failures come back to the user as withdrawal_failed lines; which of one user's failures
    // applied last is up to the worker.
    for (const [user, ids] of failedBy) await checkNewestLines(r, m, ids, [user]);
    await checkInvariants(m, r);
  }
  toString() {
    return 'payout worker round';
  }
}

/** Time passes: scheduled payout retries may become due. */
class AdvanceClock implements fc.AsyncCommand<Model, Real> {
  constructor(private readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tick(m, r, this.ms);
    await checkInvariants(m, r);
  }
  toString() {
    return `wait ${this.ms} ms`;
  }
}

const credit = fc
  .tuple(fc.constantFrom('bonus' as const, 'settlement' as const), userName, amount, orderNo)
  .map(([kind, user, a, o]) => new OrderCommand(new Credit(kind, user, a), o));
// Transfers lean small, so that most senders can afford them, and mostly go between two people.
const parties = fc.oneof({ arbitrary: fc.tuple(userName, userName).filter(([a, b]) => a !== b), weight: 5 }, { arbitrary: fc.tuple(userName, userName), weight: 1 });
const transfer = fc
  .tuple(parties, fc.oneof(fc.integer({ min: 1, max: 500 }), amount), fc.constantFrom(0, 0, 1, 250), orderNo)
  .map(([[from, to], a, fee, o]) => new OrderCommand(new Transfer(from, to, a, fee), o));
const setDisabled = fc.tuple(userName, fc.boolean()).map(([user, disabled]) => new SetDisabled(user, disabled));
// Withdrawals lean small too; user_fee is mostly 0, sometimes the largest allowed (amount − 1)
// and sometimes too large (≥ amount).
const withdrawalAmountAndFee = fc
  .oneof({ arbitrary: fc.integer({ min: 1, max: 1_500 }), weight: 4 }, { arbitrary: amount, weight: 1 })
  .chain((a) => fc.tuple(fc.constant(a), fc.oneof({ arbitrary: fc.constant(0), weight: 6 }, { arbitrary: fc.constantFrom(1, 250, a - 1), weight: 3 }, { arbitrary: fc.constant(a), weight: 1 })));
const ending = fc.constantFrom<Ending>('', '', '0002', '0003', '0004');
// Withdrawals name someone who cannot withdraw less often than other operations do.
const withdrawer = fc.oneof({ arbitrary: fc.constantFrom(...CUSTOMERS), weight: 12 }, { arbitrary: fc.constantFrom('0', 'ghost'), weight: 1 });
const withdraw = fc
  // custom (no payout, succeeds at confirm) is not in the model: withdrawals_custom.test.ts covers it.
  .tuple(withdrawer, fc.constantFrom(...WITHDRAWAL_CHANNELS.filter((c) => !paysOutsideTixian(c))), ending, withdrawalAmountAndFee, orderNo)
  .map(([user, channel, end, [a, fee], o]) => new OrderCommand(new WithdrawalCreate(user, channel, end, a, fee), o));
const target = fc.record({
  pick: fc.nat({ max: 100 }),
  createdOnly: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  ghost: fc.oneof({ arbitrary: fc.constant(false), weight: 12 }, { arbitrary: fc.constant(true), weight: 1 }),
});
const confirm = target.map((t) => new UpdateWithdrawal('confirm', t));
const cancel = target.map((t) => new UpdateWithdrawal('cancel', t));
const payoutRound = fc.constant(new RunPayoutWorker());
// 100 ms is sometimes enough for a retry after an unknown answer and sometimes not; 10 min always is.
const advanceClock = fc.constantFrom(100, 1_000, 10 * 60_000).map((ms) => new AdvanceClock(ms));

/**
 * Each customer starts with some withdrawable money (or none), so that withdrawals happen early.
 * Unbiased: fast-check's bias toward small values would leave most customers nearly broke.
 */
const startingBalances = fc.noBias(fc.tuple(...CUSTOMERS.map(() => fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 10_000 }), weight: 4 }))));

/**
 * The operations the random sequences are made of. fc.commands picks each entry equally often,
 * so an entry listed twice comes up twice as often. Settlements (credit) fund withdrawals.
 */
const operations: fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] = [
  credit, credit, transfer, setDisabled,
  withdraw, withdraw, withdraw, withdraw, confirm, confirm, confirm, cancel, payoutRound, payoutRound, payoutRound, advanceClock, advanceClock,
];

/** The newest balance_transactions of the users a movement touched show it, with the balance after it. */
async function checkNewestLines(r: Real, m: Model, sources: string[], users: string[]) {
  for (const user of users) {
    const res = await r.h.request('GET', `/v1/apps/${r.scope.app}/balance_transactions?user=${user}&per_page=1`);
    const line = res.json.data[0];
    expect(sources).toContain(line.source);
    expect(line.available_balance).toBe(m.users.get(user)!.available);
  }
}

async function checkInvariants(m: Model, r: Real) {
  const db = r.h.rt.store.db;
  // Every journal entry's postings sum to zero.
  const unbalanced = await db.selectFrom('postings').select(['entry_id', sql<number>`sum(amount)`.as('total')]).groupBy('entry_id').having(sql`sum(amount)`, '<>', 0).execute();
  expect(unbalanced).toEqual([]);
  // No balance is negative and withdrawable never exceeds available (read from the rows, not the checker).
  const bad = await db
    .selectFrom('users')
    .select(['id', 'available_balance', 'withdrawable_balance'])
    .where((eb) => eb.or([eb('available_balance', '<', 0), eb('withdrawable_balance', '<', 0), eb('withdrawable_balance', '>', eb.ref('available_balance'))]))
    .execute();
  expect(bad).toEqual([]);
  // Balances equal their journal: the users row against its postings, per bucket.
  const rows = await db.selectFrom('users').select(['pk', 'id', 'available_balance', 'withdrawable_balance']).where('app', '=', r.scope.app).where('livemode', '=', 0).execute();
  const sums = await db
    .selectFrom('postings')
    .select(['account', sql<number>`sum(amount)`.as('total')])
    .where('account', 'in', rows.flatMap((u) => [`user:${u.pk}:withdrawable`, `user:${u.pk}:bonus`]))
    .groupBy('account')
    .execute();
  const posted = new Map(sums.map((s) => [s.account, Number(s.total)]));
  for (const u of rows) {
    const w = posted.get(`user:${u.pk}:withdrawable`) ?? 0;
    const b = posted.get(`user:${u.pk}:bonus`) ?? 0;
    expect({ user: u.id, available: Number(u.available_balance), withdrawable: Number(u.withdrawable_balance) }).toEqual({ user: u.id, available: w + b, withdrawable: w });
  }
  // And the project's own checker agrees, over the whole database.
  const report = await verifyLedger(r.h.rt.store);
  expect(report.drift).toEqual([]);
  expect(report.ok).toBe(true);
  // The API shows what the model expects.
  for (const [id, expected] of m.users) {
    const res = await r.h.request('GET', `/v1/apps/${r.scope.app}/users/${id}`);
    expect(res.status).toBe(200);
    expect({ id, available: res.json.available_balance, withdrawable: res.json.withdrawable_balance, disabled: res.json.disabled }).toEqual({
      id, available: expected.available, withdrawable: expected.withdrawable, disabled: expected.disabled,
    });
  }
  const lines = await db.selectFrom('balance_transactions').select(sql<number>`count(*)`.as('n')).where('app', '=', r.scope.app).executeTakeFirstOrThrow();
  expect(Number(lines.n)).toBe(m.lines);
  await checkWithdrawals(m, r);
}

async function checkWithdrawals(m: Model, r: Real) {
  const db = r.h.rt.store.db;
  // Each app ledger account holds what the model says (sum of its postings).
  const prefix = appAccount(r.scope.app, false, 'withdrawal_hold').replace(/withdrawal_hold$/, '');
  const appSums = await db
    .selectFrom('postings')
    .select(['account', sql<number>`sum(amount)`.as('total')])
    .where('account', 'in', APP_ACCOUNTS.map((a) => prefix + a))
    .groupBy('account')
    .execute();
  const appPosted = new Map(appSums.map((s) => [s.account.slice(prefix.length), Number(s.total)]));
  expect(Object.fromEntries(APP_ACCOUNTS.map((a) => [a, appPosted.get(a) ?? 0]))).toEqual(m.accounts);

  // The API lists every withdrawal with the status the model expects.
  const res = await r.h.request('GET', `/v1/apps/${r.scope.app}/withdrawals?per_page=100`);
  expect(res.status).toBe(200);
  expect(res.json.has_more).toBe(false);
  const listed = new Map((res.json.data as { id: string; status: WithdrawalStatus }[]).map((w) => [w.id, w.status]));
  expect(Object.fromEntries(listed)).toEqual(Object.fromEntries(m.withdrawals.map((w) => [w.id, w.status])));
  expect(res.json.total_withdrawals_amount).toBe(m.withdrawals.reduce((s, w) => s + w.amount, 0));

  // Statuses only move along the state machine (created→pending→succeeded|failed|created, created→canceled).
  for (const [id, status] of listed) {
    const before = r.seen.get(id) ?? 'created';
    expect(before === status || canTransition(before, status), `withdrawal ${id} went ${before} → ${status}`).toBe(true);
    r.seen.set(id, status);
  }

  // Holds outstanding (created + pending, as the database has them) equal the withdrawal_hold account.
  const open = await db
    .selectFrom('withdrawals')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('held'))
    .where('app', '=', r.scope.app)
    .where('livemode', '=', 0)
    .where('status', 'in', ['created', 'pending'])
    .executeTakeFirstOrThrow();
  expect(Number(open.held)).toBe(appPosted.get('withdrawal_hold') ?? 0);
  const modelHeld = m.withdrawals.filter((w) => w.status === 'created' || w.status === 'pending').reduce((s, w) => s + w.amount, 0);
  expect(modelHeld).toBe(m.accounts.withdrawal_hold);

  // Exactly one event per final outcome (succeeded or failed), showing that outcome.
  const events = await db.selectFrom('events').select(['type', 'body']).where('app', '=', r.scope.app).execute();
  const outcomes = events.map((e) => {
    const object = (JSON.parse(e.body) as { data: { object: { id: string; status: string } } }).data.object;
    return { type: e.type, id: object.id, status: object.status };
  });
  const finals = m.withdrawals.filter((w) => w.status === 'succeeded' || w.status === 'failed');
  expect(outcomes.sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual(
    finals.map((w) => ({ type: `balance.withdrawal.${w.status}`, id: w.id, status: w.status })).sort((a, b) => (a.id < b.id ? -1 : 1)),
  );
}

/**
 * Leaves no pending withdrawal of an earlier run behind (a failed run, or one that ended with a
 * retry scheduled): a run's worker rounds must handle its own withdrawals only. Bounded: an
 * unknown answer needs two rounds, everything else one.
 */
async function drainPayouts(h: Harness, clock: ManualClock, worker: PayoutWorker) {
  for (let i = 0; i < 5; i++) {
    clock.advance(60 * 60_000);
    if ((await worker.runOnce()) === 0) break;
  }
  const pending = await h.rt.store.db.selectFrom('withdrawals').select(sql<number>`count(*)`.as('n')).where('status', '=', 'pending').executeTakeFirstOrThrow();
  expect(Number(pending.n), 'no withdrawal of an earlier run is still pending').toBe(0);
}

describeEngines('ledger properties', (engine) => {
  let h: Harness;
  const clock = new ManualClock();
  let worker: PayoutWorker;
  let runs = 0;
  let orders = 0;
  beforeAll(async () => {
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    // One round takes every due withdrawal of a run (they are at most one per command).
    worker = new PayoutWorker(h.rt, { batchSize: MAX_COMMANDS + 1 });
  });
  afterAll(async () => h?.close());

  it('random sequences of money movements and withdrawals keep the ledger balanced and match the model', async () => {
    await fc.assert(
      fc.asyncProperty(startingBalances, fc.commands(operations, { maxCommands: MAX_COMMANDS, size: 'max' }), async (start, cmds) => {
        await drainPayouts(h, clock, worker);
        // Each run gets an app of its own: a clean set of users and order_nos in the same database.
        const app = await createApp(h.rt, { name: `prop ${++runs}` });
        const scope: Scope = { accountId: app.account, app: app.id, livemode: false, requestId: null };
        const users = new Map<string, ModelUser>([['0', { available: 0, withdrawable: 0, disabled: false }]]);
        const accounts = Object.fromEntries(APP_ACCOUNTS.map((a) => [a, 0])) as Record<AppAccount, number>;
        let lines = 0;
        for (const [i, id] of CUSTOMERS.entries()) {
          await createUser(h.rt, scope, { id });
          const withdrawable = start[i]!;
          users.set(id, { available: withdrawable, withdrawable, disabled: false });
          if (withdrawable === 0) continue;
          await createBalanceSettlement(h.rt, scope, { user: id, amount: withdrawable, order_no: `start${i}` });
          accounts.settlement_funding -= withdrawable;
          lines += 1;
        }
        // Fresh order_nos: digits (every channel takes them), never equal to a pooled one.
        const real: Real = { h, clock, worker, scope, nextOrder: () => `9${String(++orders).padStart(9, '0')}`, seen: new Map() };
        const model: Model = { users, orders: new Map(), lines, nowMs: clock.nowMs(), withdrawals: [], accounts };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // Then time passes and the worker finishes what the run confirmed: every pending
        // withdrawal reaches the state the model predicts (an unknown answer takes two rounds).
        for (const step of [new AdvanceClock(10 * 60_000), new RunPayoutWorker(), new AdvanceClock(10 * 60_000), new RunPayoutWorker()]) await step.run(model, real);
        expect(model.withdrawals.filter((w) => w.status === 'pending')).toEqual([]);
      }),
      { numRuns: 30, interruptAfterTimeLimit: 45_000 },
    );
  });
});
