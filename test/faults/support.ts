// What the fault tests share: a stack in the production shape (PostgreSQL, the API in this
// process, the worker in a child process reaching the database through a TCP proxy the test
// can unplug), a storm of cases whose first e-mail is due at once, and the checks a user
// would make afterwards: every debtor got the e-mail, once, and every case is where it
// should be.
import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import { createDb } from '../../db/client';
import { collectionCases, collectionPolicies, communications } from '../../db/schema';
import { caseStatusQuery } from '../../workflows/messages';
import { createTestDbServer } from '../support/db';
import { afternoonZone, emailFirstPolicy, invoicePayload, isoDate } from '../support/fixtures';
import { startDevServerHarness, type Harness } from '../support/harness';
import { startTcpProxy } from '../support/tcp-proxy';
import { until } from '../support/until';
import { startServiceProcess, type ServiceProcess } from '../support/service-process';
import { workerStopLimitMs } from '../../worker/create-worker';

export type FaultStack = Awaited<ReturnType<typeof startFaultStack>>;

/** The test file's fault stack: started before its tests, stopped after them; call the result inside a test. */
export function useFaultStack(): () => FaultStack {
  let stack: FaultStack | undefined;
  beforeAll(async () => {
    stack = await startFaultStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  return () => stack!;
}

/** The storms' ladder: one e-mail, due at once for an invoice three days overdue. */
export const stormPolicy = emailFirstPolicy('storm');

/** Where a storm case rests once its one e-mail is out. */
export const afterTheEmail = 'AwaitingPayment';

export async function startFaultStack() {
  const server = await createTestDbServer();
  const proxy = await startTcpProxy(server);
  const db = await createDb({ DATABASE_URL: server.url(server.port), DATA_DIR: 'memory://', poolSize: 5 });
  await db.migrate();
  // The API (and the test's own reads) reach the database directly; only the worker goes through the proxy.
  const h = await startDevServerHarness({ db: { ...db, dispose: () => db.close() }, inProcessWorker: false });
  await h.db.db.insert(collectionPolicies).values(stormPolicy);
  const workerEnv = { ...h.workerEnv, DATABASE_URL: server.url(proxy.port) };
  const workers: ServiceProcess[] = [];
  return {
    h,
    proxy,
    async startWorker(): Promise<ServiceProcess> {
      const worker = await startServiceProcess('worker', { env: workerEnv });
      workers.push(worker);
      return worker;
    },
    /** Stops the workers still running, then the rest. */
    async stop() {
      // Each part is timed, and one that hangs is named and left behind (the test process ends
      // with the file): the checks are the test's, the stop only tidies up.
      const timed = async (part: string, fn: () => Promise<unknown>, limitMs = 30_000) => {
        const startedAt = Date.now();
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), limitMs)));
        const outcome = await Promise.race([fn(), limit]).finally(() => clearTimeout(timer));
        if (outcome === 'hung') console.warn(`fault stack: stopping ${part} did not finish in ${limitMs / 1000} s; left behind`);
        else if (Date.now() - startedAt > 10_000) console.warn(`fault stack: stopping ${part} took ${Date.now() - startedAt} ms`);
      };
      // A worker bounds its own stop (stopWorker); the rest get 30 s each.
      for (const worker of workers) await stopWorker(worker);
      await timed('the API and harness', () => h.stop());
      await timed('the TCP proxy', () => proxy.close());
      await timed('the database', () => server.dispose());
    },
  };
}

/**
 * Stops a worker as a deployment does (SIGTERM). The worker ends itself within its stop limit
 * (workerStopLimitMs), so a slow stop is not failed here: its log is shown, for whoever reads
 * the run to see what it waited on, and one that outlives the limit is killed.
 */
async function stopWorker(worker: ServiceProcess): Promise<void> {
  if (!worker.isRunning()) return;
  const startedAt = Date.now();
  const exited = worker.kill('SIGTERM');
  const watchdog = setTimeout(() => void worker.kill('SIGKILL'), workerStopLimitMs + 5_000);
  const code = await exited.finally(() => clearTimeout(watchdog));
  const tookMs = Date.now() - startedAt;
  if (code !== 0 || tookMs > 20_000) {
    console.warn(`worker ${worker.pid} took ${tookMs} ms to stop on SIGTERM (exit code ${code}); its log ends:\n${worker.output().slice(-8_000)}`);
  }
}

/** Registers `n` overdue invoices on the storm policy in one batch; their e-mails are all due now. */
export async function registerStorm(h: Harness, n: number, prefix: string): Promise<string[]> {
  const invoices = Array.from({ length: n }, (_, i) => {
    const payload = invoicePayload({ externalId: `${prefix}-${i}`, dueDate: isoDate(-3), policy: stormPolicy.name });
    payload.customer = { ...payload.customer, externalId: `${prefix}-C${i}`, email: `${prefix}-${i}@debtor.example`, timeZone: afternoonZone() };
    return payload;
  });
  const response = await h.app.inject({ method: 'POST', url: '/invoices/batch', headers: h.auth('collector'), payload: { invoices } });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.json()).toMatchObject({ created: n, failed: 0 });
  return invoices.map((i) => `collection-${i.externalId}`);
}

