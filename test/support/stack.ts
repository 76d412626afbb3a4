// The app's real pieces wired as in production (no vitest here: benchmarks use it too).
import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { createActivities, type Activities } from '../../activities';
import { apiSettingsFromConfig, buildApp, type ApiSettings } from '../../api/app';
import type { PaymentDispatcherOptions } from '../../api/payment-dispatcher';
import { createApiKey, type Role } from '../../api/auth';
import { loadConfig } from '../../config';
import { channelsFromConfig, createWorker } from '../../worker/create-worker';
import { ensureSearchAttributes } from '../../worker/search-attributes';
import type { DbHandle } from '../../db/client';
import { createTestDb } from './db';
import { startFakeSendGrid } from './fake-sendgrid';

export type Harness = Awaited<ReturnType<typeof startHarness>>;

export type HarnessOptions = {
  /** The database to use (migrated; the harness disposes of it); default: a fresh test database. */
  db?: DbHandle & { url?: string; dispose(): Promise<void> };
  /** API settings over the harness's own (e.g. a higher rate limit for a benchmark). */
  settings?: Partial<ApiSettings>;
  /** The API's and the activities' notion of now (the wall clock unless given). */
  clock?: () => Promise<Date>;
  /** How the API's payment dispatcher runs (e.g. no polling, for a test that polls by hand). */
  paymentDispatch?: PaymentDispatcherOptions;
  /**
   * false: no worker in this process; the caller runs one elsewhere (a child process the
   * fault tests kill) on the harness's task queue, configured by `workerEnv`.
   */
  inProcessWorker?: boolean;
  /** Activities to use instead of the real ones (e.g. one that fails at a chosen moment). */
  activities?: Partial<Activities>;
  /** The in-process worker's cache (WORKER_MAX_CACHED_WORKFLOWS); default: the worker's own. */
  maxCachedWorkflows?: number;
};

/** Webhook signing secrets the harness's API is configured with (made up per run, never real). */
export const webhookSecrets = {
  bank: randomBytes(24).toString('hex'),
  stripe: `whsec_${randomBytes(24).toString('base64')}`,
};

/**
 * The real pieces wired as in production, for one test file: a fresh database, a worker on
 * its own task queue, the API (driven with inject), and an API key per role.
 */
export async function startHarness(
  temporal: {
    client: Client;
    connection: Connection;
    nativeConnection: NativeConnection;
    namespace?: string;
  },
  options: HarnessOptions = {},
) {
  await ensureSearchAttributes(temporal.connection, temporal.namespace ?? 'default');
  const db = options.db ?? (await createTestDb());
  const clock = options.clock ?? (async () => new Date());
  // E-mail goes through the real @sendgrid/mail client to a local SendGrid-compatible server.
  const sendgrid = await startFakeSendGrid();
  const taskQueue = `test-${randomUUID()}`;
  // The settings as environment variables, so a worker in another process gets the same ones.
  const workerEnv: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal.connection.options.address,
    TEMPORAL_NAMESPACE: temporal.namespace ?? 'default',
    TEMPORAL_TASK_QUEUE: taskQueue,
    SENDGRID_API_KEY: sendgrid.apiKey,
    SENDGRID_BASE_URL: sendgrid.url,
    BUSINESS_NAME: 'Beispiel AG',
    BUSINESS_ADDRESS: 'Hauptstraße 5|10117 Berlin',
    PAYMENT_INSTRUCTIONS: 'IBAN DE02 1203 0000 0000 2020 51',
    APPROVER_EMAILS: 'approvers@beispiel.example',
    AGENCY_EMAIL: 'placements@agency.example',
    WEBHOOK_SECRETS: `bank=${webhookSecrets.bank}`,
    STRIPE_WEBHOOK_SECRET: webhookSecrets.stripe,
  };
  const config = loadConfig(workerEnv);
  const worker: Worker | undefined =
    options.inProcessWorker === false
      ? undefined
      : await createWorker({
          connection: temporal.nativeConnection,
          namespace: temporal.namespace ?? 'default',
          taskQueue,
          db: db.db,
          client: temporal.client,
          workflowCode: 'source',
          channels: { ...channelsFromConfig(config), clock },
          ...(options.maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows: options.maxCachedWorkflows }),
          ...(options.activities
            ? {
                overrides: {
                  activities: {
                    ...createActivities({ db: db.db, temporal: temporal.client, taskQueue, ...channelsFromConfig(config), clock }),
                    ...options.activities,
                  },
                },
              }
            : {}),
        });
  const workerRun = worker?.run();
  const settings = { ...apiSettingsFromConfig(config), ...options.settings };
  const app: FastifyInstance = await buildApp({
    db,
    temporal: temporal.client,
    taskQueue,
    temporalUiUrl: 'http://localhost:8233',
    settings,
    clock,
    paymentDispatch: options.paymentDispatch,
  });
  const keys = {} as Record<Role, string>;
  for (const role of ['admin', 'collector', 'approver', 'viewer'] as const) {
    keys[role] = (await createApiKey(db.db, { name: `test-${role}`, role })).key;
  }
  const auth = (role: Role) => ({ authorization: `Bearer ${keys[role]}` });

  return {
    db,
    app,
    client: temporal.client,
    /** The API over the same database, with a Temporal connection that is closed: every start or signal fails. */
    async appWithoutTemporal(): Promise<FastifyInstance> {
      const lost = await Connection.connect({ address: temporal.connection.options.address });
      await lost.close();
      return buildApp({ db, temporal: new Client({ connection: lost }), taskQueue, temporalUiUrl: 'http://localhost:8233', settings, clock });
    },
    /** Another API process over the same database and Temporal, with default settings otherwise. */
    anotherApp(): Promise<FastifyInstance> {
      return buildApp({ db, temporal: temporal.client, taskQueue, temporalUiUrl: 'http://localhost:8233', settings, clock });
    },
    clock,
    sendgrid,
    taskQueue,
    workerEnv,
    keys,
    auth,
    async stop() {
      await app.close();
      worker?.shutdown();
      await workerRun;
      await db.dispose();
      await sendgrid.close();
    },
  };
}

