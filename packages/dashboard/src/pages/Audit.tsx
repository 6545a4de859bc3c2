import { useInfiniteQuery } from '@tanstack/react-query';
import { Button, Card, Table, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { api, dateTime, type AuditLine } from '../api.ts';

export function AuditPage() {
  const { t } = useTranslation();
  const q = useInfiniteQuery({
    queryKey: ['audit'],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => api<{ data: AuditLine[]; has_more: boolean }>('GET', `/admin/audit?limit=50${pageParam ? `&starting_after=${pageParam}` : ''}`),
    getNextPageParam: (last) => (last.has_more ? (last.data.at(-1)?.id ?? null) : null),
  });
  const rows = q.data?.pages.flatMap((p) => p.data) ?? [];
  return (
    <Card title={t('audit.title')}>
      <Table<AuditLine>
        rowKey="id"
        size="middle"
        loading={q.isFetching}
        dataSource={rows}
        pagination={false}
        onRow={(a) => ({ 'data-testid': `audit-${a.action}-${a.target ?? ''}` }) as object}
        columns={[
          { title: t('audit.time'), dataIndex: 'created', render: dateTime },
          { title: t('audit.operator'), dataIndex: 'operator' },
          { title: t('audit.action'), dataIndex: 'action' },
          { title: t('audit.target'), dataIndex: 'target', render: (v: string | null, a) => (v ? `${v}${a.livemode === null ? '' : a.livemode ? ' (live)' : ' (test)'}` : '—') },
          { title: 'detail', dataIndex: 'detail', render: (d: Record<string, unknown>) => <Typography.Text code>{JSON.stringify(d)}</Typography.Text> },
          { title: t('audit.ip'), dataIndex: 'ip' },
        ]}
      />
      {q.hasNextPage && (
        <Button style={{ marginTop: 16 }} onClick={() => void q.fetchNextPage()} loading={q.isFetchingNextPage}>
          {t('audit.more')}
        </Button>
      )}
    </Card>
  );
}
