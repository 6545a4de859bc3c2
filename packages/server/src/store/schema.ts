

/**
 * Row types. Conventions: money columns are 64-bit integers in fen; `*_s` timestamps are Unix
 * seconds (what the API shows), `*_ms` are milliseconds (what schedulers use); booleans are
 * stored as 0/1 on both engines; JSON is stored as text so both engines keep exact bytes.
 */
export type Bool = number;

/** The stored form of a mode: livemode is a 0/1 column on both engines. */
export const mode = (s: { livemode: boolean }): Bool => (s.livemode ? 1 : 0);

export interface AccountRow {
  id: string;
  name: string;
  created: number;
  /** The account's own response/webhook signing key (PKCS#8 PEM sealed with the master key); null: the platform key signs. */
  signing_key_sealed: string | null;
}

/** A merchant secret key, known only by its SHA-256 (shown once, at creation or roll). */
export interface SecretKeyRow {
  hash: string;
  account_id: string;
  livemode: Bool;
  /** `sk_test_…abcd`, enough to tell keys apart, never to use one; null for keys migrated from hashes. */
  hint: string | null;
  created: number;
  /** Unix seconds from which the key no longer authenticates; null: until rolled. */
  expires_at: number | null;
  revoked: Bool;
}

export interface AppRow {
  id: string;
  account_id: string;
  name: string;
  created: number;
  rsa_public_key: string | null;
  require_signature_test: Bool;
  require_signature_live: Bool;
}

export interface UserRow {
  pk: string;
  app: string;
  livemode: Bool;
  id: string;
  type: string;
  related_app: string | null;
  address: string | null;
  avatar: string | null;
  email: string | null;
  gender: string | null;
  mobile: string | null;
  name: string | null;
  parent_user_id: string | null;
  metadata: string;
  disabled: Bool;
  identified: Bool;
  /** Everything spendable: withdrawable money plus bonus money. */
  available_balance: number;
  /** The part of available_balance that may leave by withdrawal or transfer. */
  withdrawable_balance: number;
  created: number;
}

export interface JournalEntryRow {
  id: string;
  app: string;
  livemode: Bool;
  type: string;
  source: string;
  created: number;
}

export interface PostingRow {
  entry_id: string;
  seq: number;
  app: string;
  livemode: Bool;
  account: string;
  amount: number;
}

export interface BalanceTransactionRow {
  id: string;
  app: string;
  livemode: Bool;
  user: string;
  user_pk: string;
  entry_id: string;
  amount: number;
  available_balance: number;
  type: string;
  source: string;
  description: string | null;
  created: number;
}

interface OrderRow {
  id: string;
  app: string;
  livemode: Bool;
  order_no: string;
  /** Fingerprint of the create parameters: a retried identical create returns the first object. */
  request_hash: string;
  description: string | null;
  metadata: string;
  created: number;
}

export interface BalanceBonusRow extends OrderRow {
  user: string;
  user_pk: string;
  amount: number;
  balance_transaction: string;
  time_paid: number;
}

export interface BalanceSettlementRow extends OrderRow {
  user: string;
  user_pk: string;
  amount: number;
  balance_transaction: string;
  time_succeeded: number;
}

export interface BalanceTransferRow extends OrderRow {
  status: string;
  amount: number;
  user_fee: number;
  user: string;
  recipient: string;
  user_balance_transaction: string;
  recipient_balance_transaction: string;
}

export interface WithdrawalRow extends OrderRow {
  user: string;
  user_pk: string;
  amount: number;
  user_fee: number;
  fee: number;
  channel: string;
  extra: string;
  status: string;
  failure_msg: string | null;
  source: string | null;
  balance_transaction: string | null;
  settle_account: string | null;
  batch_withdrawal: string | null;
  time_canceled: number | null;
  time_succeeded: number | null;
  request_id: string | null;
  /** Payout worker: when the next submit/query is due (ms); null when no payout work is owed. */
  payout_due_ms: number | null;
  /** Payout worker lease: a claimed withdrawal is not claimed again before this (ms). */
  payout_lease_ms: number | null;
  /** 'submit' until the channel has the order, then 'query'. */
  payout_phase: string | null;
  payout_tries: number;
  /** How many times the withdrawal was confirmed: a round per confirm, part of the channel key. */
  payout_round: number;
  /**
   * 0009: the channel's last answer in this round (outcome kind and the channel's code/message, at
   * most 255 chars, payee details masked) and when it came (ms); null before the first answer.
   * Optional only so rows written before 0009 (migration tests) still type-check.
   */
  payout_answer?: string | null;
  payout_answer_ms?: number | null;
  /** 0009: when the current round was confirmed (ms); null for withdrawals confirmed before 0009. */
  confirmed_ms?: number | null;
}

export interface SandboxPayoutRow {
  key: string;
  withdrawal_id: string;
  recipient: string;
  amount: number;
  submitted_ms: number;
  queries: number;
  /** How many times the order was submitted (0007_scale_out); more than 1 is a double submit. */
  submits: number;
}

