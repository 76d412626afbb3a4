import { existsSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { Database } from '../db/client';

/** Where `npm run build` writes the prebuilt workflow bundle. */
export const workflowBundlePath = path.resolve(__dirname, '..', 'dist', 'workflow-bundle.js');

export type CreateWorkerOptions = {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  db: Database;
  /** Extra options for tests (e.g. a shorter shutdown grace time). */
  overrides?: Partial<WorkerOptions>;
};

/**
 * The collection worker: the workflow code (a prebuilt bundle when one exists, as in
 * production, else bundled from source at start-up) and the activities bound to the database.
 */
export async function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  const workflowSource = existsSync(workflowBundlePath)
    ? { workflowBundle: { codePath: workflowBundlePath } }
    : { workflowsPath: require.resolve('../workflows') };
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...workflowSource,
    activities: createActivities({ db: options.db }),
    ...options.overrides,
  });
}
