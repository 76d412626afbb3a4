/**
 * `npm run dev`: the whole system on one machine, in one process.
 *   - a Temporal dev server with its web UI, persisted in DATA_DIR/temporal.sqlite
 *     (skipped when TEMPORAL_ADDRESS is set: that server is used instead);
 *   - the database: embedded PGlite in DATA_DIR/pglite, or DATABASE_URL; migrations applied;
 *   - the worker and the API.
 * Ctrl-C stops everything in order; running it again continues where it stopped.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { apiSettingsFromConfig, buildApp } from '../api/app';
import { createApiKey } from '../api/auth';
import { loadConfig, temporalClientChannelArgs, temporalConnectionOptions } from '../config';
import { createDb, surviveClosedSocketWrites } from '../db/client';
import { apiKeys } from '../db/schema';
import { allSearchAttributeKeys } from '../workflows/messages';
import { ensureServers, TemporalServerUnavailableError } from '../scripts/temporal-servers';
import { channelsFromConfig, createWorker, exitWhenStopTakes } from './create-worker';
import { ensureSearchAttributes } from './search-attributes';
import { ensureSweepSchedule, sweepScheduleId } from './sweep-schedule';

async function startTemporalDevServer(dataDir: string, port: number, uiPort: number): Promise<TestWorkflowEnvironment> {
  const cli = ensureServers(process.env, ['cli']).cli!;
  try {
    return await TestWorkflowEnvironment.createLocal({
      server: {
        executable: cli,
        ip: '127.0.0.1',
        port,
        ui: true,
        uiPort,
        dbFilename: path.join(dataDir, 'temporal.sqlite'),
        searchAttributes: allSearchAttributeKeys,
      },
    });
  } catch (err) {
    throw new TemporalServerUnavailableError('cli', `starting it failed: ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (config.DATABASE_URL) surviveClosedSocketWrites();
  // We stop the worker ourselves, in order, on Ctrl-C.
  Runtime.install({ shutdownSignals: [] });
  const dataDir = path.resolve(config.DATA_DIR);
  mkdirSync(dataDir, { recursive: true });

  const ownTemporal = !process.env.TEMPORAL_ADDRESS;
  const temporalEnv = ownTemporal
    ? await startTemporalDevServer(dataDir, config.DEV_TEMPORAL_PORT, config.DEV_TEMPORAL_UI_PORT)
    : undefined;
  const temporalOptions = ownTemporal
    ? { address: `127.0.0.1:${config.DEV_TEMPORAL_PORT}`, tls: false }
    : temporalConnectionOptions(config);
  const temporalAddress = temporalOptions.address;
  const temporalUiUrl = ownTemporal ? `http://localhost:${config.DEV_TEMPORAL_UI_PORT}` : config.TEMPORAL_UI_URL;

  const db = await createDb(config);
  await db.migrate();

  const connection = await Connection.connect({ ...temporalOptions, channelArgs: temporalClientChannelArgs });
  await ensureSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  await ensureSweepSchedule(temporal, config.TEMPORAL_TASK_QUEUE, config);

  const nativeConnection = await NativeConnection.connect(temporalOptions);
  const worker = await createWorker({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: db.db,
    client: temporal,
    workflowCode: 'source',
    channels: channelsFromConfig(config),
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
  });
  const workerRun = worker.run();

  const app = await buildApp({
    db,
    temporal,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    temporalUiUrl,
    logLevel: config.LOG_LEVEL,
    settings: apiSettingsFromConfig(config),
    paymentDispatch: { concurrency: config.PAYMENT_DISPATCH_CONCURRENCY },
  });
  const apiUrl = await app.listen({ host: config.API_HOST, port: config.API_PORT });
  const keyFile = await ensureDevAdminKey(db.db, dataDir);

  console.log(`
Arrears is running.
  API              ${apiUrl}
  API docs         ${apiUrl}/docs
  Pages            ${apiUrl}/ui  (sign in with an API key)
  Temporal UI      ${temporalUiUrl}${ownTemporal ? '' : ' (external server)'}
  Temporal server  ${temporalAddress}, namespace ${config.TEMPORAL_NAMESPACE}, task queue ${config.TEMPORAL_TASK_QUEUE}
  Overdue sweep    every ${config.SWEEP_INTERVAL_MINUTES} minutes (Temporal UI → Schedules → ${sweepScheduleId(config.TEMPORAL_TASK_QUEUE)})
  Database         ${db.kind === 'pglite' ? `embedded PGlite in ${path.join(dataDir, 'pglite')}` : 'DATABASE_URL'}
  Admin API key    ${keyFile ? `in ${keyFile}  (curl -H "Authorization: Bearer $(cat ${path.relative(process.cwd(), keyFile)})" ...)` : 'created earlier (see the README to make more)'}
Press Ctrl-C to stop.
`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping API, worker, database${ownTemporal ? ', Temporal dev server' : ''}...`);
    exitWhenStopTakes();
    await app.close();
    worker.shutdown();
    // A worker that gave up on work in hand: said, and the rest still stops.
    await workerRun.catch((err: unknown) => console.error(`worker: ${err instanceof Error ? err.message : String(err)}`));
    await nativeConnection.close();
    await connection.close();
    await db.close();
    await temporalEnv?.teardown();
    console.log('stopped.');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * On the very first start, creates an admin API key so the newcomer can call the API at once,
 * and writes it to a file only they can read (never to the log). Returns the file's path.
 */
async function ensureDevAdminKey(db: Awaited<ReturnType<typeof createDb>>['db'], dataDir: string): Promise<string | undefined> {
  const keyFile = path.join(dataDir, 'dev-admin-api-key');
  const anyKey = await db.select({ id: apiKeys.id }).from(apiKeys).limit(1);
  if (anyKey.length === 0) {
    const { key } = await createApiKey(db, { name: 'dev-admin', role: 'admin' });
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  return existsSync(keyFile) ? keyFile : undefined;
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
