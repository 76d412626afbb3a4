// The production worker process: `npm run start:worker` (after `npm run build`).
// Stops gracefully on SIGINT/SIGTERM: running activities finish (30 s, then they are cancelled),
// then the database closes; a stop still not done after 70 s ends the process with code 1.
// The fault tests run the same code in a child process, with the workflow code from source.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, temporalClientConnectionOptions, temporalConnectionOptions } from '../config';
import { createDb, surviveClosedSocketWrites } from '../db/client';
import { channelsFromConfig, createWorker, exitWhenStopTakes } from './create-worker';
import { ensureSearchAttributes } from './search-attributes';
import { ensureSweepSchedule } from './sweep-schedule';

/** Runs the worker until SIGINT/SIGTERM; `workflowCode` as in createWorker (production: prebuilt). */
export async function runWorker(workflowCode: 'prebuilt' | 'source' = 'prebuilt'): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL) {
    throw new Error('DATABASE_URL is required for a standalone worker (the embedded database serves one process: use `npm run dev`).');
  }
  surviveClosedSocketWrites();
  const dbHandle = await createDb(config);
  await dbHandle.migrate();

  // The client connection registers search attributes and the sweep schedule, and the sweep's
  // activity starts cases through it.
  const clientConnection = await Connection.connect(temporalClientConnectionOptions(config));
  const added = await ensureSearchAttributes(clientConnection, config.TEMPORAL_NAMESPACE);
  if (added.length) console.log(`registered search attributes: ${added.join(', ')}`);
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  const schedule = await ensureSweepSchedule(client, config.TEMPORAL_TASK_QUEUE, config);
  console.log(`overdue sweep schedule ${schedule}: every ${config.SWEEP_INTERVAL_MINUTES} minutes`);

  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: dbHandle.db,
    client,
    workflowCode,
    channels: channelsFromConfig(config),
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
  });
  console.log(`worker polling task queue ${config.TEMPORAL_TASK_QUEUE} on ${config.TEMPORAL_ADDRESS}`);
  // The SDK's runtime stops the worker on these signals; this bounds how long that may take.
  process.once('SIGINT', exitWhenStopTakes);
  process.once('SIGTERM', exitWhenStopTakes);
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight work has drained
  } finally {
    await connection.close();
    await clientConnection.close();
    await dbHandle.close();
  }
}

if (require.main === module) {
  runWorker().then(
    // Drained and disconnected: nothing is left to do, so a stray timer does not keep the process up.
    () => process.exit(0),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
