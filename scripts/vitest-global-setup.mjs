// Vitest global setup: build once before any test file runs, so tests that spawn the `tixian` bin
// (which runs dist/) and the packaging test exercise the current sources. Incremental (tsc -b):
// about half a second when nothing changed.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup() {
  execFileSync(process.execPath, [fileURLToPath(new URL('./build.mjs', import.meta.url))], { stdio: 'inherit' });
}
