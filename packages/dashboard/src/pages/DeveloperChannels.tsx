import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, App, Button, Card, Form, Input, Radio, Select, Skeleton, Space, Table, Tag, Typography, Upload } from 'antd';
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

/** Largest key or certificate file read when the server names no limit (it refuses fields above 16 KiB). */
const MAX_FILE_BYTES = 16_384;

/** A PEM field: a file read in the browser, or pasted text. The content is never displayed. */
function PemField({ value, onChange, id, maxBytes = MAX_FILE_BYTES }: { value?: string; onChange?: (v: string) => void; id: string; maxBytes?: number }) {
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
            if (file.size > maxBytes) {
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
          maxLength={maxBytes}
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

/**
 * One field of a channel's credential set as the server describes it (credentials.ts, GET
 * …/channel_credentials/fields): its name and kind, never a value. The form is drawn from these.
 */
interface CredentialField {
  name: string;
  kind: 'text' | 'pem' | 'map' | 'list';
  required: boolean;
  secret: boolean;
  max_length?: number;
  group?: string;
  keys?: string[];
  items?: { name: string; max_length: number; example?: string }[];
  min_items?: number;
  max_items?: number;
  default?: string;
  example?: string;
}
interface ChannelFields {
  channel: string;
  fields: CredentialField[];
}

/**
 * Translation keys of what the server names: a field by `channel.name` where the channels differ,
 * else by name (a map's keys as `name.key`), a verification group by `group.name`, a channel by
 * `channel.name`. Anything not here is shown by its own name.
 */
const LABELS: Record<string, string> = {
  'channel.wechat': 'channels.wechat',
  'alipay.app_id': 'channels.alipayAppId',
  'alipay.private_key': 'channels.appPrivateKey',
  'wechat.private_key': 'channels.merchantPrivateKey',
  'alipay.group': 'channels.keyMode',
  'group.public_key': 'channels.publicKeyMode',
  'group.certificate': 'channels.certMode',
  alipay_public_key: 'channels.alipayPublicKey',
  app_cert: 'channels.appCert',
  alipay_public_cert: 'channels.alipayPublicCert',
  alipay_root_cert: 'channels.alipayRootCert',
  endpoint: 'channels.endpoint',
  order_title: 'channels.orderTitle',
  mchid: 'channels.mchid',
  merchant_serial: 'channels.merchantSerial',
  wechatpay_public_key: 'channels.wechatpayPublicKey',
  wechatpay_public_key_id: 'channels.wechatpayPublicKeyId',
  'appids.wx': 'channels.appidWx',
  'appids.wx_pub': 'channels.appidWxPub',
  'appids.wx_lite': 'channels.appidWxLite',
  transfer_scene_id: 'channels.transferSceneId',
  report_infos: 'channels.reportInfos',
  remark: 'channels.remark',
  apiv3_key: 'channels.apiv3Key',
};
const HINTS: Record<string, string> = { 'alipay.endpoint': 'channels.alipayEndpointHint', report_infos: 'channels.reportInfosHint', apiv3_key: 'channels.apiv3KeyHint' };
const lookup = (table: Record<string, string>, scope: string, name: string) => table[`${scope}.${name}`] ?? table[name];
/** `app_id` → `app-id`, as the page's test ids (cred-app-id, pem-private-key, …). */
const testId = (name: string) => name.replace(/[_.]/g, '-');

/** The form: the channel and mode, each channel's values under its own name, and the verification group chosen per channel. */
interface FormValues {
  channel: string;
  mode: 'test' | 'live';
  groups?: Record<string, string | undefined>;
  values?: Record<string, Record<string, unknown> | undefined>;
}

/** A channel's verification groups, in the order their fields come. */
const groupsOf = (fields: CredentialField[]) => [...new Set(fields.flatMap((f) => (f.group ? [f.group] : [])))];

/** The credential set to send: the chosen group's fields only, text trimmed, empty optional fields left out. */
function credentialsOf(c: ChannelFields, group: string | undefined, v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { channel: c.channel };
  for (const f of c.fields) {
    if (f.group && f.group !== group) continue;
    const value = v[f.name];
    if (f.kind === 'pem') {
      if (typeof value === 'string' && value) out[f.name] = value;
    } else if (f.kind === 'text') {
      const text = typeof value === 'string' ? value.trim() : '';
      if (text) out[f.name] = text;
    } else if (f.kind === 'map') {
      const entries = Object.entries((value ?? {}) as Record<string, unknown>).flatMap(([k, x]) => (typeof x === 'string' && x.trim() ? [[k, x.trim()]] : []));
      if (entries.length > 0 || f.required) out[f.name] = Object.fromEntries(entries);
    } else {
      // One item a line, its fields separated by '=' (the last one takes the rest of the line).
      const names = (f.items ?? []).map((i) => i.name);
      const items = String(value ?? '').split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
        const parts = l.split('=');
        return Object.fromEntries(names.map((n, i) => [n, i === names.length - 1 ? parts.slice(i).join('=') : (parts[i] ?? '')]));
      });
      if (items.length > 0 || f.required) out[f.name] = items;
    }
  }
  return out;
}

