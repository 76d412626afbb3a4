import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Config } from '../config';
import type { OverdueSweepInput } from '../workflows/overdue-sweep';

/** One sweep schedule per task queue, so deployments (and test runs) sharing a namespace stay apart. */
export const sweepScheduleId = (taskQueue: string) => `overdue-sweep-${taskQueue}`;

/** What the schedule is: the part that `ensureSweepSchedule` creates and keeps up to date. */
export function sweepSchedule(taskQueue: string, config: Pick<Config, 'SWEEP_INTERVAL_MINUTES'>) {
  const args: [OverdueSweepInput] = [{}];
  return {
    spec: { intervals: [{ every: `${config.SWEEP_INTERVAL_MINUTES} minutes` }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'overdueSweep',
      // The schedule appends each action's time to this id.
      workflowId: sweepScheduleId(taskQueue),
      taskQueue,
      args,
      // A stuck run must not hold off the next ones for long (overlapping runs are skipped).
      workflowRunTimeout: '1 hour',
    },
    policies: {
      // Never two sweeps at once: a run still going when the next is due makes that one skip.
      overlap: ScheduleOverlapPolicy.SKIP,
      // After a Temporal outage of up to an hour, one missed run is made up at once; longer
      // outages are covered by the next run anyway, since every run looks at all due cases.
      catchupWindow: '1 hour',
    },
  } satisfies Omit<ScheduleOptions, 'scheduleId'>;
}

/**
 * Creates the overdue sweep's schedule, or brings an existing one up to date (interval, task
 * queue, policies), at every worker start. Idempotent; a schedule operations paused stays
 * paused. Returns what it did.
 */
export async function ensureSweepSchedule(
  client: Client,
  taskQueue: string,
  config: Pick<Config, 'SWEEP_INTERVAL_MINUTES'>,
): Promise<'created' | 'updated'> {
  const scheduleId = sweepScheduleId(taskQueue);
  const schedule = sweepSchedule(taskQueue, config);
  try {
    await client.schedule.create({
      scheduleId,
      ...schedule,
      state: { note: 'Starts the collection cases whose start time has come (Arrears overdue sweep).' },
    });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...schedule, state: previous.state }));
  return 'updated';
}
