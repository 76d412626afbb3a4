// The real worker in a process of its own, for the fault tests that kill it (spawned by
// ./worker-process.ts). It is worker/main.ts without the build step (the workflow code is
// bundled from source, as in the other tests) and without the overdue-sweep schedule, which
// these tests do not need. Configured by the same environment variables as production.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadConfig, temporalConnectionOptions } from '../../config';
import { createDb, surviveClosedSocketWrites } from '../../db/client';
import { channelsFromConfig, createWorker } from '../../worker/create-worker';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = loadConfig();
  if (!config.DATABASE_URL) throw new Error('DATABASE_URL is required: a worker in its own process cannot share an embedded database');
  surviveClosedSocketWrites();
  const dbHandle = await createDb(config);
  const clientConnection = await Connection.connect(temporalConnectionOptions(config));
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: dbHandle.db,
    client: new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE }),
    workflowCode: 'source',
    channels: channelsFromConfig(config),
  });
  const running = worker.run();
  // The parent waits for this line before it counts the worker as up.
  console.log('worker ready');
  try {
    await running;
  } finally {
    await connection.close();
    await clientConnection.close();
    await dbHandle.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