export function LiveChannels() {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message, modal } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<FormValues>();
  // The same for every app and run of the server: asked once (through the app shown, for its access check).
  const described = useQuery({ queryKey: ['channel_credential_fields'], queryFn: () => api<{ data: ChannelFields[] }>('GET', `/admin/apps/${app}/channel_credentials/fields`), staleTime: Infinity });
  const channels = described.data?.data ?? [];
  const channel = Form.useWatch('channel', form) ?? channels[0]?.channel;
  const current = channels.find((c) => c.channel === channel);
  const groups = groupsOf(current?.fields ?? []);
  const group = (Form.useWatch(['groups', channel ?? ''], form) as string | undefined) ?? groups[0];
  const [checked, setChecked] = useState<CheckResult | null>(null);
  const key = ['channel_credentials', app];
  const q = useQuery({ queryKey: key, queryFn: () => api<{ data: CredentialInfo[] }>('GET', `/admin/apps/${app}/channel_credentials`) });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: key });
    void queryClient.invalidateQueries({ queryKey: ['channels', app] });
  };
  const save = useMutation({
    mutationFn: (v: FormValues) => {
      const c = channels.find((x) => x.channel === v.channel);
      if (!c) throw new Error(`unknown channel ${v.channel}`);
      const chosen = v.groups?.[c.channel] ?? groupsOf(c.fields)[0];
      return api<CredentialInfo>('POST', `/admin/apps/${app}/channel_credentials`, { mode: v.mode, credentials: credentialsOf(c, chosen, v.values?.[c.channel] ?? {}) });
    },
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
  /** The translated label of what the server names, or the name itself. */
  const label = (scope: string, name: string) => {
    const tKey = lookup(LABELS, scope, name);
    return tKey ? t(tKey) : name;
  };
  const hint = (scope: string, name: string) => {
    const tKey = lookup(HINTS, scope, name);
    return tKey ? t(tKey) : undefined;
  };
  const groupChoice = (ch: string, names: string[]) => (
    <Form.Item key={`${ch}.group`} name={['groups', ch]} label={label(ch, 'group')} initialValue={names[0]}>
      <Radio.Group options={names.map((g) => ({ value: g, label: label('group', g) }))} data-testid="cred-group" />
    </Form.Item>
  );
  const fieldItem = (ch: string, f: CredentialField) => {
    const itemKey = `${ch}.${f.name}`;
    const name = ['values', ch, f.name];
    const rules = f.required ? required : undefined;
    const placeholder = f.default ?? f.example;
    switch (f.kind) {
      case 'pem':
        return (
          <Form.Item key={itemKey} name={name} label={label(ch, f.name)} rules={rules} extra={hint(ch, f.name)}>
            <PemField id={testId(f.name)} maxBytes={f.max_length} />
          </Form.Item>
        );
      case 'text':
        return (
          <Form.Item key={itemKey} name={name} label={label(ch, f.name)} rules={rules} extra={hint(ch, f.name)}>
            {f.secret
              ? <Input.Password maxLength={f.max_length} autoComplete="off" visibilityToggle={false} data-testid={`cred-${testId(f.name)}`} />
              : <Input maxLength={f.max_length} placeholder={placeholder} data-testid={`cred-${testId(f.name)}`} />}
          </Form.Item>
        );
      case 'map':
        // At least one key's value when required: the server says so if none is given.
        return (f.keys ?? []).map((k) => (
          <Form.Item key={`${itemKey}.${k}`} name={[...name, k]} label={label(ch, `${f.name}.${k}`)}>
            <Input maxLength={f.max_length} placeholder={placeholder} data-testid={`cred-${testId(`${f.name}.${k}`)}`} />
          </Form.Item>
        ));
      case 'list': {
        const items = f.items ?? [];
        const line = items.reduce((n, i) => n + i.max_length + 1, 0);
        return (
          <Form.Item key={itemKey} name={name} label={label(ch, f.name)} rules={rules} extra={hint(ch, f.name)}>
            <Input.TextArea
              rows={2}
              maxLength={(f.max_items ?? 10) * line}
              placeholder={items.every((i) => i.example) ? items.map((i) => i.example).join('=') : undefined}
              data-testid={`cred-${testId(f.name)}`}
            />
          </Form.Item>
        );
      }
    }
  };
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
      {described.isPending ? <Skeleton active /> : null}
      {described.isError ? <Alert type="error" showIcon message={described.error.message} data-testid="cred-fields-error" /> : null}
      {current ? (
        <Form<FormValues>
          form={form}
          layout="horizontal"
          labelCol={{ span: 6 }}
          wrapperCol={{ span: 14 }}
          initialValues={{ channel: channels[0]?.channel, mode }}
          onFinish={(v) => save.mutate(v)}
          data-testid="cred-form"
        >
          <Form.Item name="channel" label={t('withdrawals.channel')}>
            <Select options={channels.map((c) => ({ value: c.channel, label: label('channel', c.channel) }))} data-testid="cred-channel" />
          </Form.Item>
          <Form.Item name="mode" label={t('developers.mode')}>
            <Radio.Group options={[{ value: 'test', label: t('header.test') }, { value: 'live', label: t('header.live') }]} data-testid="cred-mode" />
          </Form.Item>
          {current.fields.flatMap((f, i) => [
            // A channel with verification groups asks which one where their fields begin.
            ...(i === current.fields.findIndex((x) => x.group) ? [groupChoice(current.channel, groups)] : []),
            ...(f.group && f.group !== group ? [] : [fieldItem(current.channel, f)]),
          ])}
          <Form.Item wrapperCol={{ offset: 6, span: 14 }}>
            <Button type="primary" htmlType="submit" loading={save.isPending} data-testid="cred-save">{t('channels.save')}</Button>
          </Form.Item>
        </Form>
      ) : null}
    </Card>
  );
}
