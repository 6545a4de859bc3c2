import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, Descriptions, Drawer, Input, Popconfirm, Space, Table, Tag, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { api, dateTime, yuan } from '../api.ts';
import { useScope } from '../context.ts';

interface SettleAccount {
  id: string;
  channel: string;
  recipient: Record<string, unknown>;
}
interface User {
  id: string;
  name: string | null;
  available_balance: number;
  withdrawable_balance: number;
  disabled: boolean;
  created: number;
  settle_accounts: SettleAccount[];
}
interface Line {
  id: string;
  type: string;
  amount: number;
  available_balance: number;
  created: number;
  description: string | null;
}

export function UsersPage() {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const [cursors, setCursors] = useState<string[]>([]);
  const [search, setSearch] = useState('');
  const [open, setOpen] = useState<string | null>(null);
  const params = new URLSearchParams({ mode, limit: '20' });
  const cursor = cursors.at(-1);
  if (cursor) params.set('starting_after', cursor);
  const list = useQuery({ queryKey: ['users', app, params.toString()], queryFn: () => api<{ data: User[]; has_more: boolean }>('GET', `/admin/apps/${app}/users?${params}`) });
  return (
    <Card title={t('menu.users')} data-testid="users">
      <Input.Search
        style={{ width: 320, marginBottom: 16 }}
        placeholder={t('users.search')}
        maxLength={64}
        value={search}
        onChange={(e) => setSearch(e.target.value)}
        onSearch={(v) => v.trim() && setOpen(v.trim())}
        enterButton
      />
      <Table<User>
        rowKey="id"
        size="middle"
        loading={list.isFetching}
        dataSource={list.data?.data ?? []}
        pagination={false}
        columns={[
          { title: t('withdrawals.user'), dataIndex: 'id', render: (id: string) => <a onClick={() => setOpen(id)}>{id}</a> },
          { title: t('users.name'), dataIndex: 'name' },
          { title: t('users.available'), dataIndex: 'available_balance', align: 'right', render: (a: number) => yuan(a) },
          { title: t('users.withdrawable'), dataIndex: 'withdrawable_balance', align: 'right', render: (a: number) => yuan(a) },
          { title: t('withdrawals.status'), dataIndex: 'disabled', render: (d: boolean) => (d ? <Tag color="red">{t('users.disabled')}</Tag> : <Tag color="green">{t('users.active')}</Tag>) },
          { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
        ]}
      />
      <Space style={{ marginTop: 16 }}>
        <Button disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>{t('withdrawals.prev')}</Button>
        <Button disabled={!list.data?.has_more} onClick={() => setCursors((c) => [...c, list.data!.data.at(-1)!.id])}>{t('withdrawals.next')}</Button>
      </Space>
      <Drawer width={720} open={open !== null} onClose={() => setOpen(null)} title={open} destroyOnHidden>
        {open && <UserDetail id={open} />}
      </Drawer>
    </Card>
  );
}

function UserDetail({ id }: { id: string }) {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const q = useQuery({
    queryKey: ['user', app, mode, id],
    queryFn: () => api<{ user: User; balance_transactions: Line[]; has_more: boolean }>('GET', `/admin/apps/${app}/users/${encodeURIComponent(id)}?mode=${mode}`),
  });
  const toggle = useMutation({
    mutationFn: (disabled: boolean) => api<User>('POST', `/admin/apps/${app}/users/${encodeURIComponent(id)}/disabled`, { mode, disabled }),
    onSuccess: () => {
      void message.success(t('withdrawals.done'));
      void queryClient.invalidateQueries({ queryKey: ['user', app, mode, id] });
      void queryClient.invalidateQueries({ queryKey: ['users', app] });
    },
    onError: (err) => void message.error(err.message),
  });
  if (!q.data) return <Typography.Text>{q.error ? q.error.message : t('common.loading')}</Typography.Text>;
  const u = q.data.user;
  return (
    <Space direction="vertical" size="large" style={{ width: '100%' }}>
      <Descriptions column={2} bordered size="small">
        <Descriptions.Item label={t('users.available')}>{yuan(u.available_balance)}</Descriptions.Item>
        <Descriptions.Item label={t('users.withdrawable')}>{yuan(u.withdrawable_balance)}</Descriptions.Item>
        <Descriptions.Item label={t('users.name')}>{u.name ?? '—'}</Descriptions.Item>
        <Descriptions.Item label={t('withdrawals.status')}>
          <Space>
            {u.disabled ? <Tag color="red">{t('users.disabled')}</Tag> : <Tag color="green">{t('users.active')}</Tag>}
            <Popconfirm title={t(u.disabled ? 'users.enableAsk' : 'users.disableAsk')} okText={t('common.ok')} cancelText={t('common.cancel')} onConfirm={() => toggle.mutateAsync(!u.disabled)}>
              <a>{t(u.disabled ? 'users.enable' : 'users.disable')}</a>
            </Popconfirm>
          </Space>
        </Descriptions.Item>
      </Descriptions>
      <div>
        <Typography.Title level={5}>{t('users.settleAccounts')}</Typography.Title>
        <Table
          rowKey="id"
          size="small"
          pagination={false}
          dataSource={u.settle_accounts}
          columns={[
            { title: 'ID', dataIndex: 'id' },
            { title: t('withdrawals.channel'), dataIndex: 'channel' },
            { title: t('withdrawals.recipient'), dataIndex: 'recipient', render: (r: Record<string, unknown>) => Object.entries(r).map(([k, v]) => `${k}: ${String(v)}`).join(' · ') },
          ]}
        />
      </div>
      <div>
        <Typography.Title level={5}>{t('withdrawals.ledger')}</Typography.Title>
        <Table
          rowKey="id"
          size="small"
          pagination={false}
          dataSource={q.data.balance_transactions}
          columns={[
            { title: 'type', dataIndex: 'type' },
            { title: t('withdrawals.amount'), dataIndex: 'amount', align: 'right', render: (a: number) => yuan(a) },
            { title: t('withdrawals.balance'), dataIndex: 'available_balance', align: 'right', render: (a: number) => yuan(a) },
            { title: t('withdrawals.description'), dataIndex: 'description' },
            { title: t('withdrawals.created'), dataIndex: 'created', render: dateTime },
          ]}
        />
      </div>
    </Space>
  );
}
