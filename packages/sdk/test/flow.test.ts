import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../../server/test/helpers/harness.ts';
import { startWorkers } from '../../server/src/workers.ts';
import type { Worker } from '../../server/src/workers.ts';
import { upsertEndpoint } from '../../server/src/webhooks/endpoints.ts';
import { createApp } from '../../server/src/services/accounts.ts';
import { updateSignatureSettings } from '../../server/src/services/app_settings.ts';
import {
  AuthenticationError,
  InvalidRequestError,
  SignatureVerificationError,
  Tixian,
  webhooks,
  type Event,
  type Withdrawal,
  type WithdrawalStatus,
} from '../src/index.ts';

/**
 * The SDK against a real tixian server (SQLite, in-process, on a real socket, with the payout
 * worker and webhook dispatcher running and a 0 ms sandbox channel): the seed guide's flow and
 * every resource method.
 */

let h: Harness;
let workers: Worker;
let baseUrl: string;
let tixian: Tixian;

/** A unique suffix per call, so tests never depend on each other's leftovers. */
let seq = 0;
const uniq = (prefix: string) => `${prefix}${Date.now().toString(36)}${(seq++).toString(36)}`;
/** unionpay order numbers are digits only (§6.4): 13 of time, 4 of sequence. */
const digits = () => `${Date.now()}${String(seq++ % 10_000).padStart(4, '0')}`;

/** Received webhook deliveries (raw bytes and headers), for the receiver checks. */
const deliveries: Array<{ raw: Buffer; headers: Record<string, string | string[] | undefined> }> = [];
let receiver: Server;
let standardSecret: string;

