// The production worker process: `npm run start:worker` (after `npm run build`).
// Stops gracefully on SIGINT/SIGTERM: running activities finish, then the database closes.
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, temporalConnectionOptions } from '../config';
import { createDb } from '../db/client';
import { channelsFromConfig, createWorker } from './create-worker';
import { ensureSearchAttributes } from './search-attributes';

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL) {
    throw new Error('DATABASE_URL is required for a standalone worker (the embedded database serves one process: use `npm run dev`).');
  }
  const dbHandle = await createDb(config);
  await dbHandle.migrate();

  const admin = await Connection.connect(temporalConnectionOptions(config));
  const added = await ensureSearchAttributes(admin, config.TEMPORAL_NAMESPACE);
  if (added.length) console.log(`registered search attributes: ${added.join(', ')}`);
  await admin.close();

  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: dbHandle.db,
    workflowCode: 'prebuilt',
    channels: channelsFromConfig(config),
  });
  console.log(`worker polling task queue ${config.TEMPORAL_TASK_QUEUE} on ${config.TEMPORAL_ADDRESS}`);
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight work has drained
  } finally {
    await connection.close();
    await dbHandle.close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
