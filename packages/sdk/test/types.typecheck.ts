/**
 * Compile-time tests: `npx tsc -p packages/sdk` (part of `npm test`) checks this file; it is never
 * run. Each `@ts-expect-error` line must fail to compile — if the types ever accept it, tsc
 * reports the directive as unused and the build fails.
 */
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import {
  InvalidRequestError,
  Tixian,
  TixianError,
  webhooks,
  type BalanceTransaction,
  type Event,
  type FastifyLike,
  type IncomingLike,
  type Page,
  type User,
  type Withdrawal,
  type WithdrawalCreateParams,
  type WithdrawalList,
} from '../src/index.ts';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only when T is `true`; the argument lets a value count as used. */
const assertType = <_T extends true>(_used?: void): void => {};

export async function typeTests(tixian: Tixian, rawBody: Buffer, signature: string, pem: string): Promise<void> {
  // ---- params: a valid create compiles, with the app first or from { appId }
  const params: WithdrawalCreateParams = {
    user: 'u1', amount: 100, order_no: '2023', channel: 'unionpay',
    extra: { account: '6225210207078888', name: '张三', open_bank_code: '0308' },
  };
  const created: Withdrawal = await tixian.withdrawals.create('app_1', params);
  await tixian.withdrawals.create(params, { timeoutMs: 5_000 });
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'wx_pub', extra: { openid: 'o1' } });
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', settle_account: '320' });

  // a wrong channel name
  // @ts-expect-error 'paypal' is not a withdrawal channel
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'paypal', extra: { account: 'a', name: 'b' } });
  // a missing required parameter (order_no)
  // @ts-expect-error order_no is required
  await tixian.withdrawals.create({ user: 'u1', amount: 100, channel: 'alipay', extra: { account: 'a@b.c', name: 'x' } });
  // @ts-expect-error amount is required
  await tixian.balanceBonuses.create({ user: 'u1', order_no: '1' });
  // @ts-expect-error alipay needs extra.name
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'alipay', extra: { account: 'a@b.c' } });
  // @ts-expect-error unionpay needs open_bank_code or open_bank
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'unionpay', extra: { account: '6225', name: 'x' } });
  // @ts-expect-error the API ignores settle_account when channel is given: the mix is refused
  await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'alipay', extra: { account: 'a', name: 'b' }, settle_account: '320' });
  // @ts-expect-error amounts are integer fen, not strings
  await tixian.balanceSettlements.create({ user: 'u1', amount: '100', order_no: '1' });
  // @ts-expect-error disabled cannot be combined with profile fields
  await tixian.users.update('u1', { disabled: true, name: 'x' });
  // @ts-expect-error batch status is pending or canceled
  await tixian.batchWithdrawals.create({ withdrawals: ['1'], status: 'succeeded' });
  // @ts-expect-error settle account channel 'unionpay' does not exist (it is bank_account)
  await tixian.settleAccounts.create('u1', { channel: 'unionpay', recipient: { account: '1', name: 'x' } });

  // ---- objects: each method returns its noun
  const user = await tixian.users.retrieve('u1');
  assertType<Equal<typeof user, User>>();
  const balance: number = user.withdrawable_balance;
  // reading a withdrawal field off a user
  // @ts-expect-error a user has no order_no
  const orderNo: string = user.order_no;
  // @ts-expect-error a user has no status
  void user.status;
  void [balance, orderNo, created];

  const w = await tixian.withdrawals.confirm('1701');
  assertType<Equal<typeof w.status, 'created' | 'pending' | 'succeeded' | 'failed' | 'canceled'>>(void w);
  const deleted = await tixian.settleAccounts.del('u1', '320');
  assertType<Equal<typeof deleted.deleted, true>>(void deleted);

  // ---- lists: a page is the list object plus iteration
  const page = await tixian.withdrawals.list({ per_page: 3, status: 'succeeded', created: { gte: 1 } });
  assertType<Equal<typeof page, Page<Withdrawal, WithdrawalList>>>();
  const total: number = page.total_withdrawals_amount;
  const first: Withdrawal | undefined = page.data[0];
  for await (const item of page) assertType<Equal<typeof item, Withdrawal>>(void item);
  for await (const item of tixian.balanceTransactions.list({ user: 'u1', type: 'withdrawal' })) assertType<Equal<typeof item, BalanceTransaction>>(void item);
  for await (const p of page.pages()) void p.has_more;
  const users: User[] = await tixian.users.list().autoPagingToArray({ limit: 10 });
  // @ts-expect-error withdrawal status filter takes statuses only
  await tixian.withdrawals.list({ status: 'done' });
  // @ts-expect-error user lists have no total_withdrawals_amount
  void (await tixian.users.list()).total_withdrawals_amount;
  void [total, first, users];

  // ---- events: type narrows data.object
  const event: Event = webhooks.constructEvent(rawBody, signature, pem);
  if (event.type === 'balance.withdrawal.failed') {
    const failed: Withdrawal = event.data.object;
    const msg: string | null = event.data.object.failure_msg;
    void [failed, msg];
  }
  const retrieved = await tixian.events.retrieve('evt_1');
  assertType<Equal<typeof retrieved, Event>>(void retrieved);
  // @ts-expect-error not an event type we know
  if (event.type === 'charge.succeeded') void 0;
  // @ts-expect-error a withdrawal event carries a withdrawal, not a user
  void event.data.object.withdrawable_balance;

  // ---- errors
  try {
    await tixian.withdrawals.cancel('1701');
  } catch (err) {
    if (err instanceof InvalidRequestError) {
      const p: string | undefined = err.param;
      const s: number | undefined = err.statusCode;
      void [p, s, err.requestId, err.code];
    }
    if (err instanceof TixianError) void err.type;
  }

  // ---- receivers are typed structurally against the real frameworks
  const asFastify = (app: FastifyInstance): FastifyLike => app;
  const asIncoming = (req: IncomingMessage): IncomingLike => req;
  void [asFastify, asIncoming];
  const ok: boolean = webhooks.verifyStandard(rawBody, { 'webhook-id': 'x' }, 'whsec_AAAA', { toleranceS: 60 });
  void ok;
  // @ts-expect-error a parsed body is not a raw body
  webhooks.verify({ id: 'evt' }, signature, pem);
}

