import { afterAll, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { createApp } from '../src/services/accounts.ts';
import { createUser, updateUser } from '../src/services/users.ts';
import { createBalanceBonus } from '../src/services/balance_bonuses.ts';
import { createBalanceSettlement } from '../src/services/balance_settlements.ts';
import { createBalanceTransfer } from '../src/services/balance_transfers.ts';
import { ApiError } from '../src/domain/errors.ts';
import type { Scope } from '../src/services/common.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

/**
 * Model-based test of the money path: random sequences of ledger operations run through the
 * service layer against a tiny model (balances per user, which order_nos were used with which
 * parameters). After every step the journal must balance, no balance may be negative,
 * withdrawable ≤ available, balances must equal their journal, and the API must show the
 * balances the model expects.
 *
 * To add an operation (withdrawals, next): write one class implementing `Op` (what the model
 * expects, and the service call), and add its arbitrary to `operations` below.
 */

// Amounts of a similar size, so that transfers land on every side of a balance (withdrawable
// short but available enough, exactly enough, …). Balances stay far below 2^31−1: the cap has
// its own test in invalid_input.
const amount = fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.constantFrom(1, 100, 500, 1_000), fc.integer({ min: 1, max: 1_000_000 }));

/** Who operations name: three customers, the system user "0" and someone who does not exist. */
const CUSTOMERS = ['alice', 'bob', 'carol'];
const userName = fc.oneof({ arbitrary: fc.constantFrom(...CUSTOMERS), weight: 4 }, { arbitrary: fc.constantFrom('0', 'ghost'), weight: 1 });
/** Order numbers: a small shared pool (so replays and duplicates happen) or a fresh one. */
const orderNo = fc.oneof(fc.constantFrom('p1', 'p2', 'p3'), fc.constant(null));

interface ModelUser {
  available: number;
  withdrawable: number;
  disabled: boolean;
}

interface Model {
  users: Map<string, ModelUser>;
  /** `<resource>:<order_no>` → the parameters it was first used with and the object made. */
  orders: Map<string, { params: string; id: string }>;
  /** balance_transactions the app should have. */
  lines: number;
}

interface Real {
  h: Harness;
  scope: Scope;
  nextOrder: () => string;
}

/** The error the model expects (status 400 unless said), or null for success. */
type Expected = { status?: number; param: string; code: string } | null;

/** The balance changes a successful operation makes: user → [available delta, withdrawable delta]. */
type Deltas = Map<string, [number, number]>;

interface Op {
  /** Predicts the outcome from the model alone, in the same order the service checks things. */
  expect(m: Model, orderKey: string): { error: Expected; deltas: Deltas; lines: number };
  /** Calls the service; returns the id of the object made (or replayed). */
  call(r: Real, orderNo: string): Promise<string>;
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
    return { error: null, deltas: new Map([[this.user, [this.amount, withdrawable]]]) as Deltas, lines: 1 };
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
    return { error: null, deltas, lines: 2 };
  }
  async call(r: Real, order_no: string) {
    const t = await createBalanceTransfer(r.h.rt, r.scope, { user: this.user, recipient: this.recipient, amount: this.amount, user_fee: this.fee, order_no });
    return t.id;
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
    const order = this.pooledOrderNo ?? r.nextOrder();
    const key = `${this.op.resource}:${order}`;
    const predicted = this.op.expect(m, key);
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
      else m.orders.set(key, { params: JSON.stringify(this.op.params), id: id! });
      for (const [user, [available, withdrawable]] of predicted.deltas) {
        const u = m.users.get(user)!;
        u.available += available;
        u.withdrawable += withdrawable;
      }
      m.lines += predicted.lines;
      if (predicted.lines > 0) await checkNewestLines(r, m, id!, [...predicted.deltas.keys()]);
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

const credit = fc
  .tuple(fc.constantFrom('bonus' as const, 'settlement' as const), userName, amount, orderNo)
  .map(([kind, user, a, o]) => new OrderCommand(new Credit(kind, user, a), o));
// Transfers lean small, so that most senders can afford them, and mostly go between two people.
const parties = fc.oneof({ arbitrary: fc.tuple(userName, userName).filter(([a, b]) => a !== b), weight: 5 }, { arbitrary: fc.tuple(userName, userName), weight: 1 });
const transfer = fc
  .tuple(parties, fc.oneof(fc.integer({ min: 1, max: 500 }), amount), fc.constantFrom(0, 0, 1, 250), orderNo)
  .map(([[from, to], a, fee, o]) => new OrderCommand(new Transfer(from, to, a, fee), o));
const setDisabled = fc.tuple(userName, fc.boolean()).map(([user, disabled]) => new SetDisabled(user, disabled));

/**
 * The operations the random sequences are made of. fc.commands picks each entry equally often,
 * so an entry listed twice comes up twice as often. Add withdrawals here.
 */
const operations: fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] = [credit, credit, transfer, transfer, setDisabled];

/** The newest balance_transactions of the users a movement touched show it, with the balance after it. */
async function checkNewestLines(r: Real, m: Model, source: string, users: string[]) {
  for (const user of users) {
    const res = await r.h.request('GET', `/v1/apps/${r.scope.app}/balance_transactions?user=${user}&per_page=1`);
    const line = res.json.data[0];
    expect(line.source).toBe(source);
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
  const report = await verifyLedger(db);
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
}

describeEngines('ledger properties', (engine) => {
  let h: Harness;
  let runs = 0;
  let orders = 0;
  beforeAll(async () => {
    h = await Harness.start(engine);
  });
  afterAll(async () => h?.close());

  it('random sequences of money movements keep the ledger balanced and match the model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(operations, { maxCommands: 30, size: 'max' }), async (cmds) => {
        // Each run gets an app of its own: a clean set of users and order_nos in the same database.
        const app = await createApp(h.rt, { name: `prop ${++runs}` });
        const scope: Scope = { accountId: app.account, app: app.id, livemode: false, requestId: null };
        const users = new Map<string, ModelUser>([['0', { available: 0, withdrawable: 0, disabled: false }]]);
        for (const id of CUSTOMERS) {
          await createUser(h.rt, scope, { id });
          users.set(id, { available: 0, withdrawable: 0, disabled: false });
        }
        const real: Real = { h, scope, nextOrder: () => `f${++orders}` };
        await fc.asyncModelRun(() => ({ model: { users, orders: new Map(), lines: 0 }, real }), cmds);
      }),
      { numRuns: 30, interruptAfterTimeLimit: 45_000 },
    );
  });
});