beforeAll(async () => {
  h = await Harness.start('sqlite', { config: { workers: true, sandboxDelayMs: 0 } });
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  // Every answer of this client is checked against the platform key (X-Pingplusplus-Signature).
  tixian = new Tixian({ apiKey: h.testKey, baseUrl, appId: h.appId, timeoutMs: 10_000, platformPublicKey: h.rt.platformKey.publicKeyPem });

  // A merchant webhook receiver, written the way the README tells merchants to write one.
  receiver = createServer(async (req, res) => {
    const raw = await webhooks.readRawBody(req);
    deliveries.push({ raw, headers: req.headers });
    res.writeHead(200).end();
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { endpoint } = await upsertEndpoint(h.rt, {
    app: h.appId, livemode: false, url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`, standardWebhooks: true,
  });
  standardSecret = endpoint.secret!;
  workers = startWorkers(h.rt);
});

afterAll(async () => {
  await workers?.stop();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  await h?.close();
});

const FINAL: WithdrawalStatus[] = ['succeeded', 'failed', 'canceled'];

/** Polls `retrieve` until the withdrawal is final: at most 200 × 25 ms. */
async function waitFinal(id: string): Promise<Withdrawal> {
  for (let i = 0; i < 200; i++) {
    const w = await tixian.withdrawals.retrieve(id);
    if (FINAL.includes(w.status)) return w;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`withdrawal ${id} did not reach a final status`);
}

/** Waits for the webhook delivery of one event: at most 200 × 25 ms. */
async function waitDelivery(eventId: string) {
  for (let i = 0; i < 200; i++) {
    const d = deliveries.find((x) => x.raw.includes(eventId));
    if (d) return d;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no webhook delivery of ${eventId}`);
}

async function fundedUser(amount: number): Promise<string> {
  const id = uniq('u');
  await tixian.users.create({ id });
  await tixian.balanceSettlements.create({ user: id, amount, order_no: uniq('fund') });
  return id;
}

describe('the seed guide, step by step', () => {
  it('creates a user, funds it, withdraws, confirms, sees it succeed, cancels another', async () => {
    // Step 1 (API key) and the app id are in the client. Step 2 (signing) is covered below.
    const user = await tixian.users.create({ id: uniq('seed'), name: '张三', metadata: { level: 3 } });
    expect(user).toMatchObject({ object: 'user', name: '张三', available_balance: 0, withdrawable_balance: 0, livemode: false });

    const settlement = await tixian.balanceSettlements.create({ user: user.id, amount: 10_000, order_no: uniq('settle'), description: '结算' });
    expect(settlement).toMatchObject({ object: 'balance_settlement', status: 'succeeded', amount: 10_000, user: user.id });
    expect((await tixian.users.retrieve(user.id)).withdrawable_balance).toBe(10_000);

    // Step 3: the withdrawal request.
    const withdrawal = await tixian.withdrawals.create({
      user: user.id, amount: 2_000, user_fee: 10, order_no: uniq('wd'), description: '提现',
      channel: 'alipay', extra: { account: 'seed@example.com', name: '张三' },
    });
    expect(withdrawal).toMatchObject({ object: 'withdrawal', status: 'created', amount: 2_000, user_fee: 10, channel: 'alipay', app: h.appId });
    expect((await tixian.users.retrieve(user.id)).withdrawable_balance).toBe(8_000); // held at creation

    // Step 4: confirm; the sandbox pays it out.
    const confirmed = await tixian.withdrawals.confirm(withdrawal.id);
    expect(['pending', 'succeeded']).toContain(confirmed.status);
    const done = await waitFinal(withdrawal.id);
    expect(done.status).toBe('succeeded');
    expect(done.time_succeeded).toEqual(expect.any(Number));

    // Step 5: the event, through the events API …
    const events = await tixian.events.list({ type: 'balance.withdrawal.succeeded', limit: 100 }).autoPagingToArray({ limit: 1_000 });
    const event = events.find((e) => e.data.object.id === withdrawal.id);
    expect(event).toBeDefined();
    const again = await tixian.events.retrieve(event!.id);
    expect(again.type).toBe('balance.withdrawal.succeeded');
    expect(again.data.object.status).toBe('succeeded');

    // … and as a webhook: step 6, verifying it with the platform public key (and Standard Webhooks).
    const delivery = await waitDelivery(event!.id);
    const received: Event = webhooks.constructEvent(delivery.raw, delivery.headers['x-pingplusplus-signature'], h.rt.platformKey.publicKeyPem);
    expect(received.id).toBe(event!.id);
    if (received.type !== 'balance.withdrawal.succeeded') throw new Error(`unexpected ${received.type}`);
    expect(received.data.object.id).toBe(withdrawal.id);
    expect(webhooks.verifyStandard(delivery.raw, delivery.headers, standardSecret)).toBe(true);
    const tampered = Buffer.from(delivery.raw);
    tampered[10] = tampered[10]! ^ 1;
    expect(webhooks.verify(tampered, delivery.headers['x-pingplusplus-signature'], h.rt.platformKey.publicKeyPem)).toBe(false);

    // Cancel another: the hold comes back.
    const second = await tixian.withdrawals.create(h.appId, {
      user: user.id, amount: 3_000, order_no: digits(), channel: 'unionpay',
      extra: { account: '6225210207078888', name: '张三', open_bank_code: '0308' },
    });
    expect((await tixian.users.retrieve(user.id)).withdrawable_balance).toBe(5_000);
    const canceled = await tixian.withdrawals.cancel(h.appId, second.id);
    expect(canceled.status).toBe('canceled');
    expect(canceled.time_canceled).toEqual(expect.any(Number));
    expect((await tixian.users.retrieve(user.id)).withdrawable_balance).toBe(8_000);

    // The ledger tells the same story.
    const lines = await tixian.balanceTransactions.list({ user: user.id }).autoPagingToArray({ limit: 100 });
    expect(lines.map((l) => [l.type, l.amount]).sort()).toEqual(
      [['credited', 10_000], ['withdrawal', -2_000], ['withdrawal', -3_000], ['withdrawal_revoked', 3_000]].sort(),
    );
    const line = await tixian.balanceTransactions.retrieve(lines[0]!.id);
    expect(line).toEqual(lines[0]);

    // Confirming a canceled withdrawal is refused, typed.
    const refused = await tixian.withdrawals.confirm(second.id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidRequestError);
    expect((refused as InvalidRequestError).param).toBe('status');
    expect((refused as InvalidRequestError).requestId).toMatch(/.+/);
  });

  it('reports a user-caused payout failure (account ending 0002) as failed, with its event', async () => {
    const user = await fundedUser(1_000);
    const w = await tixian.withdrawals.create({ user, amount: 500, order_no: uniq('wd'), channel: 'wx_pub', extra: { open_id: 'o_wx_0002' } });
    await tixian.withdrawals.confirm(w.id);
    const done = await waitFinal(w.id);
    expect(done.status).toBe('failed');
    expect(done.failure_msg).toEqual(expect.any(String));
    expect((await tixian.users.retrieve(user)).withdrawable_balance).toBe(1_000);
    const events = await tixian.events.list({ type: 'balance.withdrawal.failed' }).autoPagingToArray({ limit: 1_000 });
    const event = events.find((e) => e.data.object.id === w.id);
    expect(event?.type).toBe('balance.withdrawal.failed');
  });
});

describe('every resource method', () => {
  it('users: create, retrieve, list, update (profile, then disabled alone)', async () => {
    const id = uniq('usr');
    const created = await tixian.users.create({ id, email: 'a@example.com', gender: 'FEMALE' });
    expect(created.id).toBe(id);
    expect(await tixian.users.retrieve(id)).toEqual(created);
    const updated = await tixian.users.update(id, { name: '李四', metadata: { vip: true } });
    expect(updated).toMatchObject({ name: '李四', metadata: { vip: true }, email: 'a@example.com' });
    expect((await tixian.users.update(h.appId, id, { disabled: true })).disabled).toBe(true);
    const all = await tixian.users.list().autoPagingToArray({ limit: 10_000 });
    expect(all.map((u) => u.id)).toContain(id);
  });

  it('settleAccounts: create, retrieve, list, del; a withdrawal can pay a settle account', async () => {
    const user = await fundedUser(5_000);
    const sa = await tixian.settleAccounts.create(user, { channel: 'bank_account', recipient: { account: '6214888888888865', name: '王五', type: 'b2c', open_bank_code: '0102' } });
    expect(sa).toMatchObject({ object: 'settle_account', channel: 'bank_account' });
    expect(sa.recipient.account).toBe('621488***8865'); // masked
    expect(await tixian.settleAccounts.retrieve(user, sa.id)).toEqual(sa);
    const other = await tixian.settleAccounts.create(h.appId, user, { channel: 'alipay', recipient: { account: 'ww@example.com', name: '王五' } });
    const listed = await tixian.settleAccounts.list(user);
    expect(listed.data.map((s) => s.id).sort()).toEqual([sa.id, other.id].sort());

    // A bank_account settle account is paid through unionpay, whose order numbers are digits.
    const w = await tixian.withdrawals.create({ user, amount: 1_000, order_no: digits(), settle_account: sa.id });
    expect(w).toMatchObject({ settle_account: sa.id, channel: 'unionpay', status: 'created' });

    const deleted = await tixian.settleAccounts.del(user, other.id);
    expect(deleted).toMatchObject({ id: other.id, deleted: true });
    const gone = await tixian.settleAccounts.retrieve(h.appId, user, other.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(InvalidRequestError);
    expect((gone as InvalidRequestError).statusCode).toBe(404);
  });

  it('balanceBonuses and balanceSettlements: create, retrieve, list', async () => {
    const user = uniq('bon');
    await tixian.users.create({ id: user });
    const bonus = await tixian.balanceBonuses.create({ user, amount: 300, order_no: uniq('b') });
    expect(bonus).toMatchObject({ object: 'balance_bonus', paid: true, amount: 300 });
    expect(await tixian.balanceBonuses.retrieve(bonus.id)).toEqual(bonus);
    expect((await tixian.balanceBonuses.list({ user })).data).toEqual([bonus]);

    const settlement = await tixian.balanceSettlements.create(h.appId, { user, amount: 700, order_no: uniq('s') });
    expect(await tixian.balanceSettlements.retrieve(settlement.id)).toEqual(settlement);
    expect((await tixian.balanceSettlements.list({ user })).data).toEqual([settlement]);
    const u = await tixian.users.retrieve(user);
    expect([u.available_balance, u.withdrawable_balance]).toEqual([1_000, 700]);
  });

  it('balanceTransfers: create, retrieve, list', async () => {
    const from = await fundedUser(1_000);
    const to = uniq('to');
    await tixian.users.create({ id: to });
    const transfer = await tixian.balanceTransfers.create({ user: from, recipient: to, amount: 400, user_fee: 10, order_no: uniq('t') });
    expect(transfer).toMatchObject({ object: 'balance_transfer', status: 'succeeded', amount: 400, user_fee: 10, user: from, recipient: to });
    expect(await tixian.balanceTransfers.retrieve(transfer.id)).toEqual(transfer);
    expect((await tixian.balanceTransfers.list({ user: from })).data).toEqual([transfer]);
    expect((await tixian.users.retrieve(from)).withdrawable_balance).toBe(590);
  });

  it('withdrawals.list: filters, total_withdrawals_amount, both pagination schemes', async () => {
    const user = await fundedUser(10_000);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push((await tixian.withdrawals.create({ user, amount: 100 + i, order_no: uniq('wd'), channel: 'alipay', extra: { account: 'l@example.com', name: 'L' } })).id);
    }
    const page = await tixian.withdrawals.list({ user, per_page: 2 });
    expect(page.object).toBe('list');
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    expect(page.total_withdrawals_amount).toBe(100 + 101 + 102 + 103 + 104);
    const byPage: string[] = [];
    for await (const w of page) byPage.push(w.id);
    const byCursor: string[] = [];
    for await (const w of tixian.withdrawals.list({ user, limit: 2 })) byCursor.push(w.id);
    expect(byPage).toEqual([...made].reverse()); // newest first
    expect(byCursor).toEqual(byPage);
    const created = await tixian.withdrawals.list({ user, status: 'created', channel: 'alipay', created: { gte: 0 } });
    expect(created.data).toHaveLength(5);
  });

  it('batchWithdrawals: create (confirm several), retrieve, list', async () => {
    const user = await fundedUser(3_000);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await tixian.withdrawals.create({ user, amount: 500, order_no: uniq('wd'), channel: 'alipay', extra: { account: 'batch@example.com', name: 'B' } })).id);
    }
    const batch = await tixian.batchWithdrawals.create({ withdrawals: ids, metadata: { run: 1 } });
    expect(batch).toMatchObject({ object: 'batch_withdrawal', count: 3, amount: 1_500 });
    expect(batch.withdrawals.object).toBe('list');
    expect(batch.withdrawals.data.map((w) => w.id).sort()).toEqual([...ids].sort());
    for (const id of ids) expect((await waitFinal(id)).status).toBe('succeeded');
    const retrieved = await tixian.batchWithdrawals.retrieve(batch.id);
    expect(retrieved.id).toBe(batch.id);
    const listed = await tixian.batchWithdrawals.list().autoPagingToArray({ limit: 1_000 });
    expect(listed.map((b) => b.id)).toContain(batch.id);
  });

  it('events: retrieve and list are typed and paginate', async () => {
    const page = await tixian.events.list({ limit: 1 });
    expect(page.object).toBe('list');
    const first = page.data[0];
    expect(first?.object).toBe('event');
    expect(await tixian.events.retrieve(first!.id)).toMatchObject({ id: first!.id, type: first!.type });
  });
});

describe('errors and retries against the real server', () => {
  it('maps 404 and 401 with param, code and the request id', async () => {
    const missing = (await tixian.withdrawals.retrieve('1701000000000000000').catch((e: unknown) => e)) as InvalidRequestError;
    expect(missing).toBeInstanceOf(InvalidRequestError);
    expect([missing.statusCode, missing.param, missing.code]).toEqual([404, 'id', 'resource_missing']);
    expect(missing.requestId).toMatch(/.+/);
    const badKey = new Tixian({ apiKey: 'sk_test_' + 'A'.repeat(24), baseUrl, appId: h.appId });
    const auth = await badKey.users.retrieve('0').catch((e: unknown) => e);
    expect(auth).toBeInstanceOf(AuthenticationError);
    expect((auth as AuthenticationError).statusCode).toBe(401);
  });

  it('English messages with acceptLanguage, Chinese by default', async () => {
    const en = new Tixian({ apiKey: h.testKey, baseUrl, appId: h.appId, acceptLanguage: 'en-US' });
    await expect(en.users.retrieve('nobody')).rejects.toThrow(/No such user/);
    await expect(tixian.users.retrieve('nobody')).rejects.toThrow(/未找到/);
  });

  /** A fetch that lets the server do the work but loses the answer of the next matching request. */
  function lossyClient(matches: (method: string, url: string) => boolean) {
    let armed = true;
    const calls: string[] = [];
    const lossy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const method = init?.method ?? 'GET';
      calls.push(method);
      if (armed && matches(method, String(input))) {
        armed = false;
        await res.arrayBuffer();
        throw new TypeError('fetch failed', { cause: new Error('simulated: the answer was lost') });
      }
      return res;
    };
    return { client: new Tixian({ apiKey: h.testKey, baseUrl, appId: h.appId, fetch: lossy }), calls };
  }

  it('a create whose answer was lost is retried with its order_no and returns the one object', async () => {
    const user = await fundedUser(1_000);
    const { client, calls } = lossyClient((m, url) => m === 'POST' && url.endsWith('/withdrawals'));
    const w = await client.withdrawals.create({ user, amount: 600, order_no: uniq('wd'), channel: 'alipay', extra: { account: 'r@example.com', name: 'R' } });
    expect(calls).toEqual(['POST', 'POST']);
    const all = await tixian.withdrawals.list({ user });
    expect(all.data.map((x) => x.id)).toEqual([w.id]); // one withdrawal, not two
    expect((await tixian.users.retrieve(user)).withdrawable_balance).toBe(400); // held once
  });

  it('a confirm whose answer was lost is retried; the refusal of the repeat is recognised as success', async () => {
    const user = await fundedUser(1_000);
    const w = await tixian.withdrawals.create({ user, amount: 100, order_no: uniq('wd'), channel: 'alipay', extra: { account: 'c@example.com', name: 'C' } });
    const { client, calls } = lossyClient((m) => m === 'PUT');
    const confirmed = await client.withdrawals.confirm(w.id);
    expect(calls).toEqual(['PUT', 'PUT', 'GET']);
    expect(['pending', 'succeeded']).toContain(confirmed.status);
    expect((await waitFinal(w.id)).status).toBe('succeeded');
  });

  it('a user create whose answer was lost is not retried (a repeat would be refused as a duplicate)', async () => {
    const { client, calls } = lossyClient((m) => m === 'POST');
    const id = uniq('lost');
    await expect(client.users.create({ id })).rejects.toThrow(/answer was lost|failed before an answer/);
    expect(calls).toEqual(['POST']);
    expect((await tixian.users.retrieve(id)).id).toBe(id); // it was created all the same
  });
});