export interface BatchWithdrawalRow {
  id: string;
  app: string;
  livemode: Bool;
  status: string;
  metadata: string;
  created: number;
  time_finished: number | null;
  /** The request that made it (services/batch_withdrawals.ts); null for batches made before 0013. */
  request_hash: string | null;
}

export interface SettleAccountRow {
  id: string;
  app: string;
  livemode: Bool;
  user: string;
  user_pk: string;
  channel: string;
  recipient: string;
  created: number;
  deleted: Bool;
}

export interface EventRow {
  id: string;
  app: string;
  account_id: string;
  livemode: Bool;
  type: string;
  created: number;
  /** The exact bytes delivered to endpoints (the event as it was when it happened). */
  body: string;
  /**
   * base64 RSA-SHA256 of body with the key that signs for the account (signing-keys.ts), computed
   * once by the dispatcher and reused by every try while that key signs for the account.
   */
  signature: string | null;
  /** The kid of the key that made `signature` (null with it, and for events signed before 0014). */
  signature_kid: string | null;
  request: string | null;
  pending_webhooks: number;
}

export interface WebhookEndpointRow {
  id: string;
  app: string;
  livemode: Bool;
  url: string;
  events: string;
  /** The endpoint's Standard Webhooks `whsec_…` secret, sealed with the master key; null when not opted in. */
  secret: string | null;
  created: number;
  disabled: Bool;
  /** Consecutive failed tries (0 after any success); above 0 the circuit breaker allows one try in flight. */
  failure_streak: number;
  /** When the current run of failures began; null while the endpoint answers 2xx. */
  failing_since_ms: number | null;
  /** Set when the dispatcher disabled the endpoint after a long run of failures; cleared on re-enable. */
  auto_disabled_ms: number | null;
  auto_disabled_reason: string | null;
}

export interface WebhookDeliveryRow {
  id: string;
  event_id: string;
  endpoint_id: string;
  app: string;
  status: string;
  attempts: number;
  next_attempt_ms: number | null;
  lease_ms: number | null;
  created: number;
  last_attempt_ms: number | null;
  last_status_code: number | null;
}

export interface WebhookAttemptRow {
  id: string;
  delivery_id: string;
  attempted_ms: number;
  status_code: number | null;
  response_body: string | null;
  duration_ms: number;
  error: string | null;
}

export interface SettingRow {
  key: string;
  value: string;
}

/** Live channel credentials of one app, mode and channel, sealed with the master key (channels/credentials.ts). */
export interface ChannelCredentialRow {
  app: string;
  livemode: number;
  channel: string;
  sealed: string;
  fingerprint: string;
  /** Non-secret facts shown by `channels list` (JSON): the channel's app id, key mode, endpoint. */
  summary: string;
  created: number;
  updated: number;
}

export interface Database {
  accounts: AccountRow;
  apps: AppRow;
  users: UserRow;
  journal_entries: JournalEntryRow;
  postings: PostingRow;
  balance_transactions: BalanceTransactionRow;
  balance_bonuses: BalanceBonusRow;
  balance_settlements: BalanceSettlementRow;
  balance_transfers: BalanceTransferRow;
  withdrawals: WithdrawalRow;
  batch_withdrawals: BatchWithdrawalRow;
  settle_accounts: SettleAccountRow;
  events: EventRow;
  webhook_endpoints: WebhookEndpointRow;
  webhook_deliveries: WebhookDeliveryRow;
  webhook_attempts: WebhookAttemptRow;
  sandbox_payouts: SandboxPayoutRow;
  settings: SettingRow;
  secret_keys: SecretKeyRow;
  operators: OperatorRow;
  operator_sessions: OperatorSessionRow;
  audit_log: AuditLogRow;
  withdrawal_totals: WithdrawalTotalRow;
  channel_credentials: ChannelCredentialRow;
}


/** A console operator: of one merchant account, or (account_id null) of the platform, seeing all. */
export interface OperatorRow {
  id: string;
  email: string;
  /** `scrypt$N$r$p$salt$hash` (base64url parts). */
  password_hash: string;
  account_id: string | null;
  disabled: Bool;
  created: number;
}

/** A console session, known only by the SHA-256 of its cookie value. */
export interface OperatorSessionRow {
  token_hash: string;
  operator_id: string;
  created_ms: number;
  expires_ms: number;
}

/** One operator action (or login attempt), written in the transaction of the change it records. */
export interface AuditLogRow {
  id: string;
  /** Unix seconds. */
  created: number;
  operator_id: string | null;
  operator_email: string;
  account_id: string | null;
  action: string;
  app: string | null;
  livemode: Bool | null;
  target: string | null;
  /** JSON object. */
  detail: string;
  ip: string | null;
}

/** Kept sums of withdrawals per app, mode, status, channel and UTC day (`day_s`: the day's first second; -1: all time). */
export interface WithdrawalTotalRow {
  app: string;
  livemode: Bool;
  status: string;
  channel: string;
  day_s: number;
  count: number;
  amount: number;
  /** 0010: which of the key's shards (store/withdrawal_totals.ts totalsShard); readers sum over them. */
  shard: number;
}
