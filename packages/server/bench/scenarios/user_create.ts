import type { Scenario } from '../scenario.ts';

/**
 * POST /v1/apps/:app/users with a fresh id each time: a write with no money in it (one INSERT),
 * signed, so the HTTP, auth and signing cost of a write with the least storage work.
 */
export const userCreate: Scenario<string> = {
  name: 'user_create',
  description: 'POST users (a fresh id each time)',
  setup: async () => Date.now().toString(36),
  requests(t, run) {
    let n = 0;
    return [
      {
        method: 'POST',
        path: `/v1/apps/${t.appId}/users`,
        headers: t.headers,
        setupRequest(req) {
          return { ...req, body: JSON.stringify({ id: `uc${run}_${n++}`, name: 'bench' }) };
        },
      },
    ];
  },
};
