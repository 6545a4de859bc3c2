import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { sql } from 'kysely';
import { isSqlite } from './engine.ts';

/**
 * Versioned migrations. Each is applied once, in name order, by `tixian migrate` and at start-up.
 * Never edit a migration that has shipped: add a new one. Column types are chosen to mean the
 * same on SQLite and PostgreSQL (bigint money and times, integer 0/1 booleans, text JSON).
 */
const m0001_initial: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('key_test_hash', 'text', (c) => c.notNull().unique())
      .addColumn('key_live_hash', 'text', (c) => c.notNull().unique())
      .addColumn('key_test_enc', 'text', (c) => c.notNull())
      .addColumn('key_live_enc', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('apps')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('rsa_public_key', 'text')
      .addColumn('require_signature_test', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('require_signature_live', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('apps_account').on('apps').columns(['account_id', 'created']).execute();

    await db.schema
      .createTable('users')
      .addColumn('pk', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('related_app', 'text')
      .addColumn('address', 'text')
      .addColumn('avatar', 'text')
      .addColumn('email', 'text')
      .addColumn('gender', 'text')
      .addColumn('mobile', 'text')
      .addColumn('name', 'text')
      .addColumn('parent_user_id', 'text')
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('disabled', 'integer', (c) => c.notNull())
      .addColumn('identified', 'integer', (c) => c.notNull())
      .addColumn('available_balance', 'bigint', (c) => c.notNull().check(sql`available_balance >= 0`))
      .addColumn('withdrawable_balance', 'bigint', (c) =>
        c.notNull().check(sql`withdrawable_balance >= 0 AND withdrawable_balance <= available_balance`),
      )
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('users_app_id', ['app', 'livemode', 'id'])
      .execute();
    await db.schema.createIndex('users_list').on('users').columns(['app', 'livemode', 'created', 'id']).execute();

    await db.schema
      .createTable('journal_entries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('postings')
      .addColumn('entry_id', 'text', (c) => c.notNull().references('journal_entries.id'))
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('account', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('postings_pk', ['entry_id', 'seq'])
      .execute();
    await db.schema.createIndex('postings_account').on('postings').columns(['account']).execute();

    await db.schema
      .createTable('balance_transactions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('user_pk', 'text', (c) => c.notNull())
      .addColumn('entry_id', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('available_balance', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('btx_list').on('balance_transactions').columns(['app', 'livemode', 'created', 'id']).execute();
    await db.schema.createIndex('btx_user').on('balance_transactions').columns(['app', 'livemode', 'user', 'created', 'id']).execute();

    const orderTable = (name: string) =>
      db.schema
        .createTable(name)
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app', 'text', (c) => c.notNull())
        .addColumn('livemode', 'integer', (c) => c.notNull())
        .addColumn('order_no', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created', 'bigint', (c) => c.notNull())
        .addUniqueConstraint(`${name}_order_no`, ['app', 'livemode', 'order_no']);

    await orderTable('balance_bonuses')
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('user_pk', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('balance_transaction', 'text', (c) => c.notNull())
      .addColumn('time_paid', 'bigint', (c) => c.notNull())
      .execute();
    await orderTable('balance_settlements')
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('user_pk', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('balance_transaction', 'text', (c) => c.notNull())
      .addColumn('time_succeeded', 'bigint', (c) => c.notNull())
      .execute();
    await orderTable('balance_transfers')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('user_fee', 'bigint', (c) => c.notNull())
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('recipient', 'text', (c) => c.notNull())
      .addColumn('user_balance_transaction', 'text', (c) => c.notNull())
      .addColumn('recipient_balance_transaction', 'text', (c) => c.notNull())
      .execute();
    await orderTable('withdrawals')
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('user_pk', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('user_fee', 'bigint', (c) => c.notNull())
      .addColumn('fee', 'bigint', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('extra', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('failure_msg', 'text')
      .addColumn('source', 'text')
      .addColumn('balance_transaction', 'text')
      .addColumn('settle_account', 'text')
      .addColumn('batch_withdrawal', 'text')
      .addColumn('time_canceled', 'bigint')
      .addColumn('time_succeeded', 'bigint')
      .addColumn('request_id', 'text')
      .addColumn('payout_due_ms', 'bigint')
      .addColumn('payout_lease_ms', 'bigint')
      .addColumn('payout_phase', 'text')
      .addColumn('payout_tries', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('payout_round', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    for (const [name, cols] of [
      ['withdrawals_list', ['app', 'livemode', 'created', 'id']],
      ['withdrawals_user', ['app', 'livemode', 'user', 'created', 'id']],
      ['withdrawals_status', ['app', 'livemode', 'status', 'created', 'id']],
      ['withdrawals_channel', ['app', 'livemode', 'channel', 'created', 'id']],
      ['withdrawals_batch', ['batch_withdrawal']],
      ['withdrawals_payout_due', ['payout_due_ms']],
    ] as const) {
      await db.schema.createIndex(name).on('withdrawals').columns([...cols]).execute();
    }
    for (const t of ['balance_bonuses', 'balance_settlements', 'balance_transfers']) {
      await db.schema.createIndex(`${t}_list`).on(t).columns(['app', 'livemode', 'created', 'id']).execute();
    }
    // Lists filtered by user (bonuses, settlements) and by sender or recipient (transfers).
    for (const [t, col] of [
      ['balance_bonuses', 'user'],
      ['balance_settlements', 'user'],
      ['balance_transfers', 'user'],
      ['balance_transfers', 'recipient'],
    ] as const) {
      await db.schema.createIndex(`${t}_${col}`).on(t).columns(['app', 'livemode', col, 'created', 'id']).execute();
    }

    await db.schema
      .createTable('batch_withdrawals')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('time_finished', 'bigint')
      .execute();
    await db.schema.createIndex('batch_withdrawals_list').on('batch_withdrawals').columns(['app', 'livemode', 'created', 'id']).execute();

    await db.schema
      .createTable('settle_accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('user_pk', 'text', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('recipient', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('settle_accounts_user').on('settle_accounts').columns(['user_pk', 'created', 'id']).execute();

    await db.schema
      .createTable('events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('signature', 'text')
      .addColumn('request', 'text')
      .addColumn('pending_webhooks', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('events_list').on('events').columns(['account_id', 'livemode', 'created', 'id']).execute();

    await db.schema
      .createTable('webhook_endpoints')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('events', 'text', (c) => c.notNull())
      .addColumn('secret', 'text')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('webhook_endpoints_app').on('webhook_endpoints').columns(['app', 'livemode']).execute();

    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('endpoint_id', 'text', (c) => c.notNull())
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_ms', 'bigint')
      .addColumn('lease_ms', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('last_attempt_ms', 'bigint')
      .addColumn('last_status_code', 'integer')
      .execute();
    await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['next_attempt_ms']).execute();
    await db.schema.createIndex('webhook_deliveries_event').on('webhook_deliveries').columns(['event_id']).execute();
    await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint_id', 'status', 'created']).execute();

    await db.schema
      .createTable('webhook_attempts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('delivery_id', 'text', (c) => c.notNull())
      .addColumn('attempted_ms', 'bigint', (c) => c.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('response_body', 'text')
      .addColumn('duration_ms', 'integer', (c) => c.notNull())
      .addColumn('error', 'text')
      .execute();
    await db.schema.createIndex('webhook_attempts_delivery').on('webhook_attempts').columns(['delivery_id', 'attempted_ms']).execute();

    // The sandbox channel remembers what it was sent, like a real channel does, so that a submit
    // repeated after a crash is recognised by its idempotency key and pays once.
    await db.schema
      .createTable('sandbox_payouts')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('withdrawal_id', 'text', (c) => c.notNull())
      .addColumn('recipient', 'text', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('submitted_ms', 'bigint', (c) => c.notNull())
      .addColumn('queries', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();

    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};

/**
 * Secret keys move to a table of their own (several per account and mode while a roll lets the old
 * one run out), stored as SHA-256 only: the sealed copies that let the CLI print a key again are
 * dropped, as are the hash columns of `accounts`. Existing keys keep working (their hashes are
 * copied; they have no display hint since only their hash is known). Accounts gain an optional
 * signing key of their own (a PKCS#8 RSA private key sealed with the master key).
 *
 * SQLite cannot drop a UNIQUE column, so there `accounts` is rebuilt the documented way (foreign
 * keys off, new table, copy, drop, rename, foreign_key_check) in one transaction. Kysely runs
 * SQLite migrations outside a transaction, which is what lets the pragma take effect.
 */
const m0003_secret_keys: Migration = {
  async up(db: Kysely<unknown>) {
    const sqlite = isSqlite(db);
    const createSecretKeys = async (q: Kysely<unknown>) => {
      await q.schema
        .createTable('secret_keys')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
        .addColumn('livemode', 'integer', (c) => c.notNull())
        .addColumn('hint', 'text')
        .addColumn('created', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await q.schema.createIndex('secret_keys_account').on('secret_keys').columns(['account_id', 'livemode', 'created']).execute();
      await sql`INSERT INTO secret_keys (hash, account_id, livemode, hint, created, expires_at, revoked)
        SELECT key_test_hash, id, 0, NULL, created, NULL, 0 FROM accounts`.execute(q);
      await sql`INSERT INTO secret_keys (hash, account_id, livemode, hint, created, expires_at, revoked)
        SELECT key_live_hash, id, 1, NULL, created, NULL, 0 FROM accounts`.execute(q);
    };
    if (!sqlite) {
      await createSecretKeys(db);
      await db.schema
        .alterTable('accounts')
        .dropColumn('key_test_hash')
        .dropColumn('key_live_hash')
        .dropColumn('key_test_enc')
        .dropColumn('key_live_enc')
        .addColumn('signing_key_sealed', 'text')
        .execute();
      return;
    }
    await sql`PRAGMA foreign_keys = OFF`.execute(db);
    try {
      await sql`BEGIN IMMEDIATE`.execute(db);
      try {
        // Kysely records a SQLite migration after it ran, outside its transaction: a crash in between
        // leaves it done but unrecorded, so a second run finds the work done and only lets it be
        // recorded. Looked at under the write lock: another process may have just done it (below).
        const done = await sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'secret_keys'`.execute(db);
        if (done.rows.length > 0) {
          await sql`COMMIT`.execute(db);
          return;
        }
        await createSecretKeys(db);
        await db.schema
          .createTable('accounts_0003')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('created', 'bigint', (c) => c.notNull())
          .addColumn('signing_key_sealed', 'text')
          .execute();
        await sql`INSERT INTO accounts_0003 (id, name, created) SELECT id, name, created FROM accounts`.execute(db);
        await db.schema.dropTable('accounts').execute();
        await db.schema.alterTable('accounts_0003').renameTo('accounts').execute();
        const broken = await sql`PRAGMA foreign_key_check`.execute(db);
        if (broken.rows.length > 0) throw new Error(`0003_secret_keys: foreign key check failed: ${JSON.stringify(broken.rows.slice(0, 5))}`);
        await sql`COMMIT`.execute(db);
      } catch (err) {
        await sql`ROLLBACK`.execute(db);
        throw err;
      }
    } finally {
      await sql`PRAGMA foreign_keys = ON`.execute(db);
    }
  },
};

/**
 * Webhook endpoint health: the run of failed tries (drives the circuit breaker and auto-disable)
 * and the automatic disable, kept apart from `disabled` (which means removed by the operator).
 */
const m0002_webhook_endpoint_health: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable('webhook_endpoints')
      .addColumn('failure_streak', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('webhook_endpoints').addColumn('failing_since_ms', 'bigint').execute();
    await db.schema.alterTable('webhook_endpoints').addColumn('auto_disabled_ms', 'bigint').execute();
    await db.schema.alterTable('webhook_endpoints').addColumn('auto_disabled_reason', 'text').execute();
  },
};

/**
 * The management console: operator accounts (an operator belongs to one merchant account, or to
 * none: a platform operator who sees every account), their sessions (known by the SHA-256 of the
 * cookie value only) and the audit log of every operator action.
 */
const m0006_console: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('operators')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text', (c) => c.references('accounts.id'))
      .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('operator_sessions')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('operator_id', 'text', (c) => c.notNull().references('operators.id'))
      .addColumn('created_ms', 'bigint', (c) => c.notNull())
      .addColumn('expires_ms', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('operator_sessions_operator').on('operator_sessions').columns(['operator_id', 'expires_ms']).execute();
    await db.schema
      .createTable('audit_log')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('operator_id', 'text')
      .addColumn('operator_email', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text')
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('app', 'text')
      .addColumn('livemode', 'integer')
      .addColumn('target', 'text')
      .addColumn('detail', 'text', (c) => c.notNull())
      .addColumn('ip', 'text')
      .execute();
    await db.schema.createIndex('audit_log_list').on('audit_log').columns(['created', 'id']).execute();
    await db.schema.createIndex('audit_log_account').on('audit_log').columns(['account_id', 'created', 'id']).execute();
    await db.schema.createIndex('audit_log_target').on('audit_log').columns(['target', 'created']).execute();
  },
};

/**
 * Lists that answer in the time of a page, not of the table (issue #16).
 * - withdrawal_totals: `total_withdrawals_amount` read from sums kept in the transaction that
 *   inserts a withdrawal or changes its status, per app, mode, status, channel and UTC day (so a
 *   `created` range reads whole-day buckets plus at most two partial days), and all-time
 *   (day_s = -1). Backfilled here.
 * - indexes for the filter combinations that had none, and for the users list ordered by pk.
 */
const m0004_list_growth: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('withdrawal_totals')
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('day_s', 'bigint', (c) => c.notNull())
      .addColumn('count', 'bigint', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('withdrawal_totals_pk', ['app', 'livemode', 'status', 'channel', 'day_s'])
      .execute();
    await sql`insert into withdrawal_totals (app, livemode, status, channel, day_s, count, amount)
      select app, livemode, status, channel, created - (created % 86400), count(*), sum(amount)
      from withdrawals group by app, livemode, status, channel, created - (created % 86400)`.execute(db);
    // The all-time buckets (day_s = -1): a total without a created range reads these.
    await sql`insert into withdrawal_totals (app, livemode, status, channel, day_s, count, amount)
      select app, livemode, status, channel, -1, count(*), sum(amount)
      from withdrawals group by app, livemode, status, channel`.execute(db);
    for (const [name, table, cols] of [
      ['withdrawals_status_channel', 'withdrawals', ['app', 'livemode', 'status', 'channel', 'created', 'id']],
      ['users_list_pk', 'users', ['app', 'livemode', 'created', 'pk']],
      ['users_type', 'users', ['app', 'livemode', 'type', 'created', 'pk']],
      ['btx_type', 'balance_transactions', ['app', 'livemode', 'type', 'created', 'id']],
      ['events_type', 'events', ['account_id', 'livemode', 'type', 'created', 'id']],
      ['batch_withdrawals_status', 'batch_withdrawals', ['app', 'livemode', 'status', 'created', 'id']],
    ] as const) {
      await db.schema.createIndex(name).on(table).columns([...cols]).execute();
    }
    // events?delivery_success=…: walking events newest first, each event asks "has it a delivery
    // not succeeded?" of this small index (only the unfinished ones), not of all its deliveries.
    await db.schema
      .createIndex('webhook_deliveries_unsucceeded')
      .on('webhook_deliveries')
      .column('event_id')
      .where(sql.ref('status'), '<>', 'succeeded')
      .execute();
  },
};

/**
 * Live payout credentials per app, mode and channel (#13): the whole credential set sealed with the
 * master key (never stored in the clear), plus a fingerprint that lets an operator tell sets apart.
 */
const m0005_channel_credentials: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('channel_credentials')
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('sealed', 'text', (c) => c.notNull())
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      .addColumn('summary', 'text', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('updated', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('channel_credentials_pk', ['app', 'livemode', 'channel'])
      .execute();
  },
};

/**
 * The sandbox channel counts submits per key: a channel told twice to pay one order is what the
 * chaos run (bench/chaos.ts) must never see, and without a count a repeated submit left no trace.
 */
const m0007_scale_out: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('sandbox_payouts').addColumn('submits', 'integer', (c) => c.notNull().defaultTo(1)).execute();
  },
};

/**
 * The channel's last answer of a payout and the confirm time (#11): `tixian withdrawals stuck`
 * shows the channel's own words and counts the age from the confirm, not from creation.
 */
const m0009_payout_last_answer: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('withdrawals').addColumn('payout_answer', 'text').execute();
    await db.schema.alterTable('withdrawals').addColumn('payout_answer_ms', 'bigint').execute();
    await db.schema.alterTable('withdrawals').addColumn('confirmed_ms', 'bigint').execute();
  },
};

/**
 * The kept withdrawal totals in shards (#12): on PostgreSQL every create of an app upserted the
 * same two rows (its status, channel and day, and all-time) and held their locks until its commit
 * was flushed, so creates over many users queued one commit at a time. Writers now pick one of a
 * few shards per user (store/withdrawal_totals.ts totalsShard), readers sum over the shards.
 * Existing rows become shard 0. The new primary key needs a new table on SQLite: built, filled,
 * swapped in one transaction (nothing references it); on PostgreSQL the key is altered in place.
 */
const m0010_withdrawal_totals_shards: Migration = {
  async up(db: Kysely<unknown>) {
    const sqlite = isSqlite(db);
    if (!sqlite) {
      await db.schema.alterTable('withdrawal_totals').addColumn('shard', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('withdrawal_totals').dropConstraint('withdrawal_totals_pk').execute();
      await db.schema
        .alterTable('withdrawal_totals')
        .addPrimaryKeyConstraint('withdrawal_totals_pk', ['app', 'livemode', 'status', 'channel', 'day_s', 'shard'])
        .execute();
      return;
    }
    // In one transaction, and only when not done already: atomicOnSqlite (below).
    await db.schema
      .createTable('withdrawal_totals_0010')
      .addColumn('app', 'text', (c) => c.notNull())
      .addColumn('livemode', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('day_s', 'bigint', (c) => c.notNull())
      .addColumn('count', 'bigint', (c) => c.notNull())
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('shard', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('withdrawal_totals_pk', ['app', 'livemode', 'status', 'channel', 'day_s', 'shard'])
      .execute();
    await sql`INSERT INTO withdrawal_totals_0010 (app, livemode, status, channel, day_s, count, amount, shard)
      SELECT app, livemode, status, channel, day_s, count, amount, 0 FROM withdrawal_totals`.execute(db);
    await db.schema.dropTable('withdrawal_totals').execute();
    await db.schema.alterTable('withdrawal_totals_0010').renameTo('withdrawal_totals').execute();
  },
};

/**
 * 0011: the two withdrawal indexes whose column is null for most rows become partial. Every
 * withdrawal create wrote an entry into both (batch_withdrawal is null outside a batch,
 * payout_due_ms until the merchant confirms), and no query ever looks for the nulls: each one
 * compares the column (`batch_withdrawal = ?`, `payout_due_ms <= ?`, `… is not null`), which
 * implies the index's condition on both engines, so the same plans keep using them (growth_plans
 * tests). Two fewer index writes per create (issue #12). Idempotent: a crash before the record
 * of it only makes the next start do it again. On PostgreSQL the indexes are built CONCURRENTLY
 * after the migrations' transaction instead (pg/online-indexes.ts): writes go on meanwhile.
 */
const m0011_partial_withdrawal_indexes: Migration = {
  async up(db: Kysely<unknown>) {
    if (!isSqlite(db)) return;
    for (const [name, column] of [
      ['withdrawals_batch', 'batch_withdrawal'],
      ['withdrawals_payout_due', 'payout_due_ms'],
    ] as const) {
      await db.schema.dropIndex(name).ifExists().execute();
      await db.schema.createIndex(name).ifNotExists().on('withdrawals').column(column).where(sql.ref(column), 'is not', null).execute();
    }
  },
};

/**
 * 0012: the kept withdrawal totals by day first. Their primary key leads with status and channel,
 * so a total without a status (the all-time buckets, `day_s = -1`, or a `created` range) walked
 * every bucket row of the app and kept the day's. With 16 shards per key on PostgreSQL (0010) that
 * is 16 times the rows: the growth bench on PostgreSQL (1,000,000 withdrawals over a year) took
 * 42 ms for the unfiltered list's total, 6.5 times its time at 10,000. This index reads only the
 * days asked for (and the status, when given). On PostgreSQL it is built CONCURRENTLY after the
 * migrations' transaction (pg/online-indexes.ts).
 */
const m0012_withdrawal_totals_by_day: Migration = {
  async up(db: Kysely<unknown>) {
    if (!isSqlite(db)) return;
    await db.schema.createIndex('withdrawal_totals_day').ifNotExists().on('withdrawal_totals').columns(['app', 'livemode', 'day_s', 'status', 'channel']).execute();
  },
};

/**
 * 0013: a batch remembers the request that made it (a hash of its withdrawals, status and
 * metadata), so the same request sent again (pingpp-java re-sends a POST after a connection error
 * or any 5xx, its answer lost) answers the batch it made instead of a 400 "already belongs to batch".
 * Batches made before have none and are never replayed.
 */
const m0013_batch_request_hash: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('batch_withdrawals').addColumn('request_hash', 'text').execute();
  },
};

/**
 * 0014: which key made an event's stored signature (SigningKey.kid: 'platform' or `acct:…`). A try
 * reuses the stored signature only while that key still signs for the event's account; after the
 * account switches key (`tixian apps signing-key create|remove`) its retries and resends are signed
 * again with the new one (webhooks/dispatcher.ts). Events signed before have none: each is signed
 * again once, at its next try. Nullable, no default: instant on both engines.
 */
const m0014_event_signature_kid: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('events').addColumn('signature_kid', 'text').execute();
  },
};

/** The last thing a migration makes: when it exists, the migration ran to its end. */
type Made = { table: string } | { index: string } | { column: readonly [table: string, column: string] };

async function exists(db: Kysely<unknown>, made: Made): Promise<boolean> {
  const { rows } =
    'column' in made
      ? await sql`SELECT 1 FROM pragma_table_info(${made.column[0]}) WHERE name = ${made.column[1]}`.execute(db)
      : 'table' in made
        ? await sql`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ${made.table}`.execute(db)
        : await sql`SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ${made.index}`.execute(db);
  return rows.length > 0;
}

/**
 * On SQLite, Kysely runs a migration's statements one by one, each committing on its own, and
 * records the migration only after it returned (its SQLite adapter claims no transactional DDL).
 * A crash in the middle left a migration half done, and a crash between its end and its record
 * one done but unrecorded: either way the next start ran it again and failed ("table … already
 * exists", "duplicate column name"), and the server could not start until someone repaired the
 * file by hand. So on SQLite such a migration runs in one transaction (SQLite's DDL is
 * transactional: a crash undoes all of it), and one whose last object exists is only recorded
 * (looked at inside that transaction, so two processes migrating one file at once do not both run it).
 * PostgreSQL runs the migrations and their records in one transaction: nothing to do there.
 * (0003 manages its own transaction and check: its pragma must be set outside one; 0011 and
 * 0012 are idempotent.)
 */
function atomicOnSqlite(migration: Migration, last: Made): Migration {
  return {
    async up(db: Kysely<unknown>) {
      if (!isSqlite(db)) return migration.up(db);
      await sql`BEGIN IMMEDIATE`.execute(db);
      try {
        // Under the write lock: a process started alongside this one (an API and a worker process
        // on one file) may have run it between Kysely's look at what is pending and here.
        if (!(await exists(db, last))) await migration.up(db);
        await sql`COMMIT`.execute(db);
      } catch (err) {
        await sql`ROLLBACK`.execute(db);
        throw err;
      }
    },
  };
}

export const migrations: Record<string, Migration> = {
  '0001_initial': atomicOnSqlite(m0001_initial, { table: 'settings' }),
  '0002_webhook_endpoint_health': atomicOnSqlite(m0002_webhook_endpoint_health, { column: ['webhook_endpoints', 'auto_disabled_reason'] }),
  '0003_secret_keys': m0003_secret_keys,
  '0004_list_growth': atomicOnSqlite(m0004_list_growth, { index: 'webhook_deliveries_unsucceeded' }),
  '0005_channel_credentials': atomicOnSqlite(m0005_channel_credentials, { table: 'channel_credentials' }),
  '0006_console': atomicOnSqlite(m0006_console, { index: 'audit_log_target' }),
  '0007_scale_out': atomicOnSqlite(m0007_scale_out, { column: ['sandbox_payouts', 'submits'] }),
  '0009_payout_last_answer': atomicOnSqlite(m0009_payout_last_answer, { column: ['withdrawals', 'confirmed_ms'] }),
  '0010_withdrawal_totals_shards': atomicOnSqlite(m0010_withdrawal_totals_shards, { column: ['withdrawal_totals', 'shard'] }),
  '0011_partial_withdrawal_indexes': m0011_partial_withdrawal_indexes,
  '0012_withdrawal_totals_by_day': m0012_withdrawal_totals_by_day,
  '0013_batch_request_hash': atomicOnSqlite(m0013_batch_request_hash, { column: ['batch_withdrawals', 'request_hash'] }),
  '0014_event_signature_kid': atomicOnSqlite(m0014_event_signature_kid, { column: ['events', 'signature_kid'] }),
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
