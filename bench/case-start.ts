// Case start rate: invoices registered over HTTP until each case has run its first step (a
// letter rendered and queued: no contact window to wait for), against starting the same
// number of empty workflows on the same server in the same run (the baseline), and, for
// scale, against the same number of workflows that each run one no-op activity on a worker in
// this process (bench/support/one-activity-workflow.ts).
//   npm run bench:starts                        (BENCH_CASES=200 by default)
//   DATABASE_URL=postgres://… BENCH_SHAPE=production npm run bench:starts
// BENCH_SHAPE=production runs the built API and worker each in a process of its own on
// PostgreSQL, as docker-compose.yml does; by default both share this process, as in `npm run dev`.
import { randomUUID } from 'node:crypto';
import { Worker } from '@temporalio/worker';
import os from 'node:os';
import { count } from 'drizzle-orm';
import { collectionPolicies, communications } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { policySchema } from '../domain/policy';
import { invoicePayload, isoDate } from '../test/support/fixtures';
import { machine, startBenchStack } from './support/env';
import { fmt } from './support/load';
import { cpuMeter, cpuPerItem, totalCpu } from './support/processes';

const cases = Number(process.env.BENCH_CASES ?? 200);
const concurrency = 8;

async function inBatches(n: number, fn: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function main() {
  const loadAtStart = os.loadavg();
  const stack = await startBenchStack({ settings: { rateLimitPerMinute: 1e9 } });
  try {
    await stack.db.db.insert(collectionPolicies).values({
      name: 'letter-first',
      version: 1,
      createdBy: 'bench',
      definition: policySchema.parse({
        name: 'letter-first',
        version: 1,
        steps: [{ id: 'day-1-letter', offsetDays: 1, action: 'letter', template: 'reminder_letter', tone: 'friendly' }],
      }),
    });

    // Baseline: workflow starts alone (a type no worker polls, so nothing else competes).
    const emptyQueue = `bench-empty-${randomUUID()}`;
    let spent = await cpuMeter(stack);
    let t = performance.now();
    await inBatches(cases, async (i) => {
      await stack.client.workflow.start('emptyWorkflow', { taskQueue: emptyQueue, workflowId: `empty-${emptyQueue}-${i}` });
    });
    const emptyPerSecond = cases / ((performance.now() - t) / 1000);
    const emptyCpu = await spent();

    // Second baseline: started the same way, each until its one no-op activity has run (as a
    // case counts once its first step has run), without asking the server for every result.
    const oneActivityQueue = `bench-one-activity-${randomUUID()}`;
    let activitiesRun = 0;
    const worker = await Worker.create({
      connection: stack.env.nativeConnection,
      taskQueue: oneActivityQueue,
      workflowsPath: require.resolve('./support/one-activity-workflow'),
      activities: {
        noop: async () => {
          activitiesRun++;
        },
      },
    });
    const oneActivity = await worker.runUntil(async () => {
      const spentOnThese = await cpuMeter(stack);
      const started = performance.now();
      await inBatches(cases, async (i) => {
        await stack.client.workflow.start('oneActivityWorkflow', { taskQueue: oneActivityQueue, workflowId: `one-activity-${oneActivityQueue}-${i}` });
      });
      while (activitiesRun < cases) await new Promise((r) => setTimeout(r, 50));
      return { perSecond: cases / ((performance.now() - started) / 1000), cpu: await spentOnThese() };
    });

    // Arrears: registration (database, then the workflow start) until the first step has run.
    const invoiceIds: string[] = [];
    spent = await cpuMeter(stack);
    t = performance.now();
    await inBatches(cases, async () => {
      const payload = { ...invoicePayload({ dueDate: isoDate(-3) }), policy: 'letter-first' };
      invoiceIds.push(payload.externalId);
      const res = await stack.post('/invoices', payload);
      if (res.status !== 201) throw new Error(await res.text());
    });
    const registeredSeconds = (performance.now() - t) / 1000;
    for (;;) {
      const [row] = await stack.db.db.select({ n: count() }).from(communications);
      if (row!.n >= cases) break;
      if (performance.now() - t > 600_000) throw new Error(`only ${row!.n} of ${cases} first steps after 10 minutes`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const casesPerSecond = cases / ((performance.now() - t) / 1000);
    const casesCpu = await spent();
    const trips = await roundTripsToFirstStep(stack.client, collectionWorkflowId(invoiceIds[0]!));

    console.log(`Case start rate, ${machine()}, ${stack.shape === 'production' ? 'API and worker each in a process of its own (dist/)' : 'API and worker in this process'}, ${cases} cases, ${concurrency} at a time`);
    console.log(`  load average (1, 5, 15 min)    ${loadAtStart.map((l) => fmt(l, 2)).join(' ')} at start, ${os.loadavg().map((l) => fmt(l, 2)).join(' ')} at end`);
    console.log(`  empty workflow starts          ${fmt(emptyPerSecond, 0)} /s`);
    console.log(`  registrations answered         ${fmt(cases / registeredSeconds, 0)} /s`);
    console.log(`  cases through their first step ${fmt(casesPerSecond, 0)} /s`);
    console.log(`  ratio                          ${fmt(casesPerSecond / emptyPerSecond, 3)} × empty starts (target ≥ 0.6)`);
    console.log(`  one-activity workflows         ${fmt(oneActivity.perSecond, 0)} /s (a worker in this process): cases at ${fmt(casesPerSecond / oneActivity.perSecond, 3)} × these`);
    console.log(`  CPU ms per empty start         ${cpuPerItem(emptyCpu, cases, stack)}`);
    console.log(`  CPU ms per one-activity run    ${cpuPerItem(oneActivity.cpu, cases, stack)} (its worker is in the bench process)`);
    console.log(`  CPU ms per case                ${cpuPerItem(casesCpu, cases, stack)}`);
    // On a machine whose cores are busy (these are shared), throughput follows CPU: this is the
    // ratio that CPU alone allows, and it moves far less with the machine's load than the rate.
    console.log(`  CPU per empty start / per case ${fmt(totalCpu(emptyCpu) / totalCpu(casesCpu), 3)} (the ratio CPU allows)`);
    console.log(`  one case up to its first step  ${trips}`);
  } finally {
    await stack.stop();
  }
}

/**
 * What one case asks of the Temporal server before its first step is done, read from its
 * history: workflow tasks, activities (each one a schedule, a dispatch to a worker and a
 * completion the server persists) and local activities (a marker in a workflow task).
 */
async function roundTripsToFirstStep(client: Awaited<ReturnType<typeof startBenchStack>>['client'], workflowId: string): Promise<string> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const activityTypes = new Map<string, string>();
  let workflowTasks = 0;
  let markers = 0;
  const activities: string[] = [];
  let n = 0;
  for (const event of events) {
    n++;
    if (event.workflowTaskCompletedEventAttributes) workflowTasks++;
    if (event.markerRecordedEventAttributes?.markerName === 'core_local_activity') markers++;
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      activityTypes.set(String(event.eventId), scheduled.activityType?.name ?? '?');
      activities.push(scheduled.activityType?.name ?? '?');
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && activityTypes.get(String(completed.scheduledEventId)) === 'sendLetter') break;
  }
  return `${n} events, ${workflowTasks} workflow tasks, ${activities.length} activities (${activities.join(', ')}), ${markers} local activities`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
