import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, Descriptions, Input, Space, Switch, Table, Tag, Typography } from 'antd';
import { dateTime } from '../api.ts';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../api.ts';
import { useScope } from '../context.ts';
import { LiveChannels } from './DeveloperChannels.tsx';

interface SignatureSettings {
  rsa_public_key: string | null;
  rsa_public_key_bits: number | null;
  rsa_public_key_fingerprint: string | null;
  require_signature_test: boolean;
  require_signature_live: boolean;
}
interface Developers {
  signature: SignatureSettings;
  platform_public_key: string;
  api_base: string;
}

export function DevelopersPage() {
  const { t } = useTranslation();
  const { app } = useScope();
  const { message, modal } = App.useApp();
  const queryClient = useQueryClient();
  const [pem, setPem] = useState('');
  const q = useQuery({ queryKey: ['developers', app], queryFn: () => api<Developers>('GET', `/admin/apps/${app}/developers`) });
  const update = useMutation({
    mutationFn: (body: Partial<SignatureSettings>) => api<SignatureSettings>('POST', `/admin/apps/${app}/signature`, body),
    onSuccess: () => {
      void message.success(t('withdrawals.done'));
      setPem('');
      void queryClient.invalidateQueries({ queryKey: ['developers', app] });
    },
    onError: (err) => void message.error(err.message),
  });
  const s = q.data?.signature;
  const toggle = (field: 'require_signature_test' | 'require_signature_live', on: boolean) =>
    modal.confirm({
      title: t(on ? 'developers.requireAsk' : 'developers.unrequireAsk', { mode: t(field === 'require_signature_test' ? 'header.test' : 'header.live') }),
      okText: t('common.ok'),
      cancelText: t('common.cancel'),
      okButtonProps: { 'data-testid': 'switch-ok' },
      onOk: () => update.mutateAsync({ [field]: on }),
    });
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }} data-testid="developers">
      <Card title={t('developers.base')}>
        <Typography.Paragraph copyable={{ text: q.data?.api_base ?? '' }} code data-testid="api-base">{q.data?.api_base}</Typography.Paragraph>
        <Typography.Text type="secondary">{t('developers.baseHint')}</Typography.Text>
      </Card>
      <Card title={t('developers.signature')} loading={q.isPending}>
        <Descriptions column={1} bordered size="small">
          <Descriptions.Item label={t('developers.merchantKey')}>
            <span data-testid="key-fingerprint">{s?.rsa_public_key_fingerprint ? `RSA ${s.rsa_public_key_bits} · SHA-256 ${s.rsa_public_key_fingerprint}` : t('developers.noKey')}</span>
          </Descriptions.Item>
          <Descriptions.Item label={t('developers.requireTest')}>
            <Switch checked={s?.require_signature_test ?? false} disabled={!s?.rsa_public_key} onChange={(on) => toggle('require_signature_test', on)} data-testid="require-test" />
          </Descriptions.Item>
          <Descriptions.Item label={t('developers.requireLive')}>
            <Switch checked={s?.require_signature_live ?? false} disabled={!s?.rsa_public_key} onChange={(on) => toggle('require_signature_live', on)} data-testid="require-live" />
          </Descriptions.Item>
        </Descriptions>
        <Input.TextArea
          style={{ marginTop: 16, fontFamily: 'monospace' }}
          rows={6}
          maxLength={16384}
          placeholder="-----BEGIN PUBLIC KEY-----"
          value={pem}
          onChange={(e) => setPem(e.target.value)}
          data-testid="public-key-input"
        />
        <Button style={{ marginTop: 8 }} type="primary" disabled={!pem.trim()} loading={update.isPending} onClick={() => update.mutate({ rsa_public_key: pem })} data-testid="public-key-upload">
          {t('developers.upload')}
        </Button>
      </Card>
      <SecretKeys />
      <Channels />
      <LiveChannels />
      <Card title={t('developers.platformKey')} loading={q.isPending}>
        <Typography.Paragraph copyable={{ text: q.data?.platform_public_key ?? '' }}>
          <pre style={{ fontSize: 12 }} data-testid="platform-key">{q.data?.platform_public_key}</pre>
        </Typography.Paragraph>
      </Card>
    </Space>
  );
}