/** The e-mail's idempotency key for a storm case (workflow id + step + channel, see activities/channels.ts). */
export const emailKey = (workflowId: string) => `${workflowId}:day-1:email`;

/** How many times SendGrid accepted each idempotency key. */
export function acceptedByKey(h: Harness): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of h.sendgrid.messages) {
    const key = m.body.custom_args?.idempotencyKey ?? '';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The e-mails the database has marked sent, by idempotency key. */
export async function markedSent(h: Harness): Promise<Set<string>> {
  const rows = await h.db.db.select({ key: communications.idempotencyKey, status: communications.status }).from(communications);
  return new Set(rows.filter((r) => r.status === 'sent').map((r) => r.key));
}

/**
 * Waits until every case's database row is in `stage`; returns when that happened. On a
 * timeout, the error says where the others are, by the database and by their workflows.
 */
export async function untilAllInStage(h: Harness, workflowIds: string[], stage: string, timeoutMs: number): Promise<number> {
  const rows = () =>
    h.db.db
      .select({ workflowId: collectionCases.workflowId, stage: collectionCases.stage, seq: collectionCases.stateSeq, runId: collectionCases.stateRunId })
      .from(collectionCases).where(inArray(collectionCases.workflowId, workflowIds));
  await until(`all ${workflowIds.length} cases in ${stage}`, async () => (await rows()).filter((r) => r.stage === stage).length === workflowIds.length, timeoutMs).catch(
    async (err: Error) => {
      const others = (await rows()).filter((r) => r.stage !== stage).slice(0, 5);
      // Where each straggler is, by the database, by its workflow's own view (a query may replay
      // past what the worker has run), and by the server: run status, the pending workflow task
      // and activities, the last events of its history, and every run it has of the workflow.
      const live = await Promise.all(
        others.map(async (r) => {
          const handle = h.client.workflow.getHandle(r.workflowId);
          const status = await handle
            .query(caseStatusQuery)
            .then(({ stage: s, outcome, blockedReason }) => ({ stage: s, outcome, blockedReason }))
            .catch((e: Error) => ({ error: e.message }));
          const server = await handle
            .describe()
            .then((d) => ({
              runId: d.runId,
              status: d.status.name,
              historyLength: d.historyLength,
              pendingWorkflowTask: d.raw.pendingWorkflowTask ?? null,
              pendingActivities: (d.raw.pendingActivities ?? []).map((a) => ({ type: a.activityType?.name, state: a.state, attempt: a.attempt, lastFailure: a.lastFailure?.message })),
            }))
            .catch((e: Error) => ({ error: e.message }));
          const lastEvents = await handle
            .fetchHistory()
            .then((history) => (history.events ?? []).slice(-12).map((e) => `${String(e.eventId)} ${String(e.eventType)}`))
            .catch((e: Error) => [e.message]);
          const runs: unknown[] = [];
          try {
            for await (const run of h.client.workflow.list({ query: `WorkflowId = '${r.workflowId}'` })) {
              runs.push({ runId: run.runId, status: run.status.name, start: run.startTime.toISOString(), end: run.closeTime?.toISOString() });
            }
          } catch (e) {
            runs.push((e as Error).message);
          }
          return { workflowId: r.workflowId, database: { stage: r.stage, seq: r.seq, runId: r.runId }, workflow: status, server, lastEvents, runs };
        }),
      );
      throw new Error(`${err.message}; some of the others: ${JSON.stringify(live).slice(0, 8000)}`);
    },
  );
  return Date.now();
}

/**
 * What a user checks after the fault: every case's workflow is running and says `stage`, and
 * every debtor got the storm e-mail, marked sent. Returns the keys SendGrid accepted twice.
 */
export async function expectStormDelivered(h: Harness, workflowIds: string[], stage: string): Promise<string[]> {
  for (const id of workflowIds) {
    const status = await h.client.workflow.getHandle(id).query(caseStatusQuery);
    expect(status.stage, id).toBe(stage);
  }
  const accepted = acceptedByKey(h);
  const sent = await markedSent(h);
  const missing = workflowIds.filter((id) => !accepted.has(emailKey(id)) || !sent.has(emailKey(id)));
  expect(missing, 'cases whose debtor got no e-mail').toEqual([]);
  return [...accepted].filter(([, count]) => count > 1).map(([key]) => key);
}

/** Prints what a fault test measured and appends it to test-results/faults.jsonl, for BENCHMARKS.md. */
export async function report(test: string, figures: Record<string, unknown>): Promise<void> {
  console.log(`[faults] ${test}: ${JSON.stringify(figures)}`);
  const dir = path.resolve('test-results');
  await mkdir(dir, { recursive: true });
  await appendFile(path.join(dir, 'faults.jsonl'), JSON.stringify({ test, at: new Date().toISOString(), ...figures }) + '\n');
}
