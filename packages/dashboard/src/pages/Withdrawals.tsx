import { useState } from 'react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, DatePicker, Descriptions, Drawer, Form, Input, Popconfirm, Select, Space, Table, Tabs, Tag, Timeline, Typography } from 'antd';
import type { Dayjs } from 'dayjs';
import { useTranslation } from 'react-i18next';
import { api, dateTime, yuan, type Withdrawal, type WithdrawalDetail } from '../api.ts';
import { useScope } from '../context.ts';

const BATCH_MAX = 200;
const PAGE = 20;
const CHANNELS = ['unionpay', 'alipay', 'wx', 'wx_pub', 'wx_lite', 'allinpay', 'jdpay', 'custom'];
const STATUSES = ['created', 'pending', 'succeeded', 'failed', 'canceled'] as const;
const STATUS_COLOR: Record<string, string> = { created: 'gold', pending: 'blue', succeeded: 'green', failed: 'red', canceled: 'default' };

interface Filters {
  status?: string;
  channel?: string;
  user?: string;
  order_no?: string;
  range?: [Dayjs, Dayjs] | null;
}

export function StatusTag({ status }: { status: string }) {
  const { t } = useTranslation();
  return <Tag color={STATUS_COLOR[status]} data-testid={`status-${status}`}>{t(`status.${status}`)}</Tag>;
}

export function WithdrawalsPage() {
  const { t } = useTranslation();
  const [tab, setTab] = useState<'queue' | 'all'>('queue');
  return (
    <Card>
      <Tabs
        activeKey={tab}
        onChange={(k) => setTab(k as 'queue' | 'all')}
        items={[
          { key: 'queue', label: t('withdrawals.queue'), children: <WithdrawalTable key="queue" queue /> },
          { key: 'all', label: t('withdrawals.all'), children: <WithdrawalTable key="all" queue={false} /> },
        ]}
      />
    </Card>
  );
}