/** Signatures against the real server (the byte-level checks are in transport.test.ts). */
describe('signatures against the real server', () => {
  /** A second app of the same account that requires signed requests in test mode. */
  async function signedApp() {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const app = await createApp(h.rt, { name: 'signed' });
    await updateSignatureSettings(h.rt, app.id, {
      rsa_public_key: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      require_signature_test: true,
    });
    return { appId: app.id, privateKey: pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() };
  }

  it(`signed POST/PUT/GET/DELETE pass where signatures are required; unsigned or wrongly signed POSTs are refused`, async () => {
    const { appId, privateKey } = await signedApp();
    const signed = new Tixian({ apiKey: h.testKey, baseUrl, appId, privateKey });
    const user = uniq('sig');
    await signed.users.create({ id: user });
    await signed.balanceSettlements.create({ user, amount: 1_000, order_no: uniq('s') });
    const sa = await signed.settleAccounts.create(user, { channel: 'alipay', recipient: { account: 's@example.com', name: 'S' } });
    const w = await signed.withdrawals.create({ user, amount: 100, order_no: uniq('wd'), channel: 'alipay', extra: { account: 's@example.com', name: 'S' } });
    expect((await signed.withdrawals.cancel(w.id)).status).toBe('canceled');
    expect((await signed.withdrawals.list({ user, per_page: 5, created: { gte: 0 } })).data).toHaveLength(1);
    expect((await signed.settleAccounts.del(user, sa.id)).deleted).toBe(true);

    const unsigned = new Tixian({ apiKey: h.testKey, baseUrl, appId });
    const missing = (await unsigned.users.create({ id: uniq('nosig') }).catch((e: unknown) => e)) as InvalidRequestError;
    expect(missing).toBeInstanceOf(InvalidRequestError);
    expect([missing.statusCode, missing.code]).toEqual([400, 'signature_missing']);
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const wrong = new Tixian({ apiKey: h.testKey, baseUrl, appId, privateKey: otherKey });
    const invalid = (await wrong.users.create({ id: uniq('badsig') }).catch((e: unknown) => e)) as InvalidRequestError;
    expect([invalid.constructor, invalid.code]).toEqual([InvalidRequestError, 'signature_invalid']);
    // A signed GET is verified too, so a wrong signature there is refused (the right one passed above).
    await expect(wrong.withdrawals.list({ user, created: { gte: 0 } })).rejects.toMatchObject({ code: 'signature_invalid' });
    // Reads stay open to unsigned clients (the docs only mandate signatures on POST and PUT).
    expect((await unsigned.users.retrieve(user)).id).toBe(user);
  });

  it(`answers carry X-Pingplusplus-Signature, which platformPublicKey checks`, async () => {
    const checked = new Tixian({ apiKey: h.testKey, baseUrl, appId: h.appId, platformPublicKey: h.rt.platformKey.publicKeyPem });
    const user = uniq('rsig');
    await checked.users.create({ id: user, name: '签名' });
    expect((await checked.users.retrieve(user)).name).toBe('签名');
    expect((await checked.users.list({ per_page: 1 })).data).toHaveLength(1);
    // Another platform key does not verify them.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const wrong = new Tixian({ apiKey: h.testKey, baseUrl, appId: h.appId, platformPublicKey: other });
    await expect(wrong.users.retrieve(user)).rejects.toBeInstanceOf(SignatureVerificationError);
  });
});
