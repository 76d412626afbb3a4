import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app';
import { createApiKey, type Role } from '../../api/auth';
import { createWorker } from '../../worker/create-worker';
import { ensureSearchAttributes } from '../../worker/search-attributes';
import { createTestDb } from './db';

export type Harness = Awaited<ReturnType<typeof startHarness>>;

/**
 * The real pieces wired as in production, for one test file: a fresh database, a worker on
 * its own task queue, the API (driven with inject), and an API key per role.
 */
export async function startHarness(temporal: {
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  namespace?: string;
}) {
  await ensureSearchAttributes(temporal.connection, temporal.namespace ?? 'default');
  const db = await createTestDb();
  const taskQueue = `test-${randomUUID()}`;
  const worker: Worker = await createWorker({
    connection: temporal.nativeConnection,
    namespace: temporal.namespace ?? 'default',
    taskQueue,
    db: db.db,
    workflowCode: 'source',
  });
  const workerRun = worker.run();
  const app: FastifyInstance = await buildApp({
    db,
    temporal: temporal.client,
    taskQueue,
    temporalUiUrl: 'http://localhost:8233',
  });
  const keys = {} as Record<Role, string>;
  for (const role of ['admin', 'collector', 'approver', 'viewer'] as const) {
    keys[role] = (await createApiKey(db.db, { name: `test-${role}`, role })).key;
  }
  const auth = (role: Role) => ({ authorization: `Bearer ${keys[role]}` });

  return {
    db,
    app,
    taskQueue,
    keys,
    auth,
    async stop() {
      await app.close();
      worker.shutdown();
      await workerRun;
      await db.dispose();
    },
  };
}

/** The harness on the run's shared Temporal dev server (started by the vitest globalSetup). */
export async function startDevServerHarness() {
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const harness = await startHarness({ client, connection, nativeConnection });
  return {
    ...harness,
    client,
    async stop() {
      await harness.stop();
      await nativeConnection.close();
      await connection.close();
    },
  };
}