function WithdrawalTable({ queue }: { queue: boolean }) {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message, modal } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<Filters>();
  const [filters, setFilters] = useState<Filters>({});
  // Cursor pages: the stack of `starting_after` ids that led to this page (no offsets, no totals).
  const [cursors, setCursors] = useState<string[]>([]);
  const [selected, setSelected] = useState<string[]>([]);
  const [detail, setDetail] = useState<string | null>(null);

  const params = new URLSearchParams({ mode, limit: String(PAGE) });
  const status = queue ? 'created' : filters.status;
  if (status) params.set('status', status);
  if (filters.channel) params.set('channel', filters.channel);
  if (filters.user) params.set('user', filters.user.trim());
  if (filters.order_no) params.set('order_no', filters.order_no.trim());
  if (filters.range) {
    params.set('created[gte]', String(filters.range[0].startOf('day').unix()));
    params.set('created[lte]', String(filters.range[1].endOf('day').unix()));
  }
  const cursor = cursors.at(-1);
  if (cursor) params.set('starting_after', cursor);
  const list = useQuery({
    queryKey: ['withdrawals', app, params.toString()],
    queryFn: () => api<{ data: Withdrawal[]; has_more: boolean }>('GET', `/admin/apps/${app}/withdrawals?${params}`),
    placeholderData: keepPreviousData,
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['withdrawals', app] });

  const act = useMutation({
    mutationFn: ({ id, action }: { id: string; action: 'confirm' | 'cancel' }) => api<Withdrawal>('POST', `/admin/apps/${app}/withdrawals/${id}/${action}`, { mode }),
    onSuccess: () => {
      void message.success(t('withdrawals.done'));
      void refresh();
    },
    onError: (err) => void message.error(err.message),
  });
  const batch = useMutation({
    mutationFn: (action: 'confirm' | 'cancel') =>
      api<{ succeeded: number; failed: number; data: { id: string; ok: boolean; error?: { message: string } }[] }>('POST', `/admin/apps/${app}/withdrawals/batch`, { mode, action, ids: selected }),
    onSuccess: (r) => {
      const firstError = r.data.find((x) => !x.ok)?.error?.message;
      const text = t('withdrawals.batchResult', { ok: r.succeeded, failed: r.failed }) + (firstError ? ` — ${firstError}` : '');
      if (r.failed) void message.warning(text);
      else void message.success(text);
      setSelected([]);
      void refresh();
    },
    onError: (err) => void message.error(err.message),
  });
  const askBatch = (action: 'confirm' | 'cancel') =>
    modal.confirm({
      title: t(action === 'confirm' ? 'withdrawals.batchConfirmAsk' : 'withdrawals.batchCancelAsk', { n: selected.length }),
      okText: t('common.ok'),
      cancelText: t('common.cancel'),
      okButtonProps: { danger: action === 'cancel', 'data-testid': 'batch-ok' },
      onOk: () => batch.mutateAsync(action),
    });

  return (
    <>
      <Form
        form={form}
        layout="inline"
        style={{ marginBottom: 16, rowGap: 8 }}
        onFinish={(v) => {
          setFilters(v);
          setCursors([]);
          setSelected([]);
        }}
      >
        {!queue && (
          <Form.Item name="status" label={t('withdrawals.status')}>
            <Select allowClear style={{ width: 130 }} options={STATUSES.map((s) => ({ value: s, label: t(`status.${s}`) }))} data-testid="filter-status" />
          </Form.Item>
        )}
        <Form.Item name="channel" label={t('withdrawals.channel')}>
          <Select allowClear style={{ width: 120 }} options={CHANNELS.map((c) => ({ value: c, label: c }))} />
        </Form.Item>
        <Form.Item name="user" label={t('withdrawals.user')}>
          <Input allowClear style={{ width: 140 }} maxLength={64} />
        </Form.Item>
        <Form.Item name="order_no" label={t('withdrawals.order_no')}>
          <Input allowClear style={{ width: 170 }} maxLength={64} data-testid="filter-order-no" />
        </Form.Item>
        <Form.Item name="range" label={t('withdrawals.dateRange')}>
          <DatePicker.RangePicker />
        </Form.Item>
        <Space>
          <Button type="primary" htmlType="submit" data-testid="filter-search">{t('withdrawals.search')}</Button>
          <Button
            onClick={() => {
              form.resetFields();
              setFilters({});
              setCursors([]);
            }}
          >
            {t('withdrawals.reset')}
          </Button>
        </Space>
      </Form>
      <Space style={{ marginBottom: 12 }}>
        <Button type="primary" disabled={selected.length === 0} onClick={() => askBatch('confirm')} data-testid="batch-confirm">{t('withdrawals.batchConfirm')}</Button>
        <Button danger disabled={selected.length === 0} onClick={() => askBatch('cancel')} data-testid="batch-cancel">{t('withdrawals.batchCancel')}</Button>
        <Typography.Text type="secondary">{t('withdrawals.selected', { n: selected.length, max: BATCH_MAX })}</Typography.Text>
      </Space>
      <Table<Withdrawal>
        rowKey="id"
        size="middle"
        loading={list.isFetching}
        dataSource={list.data?.data ?? []}
        pagination={false}
        rowSelection={{
          selectedRowKeys: selected,
          preserveSelectedRowKeys: true,
          onChange: (keys) => setSelected((keys as string[]).slice(0, BATCH_MAX)),
          getCheckboxProps: (w) => ({ disabled: w.status !== 'created' || (selected.length >= BATCH_MAX && !selected.includes(w.id)) }),
        }}
        onRow={(w) => ({ 'data-testid': `row-${w.id}` }) as object}
        columns={[
          { title: t('withdrawals.id'), dataIndex: 'id', render: (id: string) => <a onClick={() => setDetail(id)}>{id}</a> },
          { title: t('withdrawals.order_no'), dataIndex: 'order_no' },
          { title: t('withdrawals.user'), dataIndex: 'user' },
          { title: t('withdrawals.amount'), dataIndex: 'amount', align: 'right', render: (a: number) => yuan(a) },
          { title: t('withdrawals.channel'), dataIndex: 'channel' },
          { title: t('withdrawals.status'), dataIndex: 'status', render: (s: string) => <StatusTag status={s} /> },
          { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          {
            title: t('withdrawals.actions'),
            key: 'actions',
            render: (_: unknown, w: Withdrawal) => (
              <Space>
                <a onClick={() => setDetail(w.id)}>{t('withdrawals.detail')}</a>
                {w.status === 'created' && (
                  <>
                    <Popconfirm title={t('withdrawals.confirmAsk')} okText={t('common.ok')} cancelText={t('common.cancel')} okButtonProps={{ 'data-testid': 'popconfirm-ok' }} onConfirm={() => act.mutateAsync({ id: w.id, action: 'confirm' })}>
                      <a data-testid={`confirm-${w.id}`}>{t('withdrawals.confirm')}</a>
                    </Popconfirm>
                    <Popconfirm title={t('withdrawals.cancelAsk')} okText={t('common.ok')} cancelText={t('common.cancel')} okButtonProps={{ danger: true, 'data-testid': 'popconfirm-ok' }} onConfirm={() => act.mutateAsync({ id: w.id, action: 'cancel' })}>
                      <a data-testid={`cancel-${w.id}`} style={{ color: '#ff4d4f' }}>{t('withdrawals.cancel')}</a>
                    </Popconfirm>
                  </>
                )}
              </Space>
            ),
          },
        ]}
      />
      <Space style={{ marginTop: 16 }}>
        <Button disabled={cursors.length === 0} onClick={() => setCursors([])}>{t('withdrawals.first')}</Button>
        <Button disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>{t('withdrawals.prev')}</Button>
        <Button
          disabled={!list.data?.has_more}
          onClick={() => {
            const last = list.data?.data.at(-1);
            if (last) setCursors((c) => [...c, last.id]);
          }}
          data-testid="next-page"
        >
          {t('withdrawals.next')}
        </Button>
      </Space>
      <Drawer width={760} open={detail !== null} onClose={() => setDetail(null)} title={detail} destroyOnHidden>
        {detail && <WithdrawalDetailView id={detail} />}
      </Drawer>
    </>
  );
}

