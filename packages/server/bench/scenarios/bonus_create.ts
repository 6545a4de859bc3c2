import { createUsers, type Scenario } from '../scenario.ts';

const USERS = 100;

/**
 * POST /v1/apps/:app/balance_bonuses with a fresh order_no each time, spread over 100 users so
 * that row locks on one user do not dominate: the write path (auth, schema, order_no check, one
 * ledger transaction with a conditional UPDATE and four INSERTs).
 */
export const bonusCreate: Scenario<string[]> = {
  name: 'bonus_create',
  description: 'POST balance_bonuses (fresh order_no, 100 users)',
  baseline: 'bonus_create_plain',
  setup: (t) => createUsers(t, 'bench_bonus_', USERS),
  requests(t, users) {
    let n = 0;
    const run = Date.now().toString(36);
    return [
      {
        method: 'POST',
        path: `/v1/apps/${t.appId}/balance_bonuses`,
        headers: t.headers,
        setupRequest(req) {
          const i = n++;
          return { ...req, body: JSON.stringify({ user: users[i % users.length], amount: 1, order_no: `b${run}_${i}`, description: 'bench' }) };
        },
      },
    ];
  },
};

/**
 * The same creates with response signing off (TIXIAN_SIGN_RESPONSES=0): every bonus answer is a
 * new body, so each one costs an RSA signature when signing is on.
 */
export const bonusCreatePlain: Scenario<string[]> = {
  ...bonusCreate,
  name: 'bonus_create_plain',
  description: 'POST balance_bonuses, response signing off',
  baseline: undefined,
  serveEnv: { TIXIAN_SIGN_RESPONSES: '0' },
};
