import { lazy, Suspense, useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Navigate, Route, Routes, useLocation, useNavigate } from 'react-router';
import { App as AntApp, Button, ConfigProvider, Empty, Layout, Menu, Segmented, Select, Space, Spin, Typography } from 'antd';
import zhCN from 'antd/locale/zh_CN';
import enUS from 'antd/locale/en_US';
import dayjs from 'dayjs';
import 'dayjs/locale/zh-cn';
import { useTranslation } from 'react-i18next';
import { api, currentSession, logOut, type App as TixianApp } from './api.ts';
import { ScopeContext } from './context.ts';
import { setLanguage } from './i18n.ts';
import { LoginPage } from './pages/Login.tsx';
import { WithdrawalsPage } from './pages/Withdrawals.tsx';
import { AuditPage } from './pages/Audit.tsx';
import { WebhooksPage } from './pages/Webhooks.tsx';
import { UsersPage } from './pages/Users.tsx';
import { DevelopersPage } from './pages/Developers.tsx';

// The chart library is loaded only when the overview is shown (its own chunk).
const OverviewPage = lazy(() => import('./pages/Overview.tsx').then((m) => ({ default: m.OverviewPage })));

export function App() {
  const { i18n } = useTranslation();
  const en = i18n.language === 'en';
  dayjs.locale(en ? 'en' : 'zh-cn');
  return (
    <ConfigProvider locale={en ? enUS : zhCN} theme={{ token: { colorPrimary: '#1677ff' } }}>
      <AntApp>
        <Shell />
      </AntApp>
    </ConfigProvider>
  );
}

function Shell() {
  const queryClient = useQueryClient();
  const session = useQuery({ queryKey: ['session'], queryFn: currentSession, staleTime: Infinity });
  useEffect(() => {
    const onLoggedOut = () => queryClient.setQueryData(['session'], null);
    window.addEventListener('tixian:logged-out', onLoggedOut);
    return () => window.removeEventListener('tixian:logged-out', onLoggedOut);
  }, [queryClient]);
  if (session.isPending) return <Spin fullscreen />;
  if (!session.data) return <LoginPage onLoggedIn={(op) => queryClient.setQueryData(['session'], op)} />;
  return <ConsoleLayout />;
}

function ConsoleLayout() {
  const { t, i18n } = useTranslation();
  const navigate = useNavigate();
  const location = useLocation();
  const queryClient = useQueryClient();
  const operator = useQuery({ queryKey: ['session'], queryFn: currentSession, staleTime: Infinity }).data!;
  const apps = useQuery({ queryKey: ['apps'], queryFn: () => api<{ data: TixianApp[] }>('GET', '/admin/apps') });
  const [app, setApp] = useState<string | null>(() => localStorage.getItem('tixian.app'));
  const [mode, setMode] = useState<'test' | 'live'>(() => (localStorage.getItem('tixian.mode') === 'live' ? 'live' : 'test'));
  const list = apps.data?.data ?? [];
  const current = list.find((a) => a.id === app)?.id ?? list[0]?.id ?? null;
  const section = location.pathname.split('/')[1] || 'withdrawals';

  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Sider theme="light" width={200} breakpoint="lg">
        <Typography.Title level={5} style={{ padding: '16px 24px', margin: 0 }}>{t('brand')}</Typography.Title>
        <Menu
          mode="inline"
          selectedKeys={[section]}
          onClick={(e) => navigate('/' + e.key)}
          items={[
            { key: 'overview', label: t('menu.overview') },
            { key: 'withdrawals', label: t('menu.withdrawals') },
            { key: 'users', label: t('menu.users') },
            { key: 'webhooks', label: t('menu.webhooks') },
            { key: 'developers', label: t('menu.developers') },
            { key: 'audit', label: t('menu.audit') },
          ]}
        />
      </Layout.Sider>
      <Layout>
        <Layout.Header style={{ background: '#fff', padding: '0 24px', display: 'flex', justifyContent: 'space-between', alignItems: 'center' }}>
          <Space>
            <span>{t('header.app')}</span>
            <Select
              data-testid="app-select"
              style={{ minWidth: 240 }}
              value={current}
              loading={apps.isPending}
              options={list.map((a) => ({ value: a.id, label: `${a.name} (${a.account_name})` }))}
              onChange={(v: string) => {
                localStorage.setItem('tixian.app', v);
                setApp(v);
              }}
            />
            <Segmented
              value={mode}
              options={[
                { value: 'test', label: t('header.test') },
                { value: 'live', label: t('header.live') },
              ]}
              onChange={(v) => {
                localStorage.setItem('tixian.mode', v);
                setMode(v as 'test' | 'live');
              }}
            />
          </Space>
          <Space>
            <Button type="link" onClick={() => setLanguage(i18n.language === 'en' ? 'zh-CN' : 'en')}>{t('header.language')}</Button>
            <span data-testid="operator-email">{operator.email}</span>
            <Button
              onClick={async () => {
                await logOut();
                queryClient.clear();
                queryClient.setQueryData(['session'], null);
              }}
            >
              {t('header.logout')}
            </Button>
          </Space>
        </Layout.Header>
        <Layout.Content style={{ margin: 24 }}>
          {current === null ? (
            apps.isPending ? <Spin /> : <Empty />
          ) : (
            <ScopeContext.Provider value={{ operator, app: current, mode }}>
              <Suspense fallback={<Spin />}>
                <Routes>
                  <Route path="/" element={<Navigate to="/withdrawals" replace />} />
                  <Route path="/overview" element={<OverviewPage />} />
                  <Route path="/withdrawals" element={<WithdrawalsPage />} />
                  <Route path="/audit" element={<AuditPage />} />
                  <Route path="/users" element={<UsersPage />} />
                  <Route path="/webhooks" element={<WebhooksPage />} />
                  <Route path="/developers" element={<DevelopersPage />} />
                  <Route path="*" element={<Navigate to="/withdrawals" replace />} />
                </Routes>
              </Suspense>
            </ScopeContext.Provider>
          )}
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
