// The fault tests (`npm run test:faults`): kill, stop and unplug real parts under load. They
// take minutes, so they run apart from `npm test`, once per CI run, on PostgreSQL: the worker
// runs in a process of its own, and only a database server can serve two processes.
import { defineConfig } from 'vitest/config';

if (!process.env.DATABASE_URL) {
  throw new Error(
    'The fault tests need a PostgreSQL server: set DATABASE_URL=postgres://user:password@host:5432/db ' +
      '(a role that may CREATE DATABASE; each test file makes and drops its own). .ci/run shows how.',
  );
}

export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/support/temporal-dev-server.ts'],
    setupFiles: ['test/support/quiet-runtime.ts'],
    // Each test waits out real timeouts (a dead worker's activities time out after a minute).
    testTimeout: 600_000,
    // The stack's stop bounds each part itself (a worker its stop limit, 70 s, then SIGKILL; the rest 30 s each).
    hookTimeout: 240_000,
    maxWorkers: 2,
  },
});
