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

/**
 * How the workflow code is bundled: the same for the prebuilt bundle (`npm run build`) and for
 * a worker that bundles at start-up.
 *
 * preloadModules: in the worker's reusable V8 context every cached workflow evaluates its own
 * copy of each module it imports, unless the module is preloaded, which evaluates it once and
 * shares it (frozen). Our workflow modules hold no per-workflow state at module level: activity
 * proxies and message definitions are looked up in the running workflow's context when called,
 * the domain modules are pure (the contact window's formatter cache is keyed by time zone, the
 * same for every workflow). So the whole workflows/ tree is preloaded: about 30 KiB less per
 * cached workflow (BENCHMARKS.md, sleeping population). A module-level `let` that a workflow
 * writes would leak between workflows here; none may be added. zod stays out of the bundle
 * (eslint.config.mjs).
 */
const workflowsPath = path.resolve(__dirname, '..', 'workflows');
export const workflowBundleOptions = { workflowsPath, preloadModules: [workflowsPath] };

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
  /** Where the prebuilt bundle is, if not beside the compiled code (a benchmark's own build). */
  workflowBundlePath?: string;
  /** Workflows kept in memory between their tasks (WORKER_MAX_CACHED_WORKFLOWS; default 200). */
  maxCachedWorkflows?: number;
  /** Extra options for tests (e.g. a shorter shutdown grace time). */
  overrides?: Partial<WorkerOptions>;
};

/** The collection worker: the workflow code, and the activities bound to the database and Temporal client. */
export async function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  const cache = options.maxCachedWorkflows ?? 200;
  const bundlePath = options.workflowBundlePath ?? workflowBundlePath;
  if (options.workflowCode === 'prebuilt' && !existsSync(bundlePath)) {
    throw new Error(`No workflow bundle at ${bundlePath}: run \`npm run build\` first.`);
  }
  const workflowSource =
    options.workflowCode === 'prebuilt'
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: workflowBundleOptions.workflowsPath, bundlerOptions: { preloadModules: workflowBundleOptions.preloadModules } };
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...workflowSource,
    activities: createActivities({ db: options.db, temporal: options.client, taskQueue: options.taskQueue, ...options.channels }),
    // On shutdown, activities in hand get this long to finish before they are cancelled.
    shutdownGraceTime: '30 seconds',
    // Without it the SDK waits for ever on anything in hand that does not end (an activity
    // ignoring its cancellation, a query to a database that went silent, sdk-typescript
    // #2266): a deploy or a restart then hangs. After this, run() throws (exitWhenStopTakes
    // ends the process in any case); whatever was in hand is retried by Temporal after its
    // timeout, on another worker.
    shutdownForceTime: '1 minute',
    // The sticky cache keeps a workflow in memory between its tasks (no replay). A case sleeps
    // for days between steps, so caching sleeping cases buys nothing; the SDK's default sizes
    // the cache from the heap limit (2,310 workflows here), so memory grew with the sleeping
    // population. A cache smaller than the cases busy at once costs a replay per task instead.
    // 200 leaves room for bursts, at about 180 KiB of resident memory per cached case
    // (BENCHMARKS.md, items 3 and 5). WORKER_MAX_CACHED_WORKFLOWS moves the balance.
    maxCachedWorkflows: cache,
    // A tuner, if a caller gives one, sizes the tasks itself (the SDK refuses both).
    ...(options.overrides?.tuner ? {} : { maxConcurrentWorkflowTaskExecutions: workflowTaskSlots(cache) }),
    ...options.overrides,
  });
}

/** How long a worker process may take to stop: the SDK's minute (shutdownForceTime) and its clean-up. */
export const workerStopLimitMs = 70_000;

/**
 * Called when a stop begins: ends the process with code 1 if it is still stopping after
 * `workerStopLimitMs`. When the SDK gives up on work that does not end, run() may reject with
 * an error of the SDK's own clean-up rather than its GracefulShutdownPeriodExpiredError, and
 * closing the connections after it could hang too; this does not depend on either.
 */
export function exitWhenStopTakes(): void {
  setTimeout(() => {
    console.error(`worker shutdown forced: still stopping ${workerStopLimitMs / 1000} s after it began; what was in hand is retried after its timeout`);
    process.exit(1);
  }, workerStopLimitMs).unref();
}

/**
 * Workflow tasks a worker runs at once, for a cache of `maxCachedWorkflows`: a quarter of it, at
 * most the SDK's default of 40 (so the default cache of 200 keeps it), and at least 2. With as
 * many tasks in hand as the cache holds (the SDK takes 40 whatever the cache, and does not check
 * it against the cache), and more cases busy than it holds, the SDK's core evicts runs whose
 * local activities (our case-state writes) are still in flight. It logs "outgoing commands …
 * only an eviction. This is an SDK bug", the task times out, and queries to the case go
 * unanswered: with a cache of 40 and 40 tasks, item 5 of BENCHMARKS.md failed on query timeouts;
 * with 10 tasks it closed every case, p99 0.57–0.77 s. The configuration keeps the cache at 0 or
 * at least 4 (twice the floor). 0 (no cache at all) leaves the SDK's default.
 */
export function workflowTaskSlots(maxCachedWorkflows: number): number | undefined {
  if (maxCachedWorkflows === 0) return undefined;
  return Math.max(2, Math.min(40, Math.floor(maxCachedWorkflows / 4)));
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
