import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { ApprovalDeps } from '../activities/approvals';
import { createMailer } from '../activities/mailer';
import type { Config } from '../config';
import type { Database } from '../db/client';

/**
 * The prebuilt workflow bundle, beside the compiled code: this file runs as
 * dist/worker/create-worker.js in production, so this is dist/workflow-bundle.js.
 */
export const workflowBundlePath = path.resolve(__dirname, '..', 'workflow-bundle.js');

export type CreateWorkerOptions = {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  db: Database;
  /** The client the overdue sweep starts collection workflows with (on this task queue). */
  client: Client;
  /** How the worker reaches debtors: mailer and the business's letterhead. */
  channels: Omit<ApprovalDeps, 'db'>;
  /**
   * "prebuilt": the bundle `npm run build` wrote (production: starts fast, runs exactly what was
   * built). "source": bundle workflows/ at start-up (dev stack and tests: always current code).
   */
  workflowCode: 'prebuilt' | 'source';
  /** Extra options for tests (e.g. a shorter shutdown grace time). */
  overrides?: Partial<WorkerOptions>;
};

/** The collection worker: the workflow code, and the activities bound to the database and Temporal client. */
export async function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  if (options.workflowCode === 'prebuilt' && !existsSync(workflowBundlePath)) {
    throw new Error(`No workflow bundle at ${workflowBundlePath}: run \`npm run build\` first.`);
  }
  const workflowSource =
    options.workflowCode === 'prebuilt'
      ? { workflowBundle: { codePath: workflowBundlePath } }
      : { workflowsPath: path.resolve(__dirname, '..', 'workflows') };
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...workflowSource,
    activities: createActivities({ db: options.db, temporal: options.client, taskQueue: options.taskQueue, ...options.channels }),
    // On shutdown, activities in hand get this long to finish before they are cancelled.
    shutdownGraceTime: '30 seconds',
    ...options.overrides,
  });
}

/** The mailer and letterhead from the configuration. */
export function channelsFromConfig(config: Config): Omit<ApprovalDeps, 'db'> {
  return {
    approverEmails: config.APPROVER_EMAILS,
    handoverEmails: { agency_referral: config.AGENCY_EMAIL, legal_action: config.LEGAL_EMAIL },
    mailer: createMailer({ apiKey: config.SENDGRID_API_KEY, baseUrl: config.SENDGRID_BASE_URL, from: config.MAIL_FROM }),
    business: {
      name: config.BUSINESS_NAME,
      address: config.BUSINESS_ADDRESS.split('|').map((line) => line.trim()).filter(Boolean),
      paymentInstructions: config.PAYMENT_INSTRUCTIONS,
    },
  };
}
