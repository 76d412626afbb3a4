// The overdue sweep's Temporal Schedule, on the dev server (the time-skipping server has no
// schedules): its shape, its idempotent creation and update, and a triggered run.
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectionWorkflowId } from '../domain/collection';
import { ensureSweepSchedule, sweepScheduleId } from '../worker/sweep-schedule';
import type { OverdueSweepResult } from '../workflows/overdue-sweep';
import { invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
});

afterAll(async () => {
  // The dev server outlives this file: leave no schedule firing at a stopped worker.
  await h?.client.schedule.getHandle(sweepScheduleId(h.taskQueue)).delete().catch(() => undefined);
  await h?.stop();
});

const MINUTE_MS = 60_000;

describe('overdue sweep schedule', () => {
  it('is created at start-up with the interval, SKIP overlap and a catch-up window, and updated in place later', async () => {
    expect(await ensureSweepSchedule(h.client, h.taskQueue, { SWEEP_INTERVAL_MINUTES: 15 })).toBe('created');
    const handle = h.client.schedule.getHandle(sweepScheduleId(h.taskQueue));
    const created = await handle.describe();
    expect(created.spec.intervals).toMatchObject([{ every: 15 * MINUTE_MS }]);
    expect(created.action).toMatchObject({ type: 'startWorkflow', workflowType: 'overdueSweep', taskQueue: h.taskQueue });
    expect(created.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 60 * MINUTE_MS });
    expect(created.state.paused).toBe(false);

    // Operations paused it; a restart with a new interval keeps it paused.
    await handle.pause('maintenance');
    expect(await ensureSweepSchedule(h.client, h.taskQueue, { SWEEP_INTERVAL_MINUTES: 30 })).toBe('updated');
    const updated = await handle.describe();
    expect(updated.spec.intervals).toMatchObject([{ every: 30 * MINUTE_MS }]);
    expect(updated.state).toMatchObject({ paused: true, note: 'maintenance' });
    await handle.unpause();
  });

  it('starts a case whose start failed when the schedule runs the sweep', async () => {
    // Registered through an API whose Temporal connection is gone: stored, not started.
    const broken = await h.appWithoutTemporal();
    const payload = invoicePayload({ dueDate: isoDate(-1) });
    expect((await broken.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(503);
    await broken.close();

    await ensureSweepSchedule(h.client, h.taskQueue, { SWEEP_INTERVAL_MINUTES: 15 });
    const schedule = h.client.schedule.getHandle(sweepScheduleId(h.taskQueue));
    await schedule.trigger();
    // An automatic run may land next to the triggered one (the interval is aligned to the
    // clock), so wait for the outcome rather than for one particular run.
    const caseHandle = h.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    await until('the sweep to start the case', async () => (await caseHandle.describe().catch(() => undefined))?.status.name === 'RUNNING', 30_000);
    const runs = (await schedule.describe()).info.recentActions;
    const results: OverdueSweepResult[] = await Promise.all(runs.map((r) => h.client.workflow.getHandle(r.action.workflow.workflowId).result()));
    expect(results.reduce((sum, r) => sum + r.started, 0)).toBe(1);
    expect(results.every((r) => r.failed === 0)).toBe(true);
  });
});
