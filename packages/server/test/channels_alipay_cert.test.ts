import { afterAll, beforeAll, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { setCredentials, type AlipayCredentials } from '../src/channels/credentials.ts';
import { AlipayDriver } from '../src/channels/alipay.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk, type PingppClient } from './helpers/pingpp.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeAlipay } from './fakes/alipay.ts';

/**
 * Alipay certificate mode (公钥证书), which transfers to personal accounts usually need: the
 * requests name the app certificate and root chain by SN, answers carry Alipay's certificate SN
 * and verify with the key in Alipay's certificate.
 */
describeEngines('live Alipay payouts in certificate mode', (engine) => {
  let h: Harness;
  let fake: FakeAlipay;
  let pingpp: PingppClient;
  let certCredentials: AlipayCredentials;

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    fake.issueCertificates();
    certCredentials = {
      channel: 'alipay', app_id: fake.appId, private_key: fake.appPrivateKey, endpoint: fake.endpoint,
      app_cert: fake.certs!.appCert, alipay_public_cert: fake.certs!.alipayCert, alipay_root_cert: fake.certs!.rootCert,
    };
    h = await Harness.start(engine);
    await setCredentials(h.rt, h.appId, true, certCredentials);
    pingpp = await officialSdk(h, h.liveKey);
    await pingpp.users.create(h.appId, { id: 'cert_user' });
    await h.fund('cert_user', 100_000, h.liveKey);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('pays a live withdrawal with certificates', async () => {
    const worker = new PayoutWorker(h.rt, { leaseMs: 10_000 });
    const w = await pingpp.withdrawals.create(h.appId, { user: 'cert_user', amount: 5000, channel: 'alipay', order_no: orderNo(), extra: { account: 'cert@example.com', name: '张三' } });
    await pingpp.withdrawals.confirm(h.appId, w.id);
    let status = 'pending';
    for (let round = 0; round < 10 && status === 'pending'; round++) {
      await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
      await worker.runOnce();
      status = (await pingpp.withdrawals.retrieve(h.appId, w.id)).status;
    }
    expect(status).toBe('succeeded');
    expect(fake.debits.get(w.id)).toBe(1);
  });

  it('check passes with the right certificates and fails when the app certificate is not the one Alipay issued', async () => {
    expect((await AlipayDriver.check(certCredentials, 3000)).ok).toBe(true);
    const wrong = await AlipayDriver.check({ ...certCredentials, app_cert: fake.certs!.alipayCert }, 3000);
    expect(wrong.ok).toBe(false);
    expect(wrong.message).toContain('isv.invalid-app-cert-sn');
  });
});
