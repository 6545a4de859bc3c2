import { useState } from 'react';
import { Alert, Button, Card, Form, Input, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { logIn, type Operator } from '../api.ts';
import { setLanguage } from '../i18n.ts';

export function LoginPage({ onLoggedIn }: { onLoggedIn: (op: Operator) => void }) {
  const { t, i18n } = useTranslation();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <div style={{ minHeight: '100vh', display: 'flex', alignItems: 'center', justifyContent: 'center', background: '#f0f2f5' }}>
      <Card style={{ width: 380 }}>
        <Typography.Title level={3}>{t('brand')}</Typography.Title>
        <Typography.Paragraph type="secondary">{t('login.title')}</Typography.Paragraph>
        {error && <Alert type="error" title={error} style={{ marginBottom: 16 }} data-testid="login-error" />}
        <Form
          layout="vertical"
          onFinish={async (v: { email: string; password: string }) => {
            setBusy(true);
            setError(null);
            try {
              onLoggedIn(await logIn(v.email, v.password));
            } catch (err) {
              setError((err as Error).message);
            } finally {
              setBusy(false);
            }
          }}
        >
          <Form.Item name="email" label={t('login.email')} rules={[{ required: true, message: t('login.required') }]}>
            <Input autoComplete="username" data-testid="login-email" />
          </Form.Item>
          <Form.Item name="password" label={t('login.password')} rules={[{ required: true, message: t('login.required') }]}>
            <Input.Password autoComplete="current-password" data-testid="login-password" />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy} data-testid="login-submit">
            {t('login.submit')}
          </Button>
        </Form>
        <Button type="link" style={{ marginTop: 8, padding: 0 }} onClick={() => setLanguage(i18n.language === 'en' ? 'zh-CN' : 'en')}>
          {t('header.language')}
        </Button>
      </Card>
    </div>
  );
}
