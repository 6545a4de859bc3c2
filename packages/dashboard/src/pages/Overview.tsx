import { useEffect, useRef } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Card, Col, List, Row, Statistic, Table, Tag, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import * as echarts from 'echarts/core';
import { BarChart, LineChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { api, yuan, type Overview } from '../api.ts';
import { useScope } from '../context.ts';
import { StatusTag } from './Withdrawals.tsx';

echarts.use([BarChart, LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export function OverviewPage() {
  const { t } = useTranslation();
  const { app, mode } = useScope();
  const q = useQuery({ queryKey: ['overview', app, mode], queryFn: () => api<Overview>('GET', `/admin/apps/${app}/overview?mode=${mode}`) });
  const o = q.data;
  const byStatus = (rows: Overview['today']) => (
    <Table
      rowKey="status"
      size="small"
      pagination={false}
      dataSource={rows}
      columns={[
        { title: t('withdrawals.status'), dataIndex: 'status', render: (s: string) => <StatusTag status={s} /> },
        { title: t('overview.count'), dataIndex: 'count', align: 'right' },
        { title: t('overview.amount'), dataIndex: 'amount', align: 'right', render: (a: number) => yuan(a) },
      ]}
    />
  );
  return (
    <Row gutter={[16, 16]} data-testid="overview">
      <Col span={6}>
        <Card><Statistic title={t('overview.waiting')} value={o?.waiting ?? 0} loading={q.isPending} /></Card>
      </Col>
      <Col span={9}>
        <Card title={t('overview.today')} loading={q.isPending}>{o && byStatus(o.today)}</Card>
      </Col>
      <Col span={9}>
        <Card title={t('overview.week')} loading={q.isPending}>{o && byStatus(o.week)}</Card>
      </Col>
      <Col span={16}>
        <Card title={t('overview.daily')}>{o && <DailyChart daily={o.daily} />}</Card>
      </Col>
      <Col span={8}>
        <Card title={t('overview.failing')} loading={q.isPending}>
          <List
            dataSource={o?.failing_endpoints ?? []}
            locale={{ emptyText: t('overview.none') }}
            renderItem={(e) => (
              <List.Item>
                <Typography.Text ellipsis style={{ maxWidth: 220 }}>{e.url}</Typography.Text>
                <span>
                  {e.failure_streak} {t('overview.streak')} {e.auto_disabled && <Tag color="red">{t('overview.disabled')}</Tag>}
                </span>
              </List.Item>
            )}
          />
        </Card>
      </Col>
    </Row>
  );
}

function DailyChart({ daily }: { daily: Overview['daily'] }) {
  const { t } = useTranslation();
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const chart = echarts.init(ref.current);
    chart.setOption({
      tooltip: { trigger: 'axis' },
      legend: { data: [t('overview.amount'), t('overview.successRate')] },
      xAxis: { type: 'category', data: daily.map((d) => d.day.slice(5)) },
      yAxis: [
        { type: 'value', name: '¥', axisLabel: { formatter: (v: number) => String(v / 100) } },
        { type: 'value', name: '%', min: 0, max: 100 },
      ],
      series: [
        { name: t('overview.amount'), type: 'bar', data: daily.map((d) => d.amount) },
        {
          name: t('overview.successRate'),
          type: 'line',
          yAxisIndex: 1,
          data: daily.map((d) => (d.succeeded + d.failed === 0 ? null : Math.round((d.succeeded * 100) / (d.succeeded + d.failed)))),
        },
      ],
    });
    const onResize = () => chart.resize();
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      chart.dispose();
    };
  }, [daily, t]);
  return <div ref={ref} style={{ height: 300 }} />;
}
