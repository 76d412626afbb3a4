import os from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { Role } from '../../api/auth';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import { allSearchAttributeKeys } from '../../workflows/messages';
import { startServiceProcess, type ServiceProcess } from '../../test/support/service-process';
import { startHarness, type HarnessOptions } from '../../test/support/stack';

/**
 * Where the API and the worker run. "dev" (the default): both in the benchmark's process, as
 * `npm run dev` runs them. "production": `npm run build`, then each in a process of its own
 * (`dist/api/main.js`, `dist/worker/main.js`) on PostgreSQL, as docker-compose.yml runs them.
 * Set with BENCH_SHAPE.
 */
export type BenchShape = 'dev' | 'production';

export type BenchStack = Awaited<ReturnType<typeof startBenchStack>>;

export function benchShape(): BenchShape {
  const shape = process.env.BENCH_SHAPE ?? 'dev';
  if (shape !== 'dev' && shape !== 'production') throw new Error('BENCH_SHAPE is "dev" or "production"');
  if (shape === 'production' && !process.env.DATABASE_URL) {
    throw new Error('BENCH_SHAPE=production needs DATABASE_URL: the embedded PGlite serves one process');
  }
  return shape;
}

/**
 * What a benchmark measures against: a real Temporal dev server (the CLI, in memory), a fresh
 * database (PGlite, or a database on DATABASE_URL's server), the API and the worker in the
 * shape BENCH_SHAPE names, and the local SendGrid-compatible server. `apiUrl` is the API's
 * address in either shape; `stack.app` is an API in this process over the same database, for
 * setting up (it is not the one measured in the production shape).
 */
export async function startBenchStack(options: HarnessOptions = {}) {
  const shape = benchShape();
  const env = await startBenchTemporal();
  const stack = await startHarness(env, { ...options, inProcessWorker: shape === 'dev' });
  const processes: ServiceProcess[] = [];
  const stop = async () => {
    for (const service of processes.reverse()) await service.stop();
    await stack.stop();
    await env.teardown();
  };
  try {
    let apiUrl: string;
    if (shape === 'production') {
      const serviceEnv = {
        ...stack.workerEnv,
        DATABASE_URL: stack.db.url!,
        API_HOST: '127.0.0.1',
        API_PORT: '0',
        LOG_LEVEL: 'warn',
        ...(options.settings?.rateLimitPerMinute ? { API_RATE_LIMIT_PER_MINUTE: String(options.settings.rateLimitPerMinute) } : {}),
        ...(options.paymentDispatch?.concurrency ? { PAYMENT_DISPATCH_CONCURRENCY: String(options.paymentDispatch.concurrency) } : {}),
      };
      // BENCH_CPU_PROFILE_DIR: each process writes a V8 CPU profile there when it stops (open in Chrome DevTools).
      const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
      const execArgv = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
      processes.push(await startServiceProcess('worker', { code: 'built', env: serviceEnv, execArgv }));
      const api = await startServiceProcess('api', { code: 'built', env: serviceEnv, execArgv });
      processes.push(api);
      apiUrl = api.url!;
    } else {
      apiUrl = await stack.app.listen({ host: '127.0.0.1', port: 0 });
    }
    return {
      ...stack,
      env,
      client: env.client,
      shape,
      apiUrl,
      /** POSTs `payload` as JSON to the measured API over HTTP, with the key of `role`. */
      post: (path: string, payload: unknown, role: Role = 'collector') =>
        fetch(`${apiUrl}${path}`, { method: 'POST', headers: { ...stack.auth(role), 'content-type': 'application/json' }, body: JSON.stringify(payload) }),
      /** The worker's and the API's processes in the production shape (their CPU is counted apart). */
      processes: { worker: processes[0], api: processes[1] },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
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
