import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, App, Button, Card, Form, Input, Radio, Select, Space, Table, Tag, Typography, Upload } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, dateTime } from '../api.ts';
import { useScope } from '../context.ts';

/**
 * Live payout channels on the Developers page: the app's own Alipay / WeChat Pay credentials.
 * Keys and certificates are read from files in the browser (or pasted), sent once to be sealed,
 * and never shown back: the list has only a fingerprint and the non-secret summary.
 */
interface CredentialInfo {
  channel: 'alipay' | 'wechat';
  mode: 'test' | 'live';
  fingerprint: string;
  summary: Record<string, string>;
  updated: number;
}
interface CheckResult {
  channel: string;
  mode: string;
  fingerprint: string;
  ok: boolean;
  message: string;
}

/** Largest key or certificate file read (the server refuses fields above 16 KiB). */
const MAX_FILE_BYTES = 16_384;

/** A PEM field: a file read in the browser, or pasted text. The content is never displayed. */
function PemField({ value, onChange, id }: { value?: string; onChange?: (v: string) => void; id: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const [name, setName] = useState<string | null>(null);
  const [paste, setPaste] = useState(false);
  return (
    <Space direction="vertical" style={{ width: '100%' }} data-testid={`pem-${id}`}>
      <Space>
        <Upload
          accept=".pem,.crt,.cer,.key,.txt"
          maxCount={1}
          showUploadList={false}
          beforeUpload={(file) => {
            if (file.size > MAX_FILE_BYTES) {
              void message.error(t('channels.tooLarge'));
              return Upload.LIST_IGNORE;
            }
            void file.text().then((text) => {
              setName(file.name);
              onChange?.(text);
            });
            return false;
          }}
        >
          <Button>{t('channels.chooseFile')}</Button>
        </Upload>
        <Button type="link" onClick={() => setPaste((p) => !p)}>{t('channels.paste')}</Button>
        {value ? <Tag color="green" data-testid={`pem-${id}-loaded`}>{name ?? t('channels.pasted')} · {value.length} B</Tag> : null}
      </Space>
      {paste ? (
        <Input.TextArea
          rows={4}
          maxLength={MAX_FILE_BYTES}
          style={{ fontFamily: 'monospace' }}
          placeholder="-----BEGIN …-----"
          onChange={(e) => {
            setName(null);
            onChange?.(e.target.value);
          }}
        />
      ) : null}
    </Space>
  );
}

interface FormValues {
  channel: 'alipay' | 'wechat';
  mode: 'test' | 'live';
  keyMode?: 'public_key' | 'certificate';
  app_id?: string;
  private_key?: string;
  alipay_public_key?: string;
  app_cert?: string;
  alipay_public_cert?: string;
  alipay_root_cert?: string;
  endpoint?: string;
  order_title?: string;
  mchid?: string;
  merchant_serial?: string;
  wechatpay_public_key?: string;
  wechatpay_public_key_id?: string;
  appid_wx?: string;
  appid_wx_pub?: string;
  appid_wx_lite?: string;
  transfer_scene_id?: string;
  report_infos?: string;
  remark?: string;
}

const opt = <K extends string>(k: K, v: string | undefined) => (v && v.trim() ? { [k]: v.trim() } : {}) as Partial<Record<K, string>>;

function credentialsOf(v: FormValues): Record<string, unknown> {
  if (v.channel === 'alipay') {
    return {
      channel: 'alipay', app_id: v.app_id?.trim(), private_key: v.private_key,
      ...(v.keyMode === 'certificate'
        ? { app_cert: v.app_cert, alipay_public_cert: v.alipay_public_cert, alipay_root_cert: v.alipay_root_cert }
        : { alipay_public_key: v.alipay_public_key }),
      ...opt('endpoint', v.endpoint), ...opt('order_title', v.order_title),
    };
  }
  return {
    channel: 'wechat', mchid: v.mchid?.trim(), merchant_serial: v.merchant_serial?.trim(), private_key: v.private_key,
    wechatpay_public_key: v.wechatpay_public_key, wechatpay_public_key_id: v.wechatpay_public_key_id?.trim(),
    appids: { ...opt('wx', v.appid_wx), ...opt('wx_pub', v.appid_wx_pub), ...opt('wx_lite', v.appid_wx_lite) },
    transfer_scene_id: v.transfer_scene_id?.trim(),
    report_infos: (v.report_infos ?? '').split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.indexOf('=');
      return { info_type: l.slice(0, Math.max(i, 0)), info_content: l.slice(i + 1) };
    }),
    ...opt('remark', v.remark), ...opt('endpoint', v.endpoint),
  };
}

