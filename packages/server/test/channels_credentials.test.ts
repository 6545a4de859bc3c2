import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CredentialsError, fingerprint, summary, validateCredentials, type AlipayCredentials } from '../src/channels/credentials.ts';
import { yuan } from '../src/channels/alipay.ts';
import { livePayoutAmountError } from '../src/domain/channels.ts';

/** The pure rules of live channels: credential checks, fen → yuan, the live amount floor. */
const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const base: AlipayCredentials = {
  channel: 'alipay', app_id: '2021000000000001',
  private_key: pair.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  alipay_public_key: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
};
const refused = (c: AlipayCredentials) => {
  try {
    validateCredentials(c);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialsError);
    return (err as Error).message;
  }
};

describe('channel credentials', () => {
  it('accepts a public-key set, https endpoints and plain http only to this host', () => {
    expect(refused(base)).toBe(null);
    expect(refused({ ...base, endpoint: 'https://openapi-sandbox.dl.alipaydev.com' })).toBe(null);
    expect(refused({ ...base, endpoint: 'http://127.0.0.1:8080' })).toBe(null);
    expect(refused({ ...base, endpoint: 'http://openapi.alipay.com' })).toMatch(/https/);
    expect(refused({ ...base, endpoint: 'https://openapi.alipay.com/gateway.do' })).toMatch(/base URL/);
  });

  it('refuses a set that cannot verify answers or sign requests, without echoing the input', () => {
    expect(refused({ ...base, alipay_public_key: undefined })).toMatch(/Alipay public key/);
    expect(refused({ ...base, private_key: 'SECRETJUNK' })).toBe('the app private key is not a PEM private key');
    expect(refused({ ...base, alipay_public_key: 'SECRETJUNK' })).toBe('the Alipay public key is not a PEM public key');
    expect(refused({ ...base, app_cert: 'x' })).toMatch(/certificate mode needs/);
    expect(refused({ ...base, app_id: 'abc' })).toMatch(/digits/);
    expect(refused({ ...base, order_title: 'x'.repeat(16_385) })).toMatch(/longer than/);
  });

  it('fingerprints tell sets apart and the summary holds no key material', () => {
    expect(fingerprint(base)).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(fingerprint(base)).toBe(fingerprint({ ...base }));
    expect(fingerprint({ ...base, endpoint: 'https://x.example' })).not.toBe(fingerprint(base));
    const shown = JSON.stringify(summary(base));
    expect(shown).not.toContain('PRIVATE');
    expect(shown).not.toContain('PUBLIC KEY');
  });
});

describe('money for Alipay', () => {
  it('fen → yuan strings with two decimals, no floats', () => {
    expect(yuan(0)).toBe('0.00');
    expect(yuan(10)).toBe('0.10');
    expect(yuan(1234)).toBe('12.34');
    expect(yuan(2_147_483_647)).toBe('21474836.47');
    expect(() => yuan(1.5)).toThrow();
    expect(() => yuan(-1)).toThrow();
  });

  it('a live Alipay or WeChat payout below 10 fen is refused; bank channels have no floor here', () => {
    expect(livePayoutAmountError('alipay', 9)).not.toBe(null);
    expect(livePayoutAmountError('alipay', 10)).toBe(null);
    expect(livePayoutAmountError('wx_lite', 9)).not.toBe(null);
    expect(livePayoutAmountError('wx_lite', 10)).toBe(null);
    expect(livePayoutAmountError('unionpay', 1)).toBe(null);
  });
});
