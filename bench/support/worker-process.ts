// The production worker in a process of its own, as worker/main.ts builds it (createWorker with
// the prebuilt workflow bundle, PostgreSQL through DATABASE_URL, the product's worker options),
// so a benchmark can measure its memory without the benchmark's own heap in the figure.
// Started by startWorkerProcess below; talks to its parent over the IPC channel.
import { fork, type ChildProcess } from 'node:child_process';
import v8 from 'node:v8';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadConfig } from '../../config';
import { createDb } from '../../db/client';
import { channelsFromConfig, createWorker } from '../../worker/create-worker';

export type WorkerMemory = { rssBytes: number; heapUsedBytes: number; externalBytes: number };

/** The worker options that decide its memory, as the SDK compiled them (defaults filled in). */
export type WorkerSizing = { maxCachedWorkflows: number; maxHeapMiB: number };

type FromWorker = { kind: 'ready'; sizing: WorkerSizing } | { kind: 'memory'; memory: WorkerMemory } | { kind: 'failed'; message: string };

/**
 * Forks this file as the worker process with `env` (DATABASE_URL, TEMPORAL_ADDRESS,
 * TEMPORAL_TASK_QUEUE, BENCH_WORKFLOW_BUNDLE, ...) and resolves once it polls.
 */
export async function startWorkerProcess(env: Record<string, string>) {
  const child: ChildProcess = fork(__filename, [], {
    env: { ...process.env, ...env },
    // --expose-gc: memory is read after a full collection, so garbage that is merely not
    // collected yet does not count as memory the cases hold.
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (kind: FromWorker['kind']) =>
    new Promise<FromWorker>((resolve, reject) => {
      const onMessage = (message: FromWorker) => {
        if (message.kind !== kind && message.kind !== 'failed') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (message.kind === 'failed') reject(new Error(`worker process: ${message.message}`));
        else resolve(message);
      };
      const onExit = (code: number | null) => reject(new Error(`worker process exited (${code}) while waiting for '${kind}'`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const { sizing } = (await next('ready')) as Extract<FromWorker, { kind: 'ready' }>;
  return {
    pid: child.pid!,
    sizing,
    /** RSS, V8 heap in use and external memory, after a full garbage collection. */
    async memory(): Promise<WorkerMemory> {
      const reply = next('memory');
      child.send('memory');
      return ((await reply) as Extract<FromWorker, { kind: 'memory' }>).memory;
    },
    /** Graceful shutdown (as on SIGTERM in production): work in hand finishes first. */
    async stop(): Promise<void> {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send('stop');
      await exited;
    },
  };
}

async function main(): Promise<void> {
  const send = (message: FromWorker) => process.send!(message);
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const config = loadConfig(process.env);
  const db = await createDb(config);
  const address = config.TEMPORAL_ADDRESS;
  const clientConnection = await Connection.connect({ address });
  const connection = await NativeConnection.connect({ address });
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: db.db,
    client: new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE }),
    workflowCode: 'prebuilt',
    workflowBundlePath: process.env.BENCH_WORKFLOW_BUNDLE,
    channels: channelsFromConfig(config),
    // A benchmark may try another cache size; otherwise the product's options, untouched.
    ...(process.env.BENCH_MAX_CACHED_WORKFLOWS ? { overrides: { maxCachedWorkflows: Number(process.env.BENCH_MAX_CACHED_WORKFLOWS) } } : {}),
  });
  process.on('message', (message) => {
    if (message === 'stop') worker.shutdown();
    if (message === 'memory') {
      (globalThis as { gc?: () => void }).gc?.();
      const m = process.memoryUsage();
      send({ kind: 'memory', memory: { rssBytes: m.rss, heapUsedBytes: v8.getHeapStatistics().used_heap_size, externalBytes: m.external } });
    }
  });
  const running = worker.run();
  send({
    kind: 'ready',
    sizing: { maxCachedWorkflows: worker.options.maxCachedWorkflows, maxHeapMiB: Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20) },
  });
  try {
    await running;
  } finally {
    await connection.close();
    await clientConnection.close();
    await db.close();
    process.disconnect();
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.send?.({ kind: 'failed', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}