interface KeyInfo {
  hint: string;
  livemode: boolean;
  created: number;
  expires_at: number | null;
  status: string;
}

/** Secret keys: hints only; a roll asks first and shows the new key once. */
function SecretKeys() {
  const { t } = useTranslation();
  const { app } = useScope();
  const { modal, message } = App.useApp();
  const queryClient = useQueryClient();
  const q = useQuery({ queryKey: ['keys', app], queryFn: () => api<{ data: KeyInfo[] }>('GET', `/admin/apps/${app}/keys`) });
  const roll = (mode: 'test' | 'live') =>
    modal.confirm({
      title: t('developers.rollAsk', { mode: t(mode === 'test' ? 'header.test' : 'header.live') }),
      okText: t('common.ok'),
      cancelText: t('common.cancel'),
      okButtonProps: { danger: true },
      onOk: async () => {
        try {
          const r = await api<{ secret_key: string }>('POST', `/admin/apps/${app}/keys/roll`, { mode, expire_old_in_s: 86_400 });
          void queryClient.invalidateQueries({ queryKey: ['keys', app] });
          modal.success({
            title: t('developers.rolled'),
            width: 640,
            content: <Typography.Paragraph copyable code>{r.secret_key}</Typography.Paragraph>,
          });
        } catch (err) {
          void message.error((err as Error).message);
        }
      },
    });
  return (
    <Card
      title={t('developers.keys')}
      extra={
        <Space>
          <Button onClick={() => roll('test')}>{t('developers.roll')} ({t('header.test')})</Button>
          <Button danger onClick={() => roll('live')}>{t('developers.roll')} ({t('header.live')})</Button>
        </Space>
      }
    >
      <Table<KeyInfo>
        rowKey={(k) => `${k.hint}-${k.created}`}
        size="small"
        pagination={false}
        loading={q.isFetching}
        dataSource={q.data?.data ?? []}
        columns={[
          { title: t('developers.key'), dataIndex: 'hint' },
          { title: t('developers.mode'), dataIndex: 'livemode', render: (l: boolean) => t(l ? 'header.live' : 'header.test') },
          { title: t('withdrawals.status'), dataIndex: 'status', render: (s: string) => <Tag color={s === 'active' ? 'green' : s === 'expiring' ? 'orange' : 'default'}>{s}</Tag> },
          { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          { title: t('developers.expires'), dataIndex: 'expires_at', render: (e: number | null) => (e ? dateTime(e) : '—') },
        ]}
      />
      <Typography.Text type="secondary">{t('developers.keysHint')}</Typography.Text>
    </Card>
  );
}

/** Payout channels per mode: which can pay (test: the sandbox; live: a driver and this app's credentials, set below). */
function Channels() {
  const { t } = useTranslation();
  const { app } = useScope();
  const q = useQuery({ queryKey: ['channels', app], queryFn: () => api<{ data: { channel: string; test: boolean; live: boolean }[] }>('GET', `/admin/apps/${app}/channels`) });
  const state = (on: boolean) => (on ? <Tag color="green">{t('developers.configured')}</Tag> : <Tag>{t('developers.notConfigured')}</Tag>);
  return (
    <Card title={t('developers.channels')}>
      <Table
        rowKey="channel"
        size="small"
        pagination={false}
        loading={q.isFetching}
        dataSource={q.data?.data ?? []}
        columns={[
          { title: t('withdrawals.channel'), dataIndex: 'channel' },
          { title: t('header.test'), dataIndex: 'test', render: state },
          { title: t('header.live'), dataIndex: 'live', render: state },
        ]}
      />
    </Card>
  );
}