export function LiveChannels() {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message, modal } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<FormValues>();
  const channel = Form.useWatch('channel', form) ?? 'alipay';
  const keyMode = Form.useWatch('keyMode', form) ?? 'public_key';
  const [checked, setChecked] = useState<CheckResult | null>(null);
  const key = ['channel_credentials', app];
  const q = useQuery({ queryKey: key, queryFn: () => api<{ data: CredentialInfo[] }>('GET', `/admin/apps/${app}/channel_credentials`) });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: key });
    void queryClient.invalidateQueries({ queryKey: ['channels', app] });
  };
  const save = useMutation({
    mutationFn: (v: FormValues) => api<CredentialInfo>('POST', `/admin/apps/${app}/channel_credentials`, { mode: v.mode, credentials: credentialsOf(v) }),
    onSuccess: (info) => {
      void message.success(`${t('channels.saved')} ${info.fingerprint}`);
      form.resetFields();
      setChecked(null);
      refresh();
    },
    onError: (err) => void message.error(err.message),
  });
  const check = useMutation({
    mutationFn: (c: CredentialInfo) => api<CheckResult>('POST', `/admin/apps/${app}/channel_credentials/${c.channel}/check`, { mode: c.mode }),
    onSuccess: (r) => setChecked(r),
    onError: (err) => void message.error(err.message),
  });
  const remove = (c: CredentialInfo) =>
    modal.confirm({
      title: t('channels.removeAsk', { channel: c.channel, mode: t(c.mode === 'test' ? 'header.test' : 'header.live') }),
      okText: t('common.ok'),
      cancelText: t('common.cancel'),
      okButtonProps: { danger: true },
      onOk: async () => {
        try {
          await api('DELETE', `/admin/apps/${app}/channel_credentials/${c.channel}?mode=${c.mode}`);
          setChecked(null);
          refresh();
        } catch (err) {
          void message.error((err as Error).message);
        }
      },
    });
  const required = [{ required: true, message: t('login.required') }];
  return (
    <Card title={t('channels.title')} data-testid="live-channels">
      <Table<CredentialInfo>
        rowKey={(c) => `${c.channel}-${c.mode}`}
        size="small"
        pagination={false}
        loading={q.isFetching}
        dataSource={q.data?.data ?? []}
        locale={{ emptyText: t('channels.none') }}
        columns={[
          { title: t('withdrawals.channel'), dataIndex: 'channel' },
          { title: t('developers.mode'), dataIndex: 'mode', render: (m: string) => <span style={{ whiteSpace: 'nowrap' }}>{t(m === 'live' ? 'header.live' : 'header.test')}</span> },
          { title: t('channels.fingerprint'), dataIndex: 'fingerprint', render: (f: string, c) => <Typography.Text code style={{ whiteSpace: 'nowrap' }} data-testid={`cred-fingerprint-${c.channel}-${c.mode}`}>{f}</Typography.Text> },
          {
            title: t('channels.summary'),
            dataIndex: 'summary',
            render: (s: Record<string, string>) => <Typography.Text type="secondary" style={{ fontSize: 12 }}>{Object.entries(s).map(([k, v]) => `${k}: ${v}`).join(' · ')}</Typography.Text>,
          },
          { title: t('channels.updated'), dataIndex: 'updated', render: dateTime },
          {
            title: t('withdrawals.actions'),
            render: (_: unknown, c) => (
              <Space>
                <Button size="small" loading={check.isPending && check.variables === c} onClick={() => check.mutate(c)} data-testid={`cred-check-${c.channel}-${c.mode}`}>{t('channels.check')}</Button>
                <Button size="small" danger onClick={() => remove(c)} data-testid={`cred-remove-${c.channel}-${c.mode}`}>{t('webhooks.remove')}</Button>
              </Space>
            ),
          },
        ]}
      />
      {checked ? (
        <Alert
          style={{ marginTop: 12 }}
          type={checked.ok ? 'success' : 'error'}
          showIcon
          data-testid="cred-check-result"
          message={`${checked.ok ? t('channels.checkOk') : t('channels.checkFailed')} · ${checked.channel} ${checked.mode} ${checked.fingerprint}`}
          description={checked.message}
        />
      ) : null}
      <Typography.Title level={5} style={{ marginTop: 24 }}>{t('channels.upload')}</Typography.Title>
      <Typography.Paragraph type="secondary">{t('channels.uploadHint')}</Typography.Paragraph>
      <Form<FormValues>
        form={form}
        layout="horizontal"
        labelCol={{ span: 6 }}
        wrapperCol={{ span: 14 }}
        initialValues={{ channel: 'alipay', mode, keyMode: 'public_key' }}
        onFinish={(v) => save.mutate(v)}
        data-testid="cred-form"
      >
        <Form.Item name="channel" label={t('withdrawals.channel')}>
          <Select options={[{ value: 'alipay', label: 'alipay' }, { value: 'wechat', label: t('channels.wechat') }]} data-testid="cred-channel" />
        </Form.Item>
        <Form.Item name="mode" label={t('developers.mode')}>
          <Radio.Group options={[{ value: 'test', label: t('header.test') }, { value: 'live', label: t('header.live') }]} data-testid="cred-mode" />
        </Form.Item>
        {channel === 'alipay' ? (
          <>
            <Form.Item name="app_id" label={t('channels.alipayAppId')} rules={required}>
              <Input maxLength={32} placeholder="2021…" data-testid="cred-app-id" />
            </Form.Item>
            <Form.Item name="private_key" label={t('channels.appPrivateKey')} rules={required}>
              <PemField id="private-key" />
            </Form.Item>
            <Form.Item name="keyMode" label={t('channels.keyMode')}>
              <Radio.Group options={[{ value: 'public_key', label: t('channels.publicKeyMode') }, { value: 'certificate', label: t('channels.certMode') }]} />
            </Form.Item>
            {keyMode === 'public_key' ? (
              <Form.Item name="alipay_public_key" label={t('channels.alipayPublicKey')} rules={required}>
                <PemField id="alipay-public-key" />
              </Form.Item>
            ) : (
              <>
                <Form.Item name="app_cert" label={t('channels.appCert')} rules={required}><PemField id="app-cert" /></Form.Item>
                <Form.Item name="alipay_public_cert" label={t('channels.alipayPublicCert')} rules={required}><PemField id="alipay-public-cert" /></Form.Item>
                <Form.Item name="alipay_root_cert" label={t('channels.alipayRootCert')} rules={required}><PemField id="alipay-root-cert" /></Form.Item>
              </>
            )}
            <Form.Item name="endpoint" label={t('channels.endpoint')} extra={t('channels.alipayEndpointHint')}>
              <Input maxLength={2048} placeholder="https://openapi.alipay.com" data-testid="cred-endpoint" />
            </Form.Item>
            <Form.Item name="order_title" label={t('channels.orderTitle')}>
              <Input maxLength={64} />
            </Form.Item>
          </>
        ) : (
          <>
            <Form.Item name="mchid" label={t('channels.mchid')} rules={required}><Input maxLength={32} /></Form.Item>
            <Form.Item name="merchant_serial" label={t('channels.merchantSerial')} rules={required}><Input maxLength={64} /></Form.Item>
            <Form.Item name="private_key" label={t('channels.merchantPrivateKey')} rules={required}><PemField id="private-key" /></Form.Item>
            <Form.Item name="wechatpay_public_key" label={t('channels.wechatpayPublicKey')} rules={required}><PemField id="wechatpay-public-key" /></Form.Item>
            <Form.Item name="wechatpay_public_key_id" label={t('channels.wechatpayPublicKeyId')} rules={required}><Input maxLength={128} placeholder="PUB_KEY_ID_…" /></Form.Item>
            <Form.Item name="appid_wx" label={t('channels.appidWx')}><Input maxLength={64} placeholder="wx…" /></Form.Item>
            <Form.Item name="appid_wx_pub" label={t('channels.appidWxPub')}><Input maxLength={64} placeholder="wx…" /></Form.Item>
            <Form.Item name="appid_wx_lite" label={t('channels.appidWxLite')}><Input maxLength={64} placeholder="wx…" /></Form.Item>
            <Form.Item name="transfer_scene_id" label={t('channels.transferSceneId')} rules={required}><Input maxLength={32} placeholder="1000" /></Form.Item>
            <Form.Item name="report_infos" label={t('channels.reportInfos')} rules={required} extra={t('channels.reportInfosHint')}>
              <Input.TextArea rows={2} maxLength={4096} placeholder="活动名称=余额提现" />
            </Form.Item>
            <Form.Item name="remark" label={t('channels.remark')}><Input maxLength={32} /></Form.Item>
            <Form.Item name="endpoint" label={t('channels.endpoint')}><Input maxLength={2048} placeholder="https://api.mch.weixin.qq.com/" /></Form.Item>
          </>
        )}
        <Form.Item wrapperCol={{ offset: 6, span: 14 }}>
          <Button type="primary" htmlType="submit" loading={save.isPending} data-testid="cred-save">{t('channels.save')}</Button>
        </Form.Item>
      </Form>
    </Card>
  );
}