function WithdrawalDetailView({ id }: { id: string }) {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message } = App.useApp();
  const q = useQuery({
    queryKey: ['withdrawal', app, mode, id],
    queryFn: () => api<WithdrawalDetail>('GET', `/admin/apps/${app}/withdrawals/${id}?mode=${mode}`),
    // A payout in flight settles in seconds: watch it until it does.
    refetchInterval: (query) => (query.state.data?.withdrawal.status === 'pending' || query.state.data?.webhook_deliveries.some((d) => d.status !== 'succeeded') ? 2000 : false),
  });
  const resend = useMutation({
    mutationFn: (event: string) => api<{ requeued: number }>('POST', `/admin/apps/${app}/events/${event}/resend`, { mode }),
    onSuccess: (r) => {
      void message.success(`${t('webhooks.requeued')} ${r.requeued}`);
      void q.refetch();
    },
    onError: (err) => void message.error(err.message),
  });
  if (!q.data) return <Typography.Text>{q.error ? q.error.message : t('common.loading')}</Typography.Text>;
  const { withdrawal: w, balance_transactions, events, webhook_deliveries, audit } = q.data;
  const timeline = [
    { at: w.created, text: t('withdrawals.eventCreated') },
    ...audit.map((a) => ({ at: a.created, text: `${a.action} — ${a.operator}` })),
    ...events.map((e) => ({ at: e.created, text: e.type })),
  ].sort((a, b) => a.at - b.at);
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }} data-testid="withdrawal-detail">
      <Descriptions column={2} bordered size="small">
        <Descriptions.Item label={t('withdrawals.status')}><StatusTag status={w.status} /></Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.amount')}>{yuan(w.amount)}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.order_no')}>{w.order_no}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.user')}>{w.user}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.channel')}>{w.channel}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.fee')}>{yuan(w.user_fee)}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.recipient')} span={2}>
          {Object.entries(w.extra).map(([k, v]) => `${k}: ${String(v)}`).join(' · ')}
        </Descriptions.Item>
        {w.failure_msg && <Descriptions.Item label={t('withdrawals.failure')} span={2}>{w.failure_msg}</Descriptions.Item>}
        {w.description && <Descriptions.Item label={t('withdrawals.description')} span={2}>{w.description}</Descriptions.Item>}
      </Descriptions>
      <div>
        <Typography.Title level={5}>{t('withdrawals.timeline')}</Typography.Title>
        <Timeline items={timeline.map((x) => ({ children: `${dateTime(x.at)}  ${x.text}` }))} />
      </div>
      <div>
        <Typography.Title level={5}>{t('withdrawals.ledger')}</Typography.Title>
        <Table
          rowKey="id"
          size="small"
          pagination={false}
          dataSource={balance_transactions}
          columns={[
            { title: 'ID', dataIndex: 'id' },
            { title: 'type', dataIndex: 'type' },
            { title: t('withdrawals.amount'), dataIndex: 'amount', align: 'right', render: (a: number) => yuan(a) },
            { title: t('withdrawals.balance'), dataIndex: 'available_balance', align: 'right', render: (a: number) => yuan(a) },
            { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          ]}
        />
      </div>
      <div>
        <Typography.Title level={5}>{t('withdrawals.events')}</Typography.Title>
        {events.length === 0 && <Typography.Text type="secondary">{t('withdrawals.noEvents')}</Typography.Text>}
        {events.map((e) => (
          <Card
            key={e.id}
            size="small"
            title={`${e.type} · ${e.id}`}
            style={{ marginBottom: 8 }}
            extra={
              <Popconfirm title={t('webhooks.resend') + '?'} okText={t('common.ok')} cancelText={t('common.cancel')} onConfirm={() => resend.mutateAsync(e.id)}>
                <a>{t('webhooks.resend')}</a>
              </Popconfirm>
            }
          >
            {webhook_deliveries.filter((d) => d.event_id === e.id).map((d) => (
              <div key={d.id} data-testid="webhook-delivery">
                <Typography.Text strong>{d.url}</Typography.Text> <Tag>{d.status}</Tag>
                <Table
                  rowKey="id"
                  size="small"
                  pagination={false}
                  dataSource={d.attempts_list}
                  columns={[
                    { title: t('withdrawals.created'), dataIndex: 'attempted_ms', render: (ms: number) => dateTime(Math.floor(ms / 1000)) },
                    { title: 'HTTP', dataIndex: 'status_code', render: (c: number | null) => <span data-testid="attempt-status">{c ?? '—'}</span> },
                    { title: 'ms', dataIndex: 'duration_ms' },
                    { title: 'body / error', key: 'body', render: (_: unknown, a) => (a.error ?? a.response_body ?? '').slice(0, 120) },
                  ]}
                />
              </div>
            ))}
          </Card>
        ))}
      </div>
    </Space>
  );
}
