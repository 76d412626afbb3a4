import os from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import { allSearchAttributeKeys } from '../../workflows/messages';
import { startHarness, type HarnessOptions } from '../../test/support/stack';

/**
 * What a benchmark measures against: a real Temporal dev server (the CLI, in memory), a fresh
 * database (PGlite, or a database on DATABASE_URL's server), the worker and the API in this
 * process as in `npm run dev`, and the local SendGrid-compatible server.
 */
export async function startBenchStack(options: HarnessOptions = {}) {
  const env = await startBenchTemporal();
  const stack = await startHarness(env, options);
  return {
    ...stack,
    env,
    client: env.client,
    async stop() {
      await stack.stop();
      await env.teardown();
    },
  };
}

/**
 * The Temporal dev server (the real CLI) with Arrears' search attributes: in memory, or in the
 * SQLite file `dbFilename` when a benchmark measures what it stores.
 */
export async function startBenchTemporal(options: { dbFilename?: string } = {}): Promise<TestWorkflowEnvironment> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: resolveServerExecutable('cli'),
      searchAttributes: allSearchAttributeKeys,
      ...(options.dbFilename ? { dbFilename: options.dbFilename } : {}),
    },
  });
}

/** The load average over the last minute, for the record next to each figure (other work shares the cores). */
export const loadAverage = () => os.loadavg()[0]!.toFixed(1);

/** The machine, for the record next to each figure. */
export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, database ${process.env.DATABASE_URL ? 'PostgreSQL' : 'PGlite'}`;
}
