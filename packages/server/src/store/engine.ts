import { PostgresAdapter, SqliteAdapter, type DialectAdapter } from 'kysely';

/** Anything that runs queries: a Kysely instance, a transaction, a connection (of any schema). */
interface Queries {
  getExecutor(): { readonly adapter: DialectAdapter };
}

/**
 * The engine a query runs on, for the statements written per engine. Kysely's adapter is the one
 * sign of it where only a Kysely instance or transaction is at hand (no Store).
 */
export const isPostgres = (db: Queries): boolean => db.getExecutor().adapter instanceof PostgresAdapter;
export const isSqlite = (db: Queries): boolean => db.getExecutor().adapter instanceof SqliteAdapter;
