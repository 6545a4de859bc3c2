import { describe, expect, it } from 'vitest';
import * as byName from '@tixian/sdk';
import * as bySource from '../../sdk/src/index.ts';

/**
 * Inside the repository `@tixian/sdk` resolves to the package's build output (dist/); vitest maps
 * it to the sources instead, so an in-process test never holds two copies of the SDK (whose error
 * classes would then fail `instanceof` against each other) and always tests the current code.
 */
describe('@tixian/sdk inside the repository tests', () => {
  it('is the source module, the same one a relative import loads', () => {
    expect(byName.TixianError).toBe(bySource.TixianError);
    expect(byName.Tixian).toBe(bySource.Tixian);
  });
});
