// Times every SQLite statement a server runs, by its text, and writes the totals when it exits:
//   SQLITE_TIMES_DIR=/tmp/st npm run bench -- --only NAME --engines sqlite \
//     --server-node-options="--import $PWD/packages/server/bench/tools/sqlite-statement-times.mjs"
// (an absolute path: the server runs in its data directory). One file per server process,
// `sqlite-statement-times.<pid>.txt` in SQLITE_TIMES_DIR (default: the temporary directory; not a
// TIXIAN_* name, which the bench does not pass on): the time in all, then per statement its total,
// count, µs each and text (parameter lists folded). A CPU profile shows the native time inside the
// driver's executeQuery as one lump; this says which statement it was. For measuring only: it
// wraps better-sqlite3's Statement methods.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const require = createRequire(new URL('../../package.json', import.meta.url));
const Database = require('better-sqlite3');
const SHOWN = 40;
const stats = new Map();
const fold = (source) => source.replace(/\s+/g, ' ').replace(/\?(, \?)+/g, '?…').replace(/\(\?…\)(, \(\?…\))+/g, '(…)…').slice(0, 200);

let wrapped = false;
const prepare = Database.prototype.prepare;
Database.prototype.prepare = function (source, ...rest) {
  const statement = prepare.call(this, source, ...rest);
  if (!wrapped) {
    wrapped = true;
    const proto = Object.getPrototypeOf(statement);
    for (const method of ['all', 'run', 'get']) {
      const original = proto[method];
      proto[method] = function (...args) {
        const started = process.hrtime.bigint();
        try {
          return original.apply(this, args);
        } finally {
          const us = Number(process.hrtime.bigint() - started) / 1000;
          const key = fold(this.source);
          const s = stats.get(key) ?? { count: 0, us: 0 };
          s.count++;
          s.us += us;
          stats.set(key, s);
        }
      };
    }
  }
  return statement;
};

function write() {
  const rows = [...stats].sort((a, b) => b[1].us - a[1].us).slice(0, SHOWN);
  const total = [...stats.values()].reduce((sum, s) => sum + s.us, 0);
  const lines = rows.map(([key, s]) => `${(s.us / 1000).toFixed(0).padStart(7)} ms ${String(s.count).padStart(8)} × ${(s.us / s.count).toFixed(1).padStart(7)} µs  ${key}`);
  const file = path.join(process.env.SQLITE_TIMES_DIR ?? tmpdir(), `sqlite-statement-times.${process.pid}.txt`);
  writeFileSync(file, `${(total / 1000).toFixed(0)} ms in all\n${lines.join('\n')}\n`);
}
process.on('exit', write);
