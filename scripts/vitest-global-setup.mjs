// Vitest global setup: build once before any test file runs, so tests that spawn the `tixian` bin
// (which runs dist/) and the packaging test exercise the current sources. Incremental (tsc -b):
// about half a second when nothing changed.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup() {
  execFileSync(process.execPath, [fileURLToPath(new URL('./build.mjs', import.meta.url))], { stdio: 'inherit' });
  // Said once, at the end, where it is seen: every storage suite also has a PostgreSQL half.
  return () => {
    if (!process.env.TIXIAN_TEST_DATABASE_URL) {
      console.log(
        'PostgreSQL suites skipped: set TIXIAN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (any database the user may CREATE DATABASE from) to run them too',
      );
    }
  };
}
