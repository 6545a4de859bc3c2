import type { Compilable, CompiledQuery, QueryResult } from 'kysely';
import type { Db } from './db.ts';

/**
 * Statements compiled once per shape (issue #12, lever 3).
 *
 * Kysely builds an immutable operation tree and compiles it to SQL on every call: ~15–20 µs per
 * statement, more than better-sqlite3 takes to run most of them. A hot statement whose SQL text
 * never changes (only its values do) is written here once with the query builder, as usual, but
 * with named slots in place of values; the first call compiles it for the engine at hand and
 * later calls only put the values into the compiled parameter list. The SQL text stays the same,
 * so the SQLite statement cache and PostgreSQL's named prepared statements (store/db.ts) reuse it.
 *
 *   const findUser = prepared<{ app: string; id: string }>((db, p) =>
 *     db.selectFrom('users').selectAll().where('app', '=', p.app).where('id', '=', p.id));
 *   const { rows } = await findUser.execute(trx, { app, id });
 *
 * A slot must stand for a value (`where(col, '=', p.x)`, `values({ col: p.x })`, sql`${p.x}`);
 * anything that changes the SQL text (an IN list of varying length, an optional filter) needs a
 * shape of its own (`preparedByCount`, or one `prepared` per variant).
 */
class Slot {
  constructor(readonly name: string) {}
}

type Slots<P> = { readonly [K in keyof P]: P[K] };

interface Shape {
  compiled: CompiledQuery;
  /** Per parameter position: the slot's name, or NOT_A_SLOT for a constant kept from the build. */
  names: (string | null)[];
}

export interface Prepared<P, R> {
  execute(db: Db, params: P): Promise<QueryResult<R>>;
  /** The SQL text for this engine (tests and query plans). */
  sql(db: Db): string;
}

/** The engine a Kysely instance (or a transaction of it) speaks, as a cache key for compiled shapes. */
function engineOf(db: Db): object {
  return db.getExecutor().adapter.constructor;
}

export function prepared<P extends Record<string, unknown>, R = unknown>(build: (db: Db, p: Slots<P>) => Compilable<R>): Prepared<P, R> {
  const shapes = new Map<object, Shape>();
  const slots = new Proxy({} as Slots<P>, { get: (_target, name) => new Slot(String(name)) });
  const shapeFor = (db: Db): Shape => {
    const engine = engineOf(db);
    let shape = shapes.get(engine);
    if (!shape) {
      const compiled = build(db, slots).compile();
      const names = compiled.parameters.map((v) => (v instanceof Slot ? v.name : null));
      shape = { compiled, names };
      shapes.set(engine, shape);
    }
    return shape;
  };
  return {
    async execute(db, params) {
      const { compiled, names } = shapeFor(db);
      const parameters = names.map((name, i) => (name === null ? compiled.parameters[i] : bind(params, name)));
      return db.executeQuery<R>({ ...compiled, parameters } as CompiledQuery<R>);
    },
    sql: (db) => shapeFor(db).compiled.sql,
  };
}

function bind(params: Record<string, unknown>, name: string): unknown {
  const value = params[name];
  // A slot left unfilled would bind NULL silently; on the money path that must fail loudly.
  if (value === undefined) throw new Error(`prepared statement: no value for ${name}`);
  return value;
}

/**
 * Shapes that differ only by how many rows they carry (a multi-row INSERT): one prepared shape
 * per count, made on first use. Counts are bounded by the caller's own limits (postings per entry,
 * totals per chunk), so the cache is too.
 */
export function preparedByCount<P extends Record<string, unknown>, R = unknown>(
  max: number,
  build: (db: Db, p: Slots<P>, count: number) => Compilable<R>,
): (count: number) => Prepared<P, R> {
  const byCount = new Map<number, Prepared<P, R>>();
  return (count) => {
    if (!Number.isInteger(count) || count < 1 || count > max) throw new Error(`prepared statement: ${count} rows is outside 1..${max}`);
    let shape = byCount.get(count);
    if (!shape) byCount.set(count, (shape = prepared<P, R>((db, p) => build(db, p, count))));
    return shape;
  };
}

/** Distinct INSERT shapes kept (table × columns × row count); beyond it an INSERT is built per call. */
const INSERT_SHAPES_MAX = 256;

/** A multi-row INSERT compiled for one engine, with each parameter's row and column. */
interface InsertShape {
  compiled: CompiledQuery;
  rowOf: number[];
  columnOf: string[];
}
const insertShapes = new Map<string, Map<object, InsertShape>>();

/**
 * `INSERT INTO table (columns) VALUES (…), (…)` for rows that all carry the same columns (the
 * keys of the first row whose value is not undefined, in the row's own key order), compiled once
 * per table, column list, row count and engine. Its parameters are read straight from the rows
 * by position (the hot path: a withdrawal row has 29 columns). Rows of other shapes go through
 * the query builder.
 */
export function insertRows(db: Db, table: string, objects: readonly object[]): Promise<QueryResult<unknown>> {
  const rows = objects as readonly Record<string, unknown>[];
  const first = rows[0];
  if (!first) throw new Error('insertRows: no rows');
  const columns = definedKeys(first);
  // Same columns in the same order as the first row (row 0 is that row itself).
  const sameShape = rows.every((r, i) => i === 0 || sameKeys(definedKeys(r), columns));
  const key = `${table}\n${columns.join(',')}\n${rows.length}`;
  let byEngine = insertShapes.get(key);
  if (!byEngine && sameShape && insertShapes.size < INSERT_SHAPES_MAX) insertShapes.set(key, (byEngine = new Map()));
  if (!byEngine || !sameShape) return db.executeQuery(db.insertInto(table as never).values(rows as never));
  const engine = engineOf(db);
  let shape = byEngine.get(engine);
  if (!shape) {
    const slots = rows.map((_, i) => Object.fromEntries(columns.map((c) => [c, new Slot(`${i}.${c}`)])));
    const compiled = db.insertInto(table as never).values(slots as never).compile();
    const rowOf: number[] = [];
    const columnOf: string[] = [];
    for (const v of compiled.parameters) {
      if (!(v instanceof Slot)) throw new Error(`insertRows: ${table} compiled a value that is not a row's`);
      const dot = v.name.indexOf('.');
      rowOf.push(Number(v.name.slice(0, dot)));
      columnOf.push(v.name.slice(dot + 1));
    }
    byEngine.set(engine, (shape = { compiled, rowOf, columnOf }));
  }
  const { compiled, rowOf, columnOf } = shape;
  const parameters = new Array<unknown>(rowOf.length);
  for (let k = 0; k < parameters.length; k++) parameters[k] = rows[rowOf[k]!]![columnOf[k]!];
  return db.executeQuery({ ...compiled, parameters });
}

function definedKeys(r: Record<string, unknown>): string[] {
  const keys: string[] = [];
  for (const c in r) if (Object.hasOwn(r, c) && r[c] !== undefined) keys.push(c);
  return keys;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c, j) => c === b[j]);
}
