import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, DatePicker, Form, Input, Popconfirm, Segmented, Select, Space, Table, Tag } from 'antd';
import type { Dayjs } from 'dayjs';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, dateTime } from '../api.ts';
import { useScope } from '../context.ts';

const EVENT_TYPES = ['balance.withdrawal.succeeded', 'balance.withdrawal.failed'];

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  status: 'enabled' | 'disabled';
  consecutive_failures: number;
  created: number;
}

export function WebhooksPage() {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<{ url: string; events?: string[] }>();
  const [testType, setTestType] = useState('balance.withdrawal.succeeded');
  const q = useQuery({ queryKey: ['endpoints', app, mode], queryFn: () => api<{ data: Endpoint[] }>('GET', `/admin/apps/${app}/webhook_endpoints?mode=${mode}`) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['endpoints', app, mode] });
  const onError = (err: Error) => void message.error(err.message);
  const add = useMutation({
    // Adding a URL that is already there changes its events (the same upsert as `tixian apps update --webhook-url`).
    mutationFn: (v: { url: string; events?: string[] }) =>
      api<Endpoint>('POST', `/admin/apps/${app}/webhook_endpoints`, { mode, url: v.url, ...(v.events?.length ? { events: v.events } : {}) }),
    onSuccess: () => {
      form.resetFields();
      void message.success(t('withdrawals.done'));
      void refresh();
    },
    onError,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api('DELETE', `/admin/apps/${app}/webhook_endpoints/${id}?mode=${mode}`),
    onSuccess: () => void refresh(),
    onError,
  });
  const test = useMutation({
    mutationFn: (event: string) => api<{ event: { id: string; type: string } }>('POST', `/admin/apps/${app}/webhook_endpoints/test`, { event }),
    onSuccess: (r) => void message.success(`${t('webhooks.sent')} ${r.event.type} ${r.event.id}`),
    onError,
  });
  return (
    <Card title={t('menu.webhooks')} data-testid="webhooks">
      <Form form={form} layout="inline" onFinish={(v) => add.mutate(v)} style={{ marginBottom: 16 }}>
        <Form.Item name="url" rules={[{ required: true, message: t('login.required') }]}>
          <Input style={{ width: 420 }} placeholder="https://example.com/webhooks/tixian" maxLength={2048} data-testid="endpoint-url" />
        </Form.Item>
        <Form.Item name="events">
          <Select mode="multiple" allowClear style={{ minWidth: 280 }} placeholder={t('webhooks.events')} options={EVENT_TYPES.map((e) => ({ value: e }))} />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={add.isPending} data-testid="endpoint-add">{t('webhooks.add')}</Button>
      </Form>
      <Table<Endpoint>
        rowKey="id"
        size="middle"
        loading={q.isFetching}
        dataSource={q.data?.data ?? []}
        pagination={false}
        onRow={(e) => ({ 'data-testid': `endpoint-${e.url}` }) as object}
        expandable={{ expandedRowRender: (e) => <Deliveries endpoint={e.id} /> }}
        columns={[
          { title: 'URL', dataIndex: 'url' },
          { title: t('webhooks.events'), dataIndex: 'events', render: (ev: string[]) => ev.map((e) => <Tag key={e}>{e}</Tag>) },
          { title: t('withdrawals.status'), dataIndex: 'status', render: (s: string, e) => <Tag color={s === 'enabled' && e.consecutive_failures === 0 ? 'green' : 'red'}>{s}{e.consecutive_failures ? ` · ${e.consecutive_failures}` : ''}</Tag> },
          { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          {
            title: t('withdrawals.actions'),
            key: 'a',
            render: (_: unknown, e) => (
              <Space>
              <a onClick={() => form.setFieldsValue({ url: e.url, events: e.events })}>{t('webhooks.edit')}</a>
              <Popconfirm title={t('webhooks.removeAsk')} okText={t('common.ok')} cancelText={t('common.cancel')} onConfirm={() => remove.mutateAsync(e.id)}>
                <a style={{ color: '#ff4d4f' }}>{t('webhooks.remove')}</a>
              </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      {mode === 'test' && (
        <Space style={{ marginTop: 16 }}>
          <Select
            value={testType}
            style={{ width: 260 }}
            options={[{ value: 'balance.withdrawal.succeeded' }, { value: 'balance.withdrawal.failed' }]}
            onChange={(v: string) => setTestType(v)}
          />
          <Button onClick={() => test.mutate(testType)} loading={test.isPending} data-testid="send-test-event">
            {t('webhooks.test')}
          </Button>
        </Space>
      )}
    </Card>
  );
}

interface Delivery {
  id: string;
  event_id: string;
  type: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  created: number;
  last_answer: string | null;
}

/** One endpoint's deliveries in one status; resend one, or recover every failed one since a time. */
function Deliveries({ endpoint }: { endpoint: string }) {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState('failed');
  const [since, setSince] = useState<Dayjs | null>(null);
  const q = useQuery({
    queryKey: ['deliveries', app, mode, endpoint, status],
    queryFn: () => api<{ data: Delivery[] }>('GET', `/admin/apps/${app}/webhook_endpoints/${endpoint}/deliveries?mode=${mode}&status=${status}`),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['deliveries', app, mode, endpoint] });
  const resend = useMutation({
    mutationFn: (event: string) => api<{ requeued: number }>('POST', `/admin/apps/${app}/events/${event}/resend`, { mode }),
    onSuccess: (r) => { void message.success(`${t('webhooks.requeued')} ${r.requeued}`); void refresh(); },
    onError: (err) => void message.error(err.message),
  });
  const recover = useMutation({
    mutationFn: () => api<{ requeued: number }>('POST', `/admin/apps/${app}/webhook_endpoints/${endpoint}/recover`, { mode, since: since!.unix() }),
    onSuccess: (r) => { void message.success(`${t('webhooks.requeued')} ${r.requeued}`); void refresh(); },
    onError: (err) => void message.error(err.message),
  });
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Space>
        <Segmented value={status} onChange={(v) => setStatus(v as string)} options={['failed', 'pending', 'succeeded', 'canceled']} />
        <DatePicker showTime value={since} onChange={setSince} placeholder={t('webhooks.since')} />
        <Popconfirm title={t('webhooks.recoverAsk')} okText={t('common.ok')} cancelText={t('common.cancel')} onConfirm={() => recover.mutateAsync()} disabled={!since}>
          <Button disabled={!since} loading={recover.isPending}>{t('webhooks.recover')}</Button>
        </Popconfirm>
      </Space>
      <Table<Delivery>
        rowKey="id"
        size="small"
        pagination={false}
        loading={q.isFetching}
        dataSource={q.data?.data ?? []}
        columns={[
          { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          { title: t('webhooks.events'), dataIndex: 'type' },
          { title: 'event', dataIndex: 'event_id' },
          { title: t('webhooks.attempts'), dataIndex: 'attempts' },
          { title: 'HTTP', dataIndex: 'last_status_code', render: (c: number | null) => c ?? '—' },
          { title: t('webhooks.answer'), dataIndex: 'last_answer', render: (a: string | null) => (a ?? '').slice(0, 80) },
          { title: t('withdrawals.actions'), key: 'r', render: (_: unknown, d) => <a onClick={() => resend.mutate(d.event_id)}>{t('webhooks.resend')}</a> },
        ]}
      />
    </Space>
  );
}
