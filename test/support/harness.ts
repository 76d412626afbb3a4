import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app';
import { createApiKey, type Role } from '../../api/auth';
import { loadConfig } from '../../config';
import { channelsFromConfig, createWorker } from '../../worker/create-worker';
import { ensureSearchAttributes } from '../../worker/search-attributes';
import { createTestDb } from './db';
import { startFakeSendGrid } from './fake-sendgrid';

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
  // E-mail goes through the real @sendgrid/mail client to a local SendGrid-compatible server.
  const sendgrid = await startFakeSendGrid();
  const config = loadConfig({
    SENDGRID_API_KEY: sendgrid.apiKey,
    SENDGRID_BASE_URL: sendgrid.url,
    BUSINESS_NAME: 'Beispiel AG',
    BUSINESS_ADDRESS: 'Hauptstraße 5|10117 Berlin',
    PAYMENT_INSTRUCTIONS: 'IBAN DE02 1203 0000 0000 2020 51',
    APPROVER_EMAILS: 'approvers@beispiel.example',
    AGENCY_EMAIL: 'placements@agency.example',
  });
  const taskQueue = `test-${randomUUID()}`;
  const worker: Worker = await createWorker({
    connection: temporal.nativeConnection,
    namespace: temporal.namespace ?? 'default',
    taskQueue,
    db: db.db,
    workflowCode: 'source',
    channels: channelsFromConfig(config),
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
    sendgrid,
    taskQueue,
    keys,
    auth,
    async stop() {
      await app.close();
      worker.shutdown();
      await workerRun;
      await db.dispose();
      await sendgrid.close();
    },
  };
}

/** The harness on the run's shared Temporal dev server (started by the vitest globalSetup). */
export async function startDevServerHarness() {
  // Imported here, not at the top, so scripts outside vitest (bench/) can use startHarness.
  const { inject } = await import('vitest');
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

/** The harness on its own time-skipping test server (months of a case in seconds); stop() tears both down. */
export async function startTimeSkippingHarness() {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: resolveServerExecutable('test-server') },
  });
  const harness = await startHarness(env);
  return {
    ...harness,
    env,
    async stop() {
      await harness.stop();
      await env.teardown();
    },
  };
}