/** The README quickstart, verbatim between the markers, so the documented code keeps compiling. */
export async function readmeQuickstart(
  rawBody: Buffer,
  req: { headers: Record<string, string | string[] | undefined> },
  PINGPP_PUBLIC_KEY: string,
  markPaid: (id: string) => void,
  markFailed: (msg: string | null) => void,
): Promise<void> {
  // ---- quickstart
  // 1. API key (and your app). 2. Request signing: your RSA private key; upload its public half.
  const tixian = new Tixian({
    apiKey: 'sk_test_ibbTe5jLGCi5rzfH4OqPW9KC', appId: 'app_1Gqj58ynP0mHeX1q',
    privateKey: readFileSync('your_rsa_private_key.pem'), baseUrl: 'http://127.0.0.1:8080', // omit for Ping++
  });
  // 3. A withdrawal request: status `created`, the amount is held from the user's balance.
  const w = await tixian.withdrawals.create({
    user: 'user_001', amount: 20_000, user_fee: 50, order_no: '2016082913300201', description: '提现',
    channel: 'unionpay', extra: { account: '6225210207078888', name: '张三', open_bank_code: '0308' },
  });
  // 4. Confirm it (`pending`, the payout starts) — or cancel: tixian.withdrawals.cancel(w.id).
  await tixian.withdrawals.confirm(w.id);
  // 5 + 6. Receive the webhook and verify it over the raw body with the platform public key.
  const event = webhooks.constructEvent(rawBody, req.headers['x-pingplusplus-signature'], PINGPP_PUBLIC_KEY);
  if (event.type === 'balance.withdrawal.succeeded') markPaid(event.data.object.id); // data.object: Withdrawal
  else if (event.type === 'balance.withdrawal.failed') markFailed(event.data.object.failure_msg);
  // No webhook yet? retrieve() is authoritative: (await tixian.withdrawals.retrieve(w.id)).status
  // ---- end quickstart
}
