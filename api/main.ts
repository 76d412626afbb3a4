// The production API process: `npm run start:api` (after `npm run build`).
import { Client, Connection } from '@temporalio/client';
import { loadConfig, temporalClientConnectionOptions } from '../config';
import { createDb, surviveClosedSocketWrites } from '../db/client';
import { apiSettingsFromConfig, buildApp } from './app';

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL) {
    throw new Error('DATABASE_URL is required for a standalone API (the embedded database serves one process: use `npm run dev`).');
  }
  surviveClosedSocketWrites();
  const db = await createDb(config);
  await db.migrate();
  const connection = await Connection.connect(temporalClientConnectionOptions(config));
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const app = await buildApp({
    db,
    temporal,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    temporalUiUrl: config.TEMPORAL_UI_URL,
    logLevel: config.LOG_LEVEL,
    settings: apiSettingsFromConfig(config),
    paymentDispatch: { concurrency: config.PAYMENT_DISPATCH_CONCURRENCY },
  });
  const shutdown = async () => {
    await app.close();
    await connection.close();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  const address = await app.listen({ host: config.API_HOST, port: config.API_PORT });
  console.log(`API listening on ${address}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
