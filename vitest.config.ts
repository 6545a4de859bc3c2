import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    // Build dist/ first: the `tixian` bin that CLI tests spawn runs the compiled output.
    globalSetup: ['scripts/vitest-global-setup.mjs'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: two test files at a time; each makes its own database, so files never share state.
    maxWorkers: 2,
    // The JSON report feeds the one-line summary .ci/run prints at the end.
    reporters: ['default', ['json', { outputFile: 'node_modules/.cache/vitest-report.json' }]],
  },
  // In-process tests load the SDK from its sources (as the type-check does), never a second,
  // compiled copy from dist/ whose error classes would fail `instanceof` against the source ones.
  resolve: { alias: [{ find: /^@tixian\/sdk$/, replacement: fileURLToPath(new URL('./packages/sdk/src/index.ts', import.meta.url)) }] },
});
