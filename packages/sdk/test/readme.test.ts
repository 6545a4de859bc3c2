import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** The README quickstart is compiled as part of test/types.typecheck.ts; this keeps the two copies equal. */
describe('README quickstart', () => {
  it('is the code that types.typecheck.ts compiles', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /## Quickstart[^\n]*\n+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const documented = block!.split('\n').filter((l) => l.trim() && !l.startsWith('import ')).map((l) => l.trim());
    const source = readFileSync(new URL('./types.typecheck.ts', import.meta.url), 'utf8');
    const compiled = /\/\/ ---- quickstart\n([\s\S]*?)\/\/ ---- end quickstart/.exec(source)?.[1];
    expect(compiled).toBeDefined();
    expect(compiled!.split('\n').filter((l) => l.trim()).map((l) => l.trim())).toEqual(documented);
    expect(documented.length).toBeLessThanOrEqual(22);
  });
});
