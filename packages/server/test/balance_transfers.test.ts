import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk, type PingppClient } from './helpers/pingpp.ts';
import { appAccount, type AppAccount } from '../src/ledger/ledger.ts';


let orderSeq = 0;
const orderNo = (prefix = 'bt') => `${prefix}${Date.now().toString(36)}${(orderSeq++).toString(36)}`;

describeEngines('balance_transfers', (engine) => {
  let h: Harness;
  let sdk: PingppClient;

  const transfer = (body: Record<string, unknown>) => h.request('POST', h.appPath('/balance_transfers'), { body });
  const balances = async (user: string) => {
    const res = await h.request('GET', h.appPath(`/users/${user}`));
    return { available: res.json.available_balance as number, withdrawable: res.json.withdrawable_balance as number };
  };
  /** Sum of an app ledger account's postings (app accounts have no projection row). */
  const appBalance = async (kind: AppAccount) => {
    const r = await h.rt.store.db.selectFrom('postings').select((eb) => eb.fn.sum<number>('amount').as('s'))
      .where('account', '=', appAccount(h.appId, false, kind)).executeTakeFirstOrThrow();
    return Number(r.s ?? 0);
  };

  beforeAll(async () => {
    h = await Harness.start(engine);
    sdk = await officialSdk(h);
  });
  afterAll(async () => h?.close());

  describe('with the official Node SDK', () => {
    it('creates, retrieves and lists; money moves with the fee to fee_income and two transfer lines', async () => {
      await h.createUser('sdk_from');
      await h.createUser('sdk_to');
      await h.fund('sdk_from', 10_000);
      const feeBefore = await appBalance('fee_income');

      const order = orderNo('sdk');
      const bt = await sdk.balanceTransfers.create(h.appId, {
        user: 'sdk_from', recipient: 'sdk_to', amount: 3000, user_fee: 25, order_no: order,
        description: '转给朋友', metadata: { memo: 'dinner' },
      });
      expect(bt).toMatchObject({
        object: 'balance_transfer', app: h.appId, livemode: false, status: 'succeeded', amount: 3000, user_fee: 25,
        order_no: order, user: 'sdk_from', recipient: 'sdk_to', description: '转给朋友', metadata: { memo: 'dinner' },
      });
      expect(bt.id).toMatch(/^[1-9]\d{18}$/);
      expect(Number.isInteger(bt.created)).toBe(true);

      // Users show up-to-date balances at once.
      expect(await balances('sdk_from')).toEqual({ available: 10_000 - 3025, withdrawable: 10_000 - 3025 });
      expect(await balances('sdk_to')).toEqual({ available: 3000, withdrawable: 3000 });
      expect(await appBalance('fee_income')).toBe(feeBefore + 25);

      const out = await h.request('GET', h.appPath(`/balance_transactions/${bt.user_balance_transaction}`));
      const into = await h.request('GET', h.appPath(`/balance_transactions/${bt.recipient_balance_transaction}`));
      expect(out.json).toMatchObject({ type: 'transfer', user: 'sdk_from', amount: -3025, available_balance: 6975, source: bt.id, description: '转给朋友' });
      expect(into.json).toMatchObject({ type: 'transfer', user: 'sdk_to', amount: 3000, available_balance: 3000, source: bt.id });

      expect(await sdk.balanceTransfers.retrieve(h.appId, bt.id)).toEqual(bt);
      const list = await sdk.balanceTransfers.list(h.appId, { page: 1, per_page: 5, user: 'sdk_to' });
      expect(list).toMatchObject({ object: 'list', url: `/v1/apps/${h.appId}/balance_transfers`, has_more: false });
      expect(list.data).toEqual([bt]);

      const err = await sdk.balanceTransfers.create(h.appId, { user: 'sdk_from', recipient: 'sdk_from', amount: 1, order_no: orderNo() }).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'PingppInvalidRequest', rawType: 'invalid_request_error', param: 'recipient' });
      expect((await h.verify()).ok).toBe(true);
    });
  });

  describe('create', () => {
    it('may send to the system user "0"; the fee-free transfer posts no fee', async () => {
      await h.createUser('to_platform');
      await h.fund('to_platform', 500);
      const zeroBefore = await balances('0');
      const feeBefore = await appBalance('fee_income');
      const res = await transfer({ user: 'to_platform', recipient: '0', amount: 200, order_no: orderNo() });
      expect(res.status, res.body).toBe(200);
      expect(res.json).toMatchObject({ recipient: '0', user_fee: 0, amount: 200 });
      expect(await balances('0')).toEqual({ available: zeroBefore.available + 200, withdrawable: zeroBefore.withdrawable + 200 });
      expect(await appBalance('fee_income')).toBe(feeBefore);
      const postings = await h.rt.store.db.selectFrom('postings').innerJoin('journal_entries', 'journal_entries.id', 'postings.entry_id')
        .select('postings.amount').where('journal_entries.source', '=', res.json.id).execute();
      expect(postings.map((p) => p.amount).sort((a, b) => a - b)).toEqual([-200, 200]);
    });

    it('spends only withdrawable money: bonus money cannot be transferred', async () => {
      await h.createUser('bonus_only');
      await h.createUser('bonus_to');
      await h.request('POST', h.appPath('/balance_bonuses'), { body: { user: 'bonus_only', amount: 1000, order_no: orderNo('bonus') } });
      await h.fund('bonus_only', 100);
      const before = await h.snapshot();
      const res = await transfer({ user: 'bonus_only', recipient: 'bonus_to', amount: 101, order_no: orderNo() });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ param: 'amount', code: 'insufficient_balance' });
      expect(await h.snapshot()).toEqual(before);
      const ok = await transfer({ user: 'bonus_only', recipient: 'bonus_to', amount: 100, order_no: orderNo() });
      expect(ok.status).toBe(200);
      expect(await balances('bonus_only')).toEqual({ available: 1000, withdrawable: 0 });
    });

    it('an identical retry returns the first transfer and moves money once; other parameters are a duplicate', async () => {
      await h.createUser('retry_from');
      await h.createUser('retry_to');
      await h.fund('retry_from', 1000);
      const order = orderNo('retry');
      const first = await transfer({ user: 'retry_from', recipient: 'retry_to', amount: 100, order_no: order });
      // Key order differs and user_fee 0 is spelled out (Go sends it, Node omits it): the same request.
      const again = await transfer({ user_fee: 0, order_no: order, amount: 100, recipient: 'retry_to', user: 'retry_from' });
      expect(again.status).toBe(200);
      expect(again.json).toEqual(first.json);
      const concurrent = await Promise.all(Array.from({ length: 5 }, () => transfer({ user: 'retry_from', recipient: 'retry_to', amount: 100, order_no: order })));
      expect(concurrent.every((r) => r.status === 200 && r.json.id === first.json.id)).toBe(true);
      expect(await balances('retry_from')).toEqual({ available: 900, withdrawable: 900 });

      const before = await h.snapshot();
      for (const other of [{ amount: 101 }, { user_fee: 1 }, { description: 'x' }, { recipient: '0' }]) {
        const res = await transfer({ user: 'retry_from', recipient: 'retry_to', amount: 100, order_no: order, ...other });
        expect(res.status, JSON.stringify(other)).toBe(400);
        expect(res.json.error).toMatchObject({ param: 'order_no', code: 'duplicate_order_no' });
      }
      expect(await h.snapshot()).toEqual(before);
    });

    it('concurrent transfers racing for the same money: exactly the affordable ones succeed', async () => {
      await h.createUser('race_from');
      await h.createUser('race_to');
      await h.fund('race_from', 1000);
      const results = await Promise.all(
        Array.from({ length: 12 }, () => transfer({ user: 'race_from', recipient: 'race_to', amount: 100, user_fee: 25, order_no: orderNo('race') })),
      );
      // 1000 affords eight transfers of 125.
      expect(results.filter((r) => r.status === 200)).toHaveLength(8);
      expect(results.filter((r) => r.status !== 200).every((r) => r.status === 400 && r.json.error.code === 'insufficient_balance')).toBe(true);
      expect(await balances('race_from')).toEqual({ available: 0, withdrawable: 0 });
      expect(await balances('race_to')).toEqual({ available: 800, withdrawable: 800 });
    });

    describe('invalid input answers 4xx naming the parameter and changes nothing', () => {
      beforeAll(async () => {
        await h.createUser('inv_a');
        await h.createUser('inv_b');
        await h.createUser('inv_off');
        await h.fund('inv_a', 1000);
        await h.fund('inv_off', 1000);
        await h.request('PUT', h.appPath('/users/inv_off'), { body: { disabled: true } });
        const dup = await transfer({ user: 'inv_a', recipient: 'inv_b', amount: 1, order_no: 'inv_dup_order' });
        expect(dup.status).toBe(200);
      });

      const ok = { user: 'inv_a', recipient: 'inv_b', amount: 100 };
      const cases: [string, Record<string, unknown>, string, string?][] = [
        ['transfer to self', { ...ok, recipient: 'inv_a' }, 'recipient'],
        ['unknown recipient', { ...ok, recipient: 'nobody' }, 'recipient', 'user_not_found'],
        ['unknown sender', { ...ok, user: 'nobody' }, 'user', 'user_not_found'],
        ['system user "0" as sender', { ...ok, user: '0' }, 'user'],
        ['disabled sender', { ...ok, user: 'inv_off' }, 'user', 'user_disabled'],
        ['disabled recipient', { ...ok, recipient: 'inv_off' }, 'recipient', 'user_disabled'],
        ['missing user', { recipient: 'inv_b', amount: 100 }, 'user'],
        ['missing recipient', { user: 'inv_a', amount: 100 }, 'recipient'],
        ['recipient not a user id', { ...ok, recipient: 'a b' }, 'recipient'],
        ['recipient a number', { ...ok, recipient: 0 }, 'recipient'],
        ['missing amount', { user: 'inv_a', recipient: 'inv_b' }, 'amount'],
        ['amount 0', { ...ok, amount: 0 }, 'amount'],
        ['amount negative', { ...ok, amount: -100 }, 'amount'],
        ['amount fractional', { ...ok, amount: 1.5 }, 'amount'],
        ['amount too big', { ...ok, amount: 2_147_483_648 }, 'amount'],
        ['amount a string', { ...ok, amount: '100' }, 'amount'],
        ['user_fee negative', { ...ok, user_fee: -1 }, 'user_fee'],
        ['user_fee fractional', { ...ok, user_fee: 0.5 }, 'user_fee'],
        ['amount + user_fee above 2^31-1', { ...ok, amount: 2_147_483_647, user_fee: 1 }, 'user_fee'],
        ['insufficient balance', { ...ok, amount: 1001 }, 'amount', 'insufficient_balance'],
        ['insufficient only with the fee', { ...ok, amount: 999, user_fee: 2 }, 'amount', 'insufficient_balance'],
        ['order_no with a space', { ...ok, order_no: 'a b' }, 'order_no'],
        ['order_no too long', { ...ok, order_no: 'x'.repeat(65) }, 'order_no'],
        ['duplicate order_no with other params', { ...ok, order_no: 'inv_dup_order' }, 'order_no', 'duplicate_order_no'],
        ['description too long', { ...ok, description: 'd'.repeat(256) }, 'description'],
        ['metadata nested', { ...ok, metadata: { a: { b: 1 } } }, 'metadata[a]'],
        ['unknown key', { ...ok, channel: 'balance' }, 'channel'],
      ];
      it.each(cases)('%s', async (_name, body, param, code) => {
        const before = await h.snapshot();
        const full = 'order_no' in body ? body : { ...body, order_no: orderNo('inv') };
        const res = await transfer(full);
        expect(res.status, res.body).toBe(400);
        expect(res.json.error.type).toBe('invalid_request_error');
        expect(res.json.error.param).toBe(param);
        if (code) expect(res.json.error.code).toBe(code);
        expect(await h.snapshot()).toEqual(before);
      });

      it('missing order_no', async () => {
        const before = await h.snapshot();
        const res = await transfer(ok);
        expect(res.status).toBe(400);
        expect(res.json.error).toMatchObject({ param: 'order_no', code: 'missing_parameter' });
        expect(await h.snapshot()).toEqual(before);
      });

      it('a body that is not a JSON object', async () => {
        const before = await h.snapshot();
        const res = await h.request('POST', h.appPath('/balance_transfers'), { rawBody: '[1]', headers: { 'content-type': 'application/json' } });
        expect(res.status).toBe(400);
        expect(res.json.error.type).toBe('invalid_request_error');
        expect(await h.snapshot()).toEqual(before);
      });
    });
  });

  describe('retrieve and list', () => {
    it('retrieve answers 404 param id for unknown ids and for the other mode', async () => {
      await h.createUser('seen_from');
      await h.createUser('seen_to');
      await h.fund('seen_from', 100);
      const bt = (await transfer({ user: 'seen_from', recipient: 'seen_to', amount: 10, order_no: orderNo() })).json;
      const unknown = await h.request('GET', h.appPath('/balance_transfers/660000'));
      expect(unknown.status).toBe(404);
      expect(unknown.json.error).toMatchObject({ type: 'invalid_request_error', param: 'id', message: '未找到 balance_transfer : 660000。' });
      expect((await h.request('GET', h.appPath(`/balance_transfers/${bt.id}`), { key: h.liveKey })).status).toBe(404);
      expect((await h.request('GET', h.appPath(`/balance_transfers/${bt.id}?`))).json).toEqual(bt);
    });

    it('filters by user (sender or recipient) and recipient; paginates with pages and cursors', async () => {
      for (const u of ['lx', 'ly', 'lz']) await h.createUser(u);
      await h.fund('lx', 1000);
      await h.fund('ly', 1000);
      const ids: string[] = [];
      const send = async (user: string, recipient: string) => {
        const res = await transfer({ user, recipient, amount: 10, order_no: orderNo('list') });
        expect(res.status).toBe(200);
        ids.unshift(res.json.id); // newest first, as lists answer
        return res.json.id as string;
      };
      const xy = await send('lx', 'ly');
      const yz = await send('ly', 'lz');
      const zx = await send('lz', 'lx');
      const xy2 = await send('lx', 'ly');
      const ofList = async (query: string) =>
        (await h.request('GET', h.appPath(`/balance_transfers?${query}`))).json.data.map((t: { id: string }) => t.id);
      expect(await ofList('user=lx')).toEqual([xy2, zx, xy]);
      expect(await ofList('user=lz')).toEqual([zx, yz]);
      expect(await ofList('recipient=ly')).toEqual([xy2, xy]);
      expect(await ofList('user=lx&recipient=ly')).toEqual([xy2, xy]);
      expect(await ofList('user=nobody')).toEqual([]);

      const p1 = await h.request('GET', h.appPath('/balance_transfers?user=lx&page=1&per_page=2'));
      const p2 = await h.request('GET', h.appPath('/balance_transfers?user=lx&page=2&per_page=2'));
      expect(p1.json.has_more).toBe(true);
      expect(p2.json.has_more).toBe(false);
      expect([...p1.json.data, ...p2.json.data].map((t: { id: string }) => t.id)).toEqual([xy2, zx, xy]);
      expect(await ofList(`user=lx&limit=1&starting_after=${xy2}`)).toEqual([zx]);
      expect(await ofList(`user=lx&limit=5&ending_before=${xy}`)).toEqual([xy2, zx]);
      const bad = await h.request('GET', h.appPath('/balance_transfers?limit=0'));
      expect(bad.status).toBe(400);
      expect(bad.json.error.param).toBe('limit');
    });
  });

  describe('concurrency', () => {
    /**
     * What one operation did to the money, as the test's own model of the ledger. `id` is the
     * object the server answered with: a replayed create (same id) is counted once. Withdrawals
     * join the ring by adding ops to `ringOps` that return their effect the same way (e.g. the
     * user −amount and `withdrawal_hold` +amount), and by listing their app accounts in `tracked`.
     */
    interface Outcome {
      status: number;
      code?: string;
      id?: string;
      users: Record<string, number>;
      apps: Partial<Record<AppAccount, number>>;
    }
    type Op = () => Promise<Outcome>;

    const transferOp = (user: string, recipient: string, amount: number, userFee: number, order: string): Op => async () => {
      const res = await transfer({ user, recipient, amount, user_fee: userFee, order_no: order });
      if (res.status !== 200) return { status: res.status, code: res.json?.error?.code, users: {}, apps: {} };
      return { status: 200, id: res.json.id, users: { [user]: -(amount + userFee), [recipient]: amount }, apps: { fee_income: userFee } };
    };

    const withdrawalOp = (user: string, amount: number, order: string): Op => async () => {
      const res = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user, amount, channel: 'alipay', order_no: order.replace(/[^0-9A-Za-z]/g, ''), extra: { account: 'ring@example.com', name: '环' } },
      });
      if (res.status !== 200) return { status: res.status, code: res.json?.error?.code, users: {}, apps: {} };
      return { status: 200, id: res.json.id, users: { [user]: -amount }, apps: { withdrawal_hold: amount } };
    };

    /** Deterministic pseudo-random numbers, so a failure can be replayed. */
    const lcg = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

    it('many parallel transfers around a ring (both directions) and withdrawals: no deadlock, no negative balance, money conserved', async () => {
      const ring = ['ring_a', 'ring_b', 'ring_c'];
      const initial = 1000;
      for (const u of ring) {
        await h.createUser(u);
        await h.fund(u, initial);
      }
      const tracked: AppAccount[] = ['fee_income', 'withdrawal_hold'];
      const appsBefore = Object.fromEntries(await Promise.all(tracked.map(async (k) => [k, await appBalance(k)] as const)));

      const random = lcg(engine === 'sqlite' ? 7 : 11);
      const ringOps: Op[] = [];
      for (let round = 0; round < 25; round++) {
        for (let i = 0; i < ring.length; i++) {
          const from = ring[i]!;
          const forward = ring[(i + 1) % ring.length]!;
          const backward = ring[(i + ring.length - 1) % ring.length]!;
          ringOps.push(transferOp(from, forward, 1 + Math.floor(random() * 400), Math.floor(random() * 10), orderNo('ring')));
          ringOps.push(transferOp(from, backward, 1 + Math.floor(random() * 400), Math.floor(random() * 10), orderNo('ring')));
          // Withdrawals of the same users race the transfers for the same withdrawable balance.
          if (round % 5 === 0) ringOps.push(withdrawalOp(from, 1 + Math.floor(random() * 300), orderNo('ringw')));
        }
      }
      // A retried create racing its original: must move money once.
      const replayed = orderNo('ringdup');
      for (let i = 0; i < 4; i++) ringOps.push(transferOp('ring_a', 'ring_b', 50, 1, replayed));
      // Shuffle so directions and users interleave.
      for (let i = ringOps.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [ringOps[i], ringOps[j]] = [ringOps[j]!, ringOps[i]!];
      }

      const outcomes = await Promise.all(ringOps.map((op) => op()));

      for (const o of outcomes) {
        expect(o.status === 200 || (o.status === 400 && o.code === 'insufficient_balance'), JSON.stringify(o)).toBe(true);
      }
      const succeeded = new Map(outcomes.filter((o) => o.status === 200).map((o) => [o.id!, o]));
      expect(succeeded.size).toBeGreaterThan(0);

      const expectedUsers: Record<string, number> = Object.fromEntries(ring.map((u) => [u, initial]));
      const expectedApps: Record<string, number> = { ...appsBefore };
      for (const o of succeeded.values()) {
        for (const [u, d] of Object.entries(o.users)) expectedUsers[u] = expectedUsers[u]! + d;
        for (const [k, d] of Object.entries(o.apps)) expectedApps[k] = expectedApps[k]! + d!;
      }

      let usersTotal = 0;
      for (const u of ring) {
        const b = await balances(u);
        expect(b.withdrawable, u).toBe(expectedUsers[u]);
        expect(b.available, u).toBe(expectedUsers[u]);
        expect(b.withdrawable).toBeGreaterThanOrEqual(0);
        usersTotal += b.withdrawable;
      }
      let appsMoved = 0;
      for (const k of tracked) {
        const now = await appBalance(k);
        expect(now, k).toBe(expectedApps[k]);
        appsMoved += now - appsBefore[k]!;
      }
      // Conservation: what left the users is exactly what the app accounts received.
      expect(usersTotal + appsMoved).toBe(initial * ring.length);

      // Every ledger line of the ring shows a non-negative balance after it.
      const negative = await h.rt.store.db.selectFrom('balance_transactions').select('id')
        .where('user', 'in', ring).where('available_balance', '<', 0).execute();
      expect(negative).toEqual([]);
      const report = await h.verify();
      expect(report.drift).toEqual([]);
      expect(report.ok).toBe(true);
    });
  });
});
