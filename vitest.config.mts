import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault tests take minutes: `npm run test:faults` (vitest.faults.config.mts).
    exclude: [...configDefaults.exclude, 'test/faults/**'],
    globalSetup: ['test/support/temporal-dev-server.ts'],
    setupFiles: ['test/support/quiet-runtime.ts'],
    // Servers (JVM test server, workers bundling workflow code) start slowly on two cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Workers and Temporal servers are heavy; two files at a time suit a two-core machine.
    maxWorkers: 2,
  },
});
