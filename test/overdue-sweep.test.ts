// When a case starts: at registration if its first step is near, else by the overdue sweep,
// run here as a workflow on the time-skipping server (which has no schedules; the schedule
// itself is tested on the dev server in sweep-schedule.test.ts).
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectionCases, collectionPolicies } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { policySchema } from '../domain/policy';
import { caseStatusQuery } from '../workflows/messages';
import { overdueSweep, type OverdueSweepInput } from '../workflows/overdue-sweep';
import { invoicePayload, isoDate } from './support/fixtures';
import { startTimeSkippingHarness } from './support/harness';

let h: Awaited<ReturnType<typeof startTimeSkippingHarness>>;
beforeAll(async () => void (h = await startTimeSkippingHarness()));
afterAll(() => h?.stop());

const today = async () => new Date(await h.env.currentTimeMs());

const sweep = (input: OverdueSweepInput = {}) =>
  h.env.client.workflow.execute(overdueSweep, { taskQueue: h.taskQueue, workflowId: `sweep-${randomUUID()}`, args: [input] });

async function register(dueInDays: number, extra: { policy?: string } = {}) {
  const now = await today();
  const payload = { ...invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(dueInDays, now) }), ...extra };
  const res = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  return { payload, res, handle: h.env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

/** Registers through an API whose Temporal connection is gone: the invoice is stored, the start fails. */
async function registerWithFailedStart(dueInDays: number) {
  const broken = await h.appWithoutTemporal();
  const now = await today();
  const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(dueInDays, now) });
  const res = await broken.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  await broken.close();
  expect(res.statusCode).toBe(503);
  return { payload, handle: h.env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

async function caseOf(workflowId: string) {
  const [row] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId));
  return row!;
}

const notFound = (err: unknown) => err instanceof WorkflowNotFoundError;

describe('when a case starts', () => {
  it('starts a case with the money and credit notes stored while it was not running', async () => {
    const { payload, handle } = await registerWithFailedStart(-2);
    // Its start time is days past: the stuck list shows it (until the money's delivery starts it).
    const stuck = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
    expect(stuck.json().cases).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'start_failing', invoiceExternalId: payload.externalId })]));
    // A payment and a credit note reach the database while Temporal is unreachable.
    const broken = await h.appWithoutTemporal();
    const paid = await broken.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/payments`,
      headers: h.auth('collector'),
      payload: { reference: `bank-${payload.externalId}`, amountMinor: 25_000, currency: 'EUR' },
    });
    const credited = await broken.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/credit-notes`,
      headers: h.auth('collector'),
      payload: { adjustmentId: `CN-${payload.externalId}`, amountMinor: 10_000, currency: 'EUR', reason: 'one pallet short' },
    });
    await broken.close();
    // Both are stored and queued for delivery (202).
    expect([paid.statusCode, credited.statusCode]).toEqual([202, 202]);

    // Nobody sends them again; the sweep (or their queued delivery) starts the case, which counts both.
    await sweep();
    await h.env.sleep('1 minute');
    const status = await handle.query(caseStatusQuery);
    expect(status.amountOutstandingMinor).toBe(125_000 - 25_000 - 10_000);
    expect(status.history.map((e) => e.kind)).toEqual(expect.arrayContaining(['payment', 'invoice_adjusted']));
  });

  it('starts the case at registration when the first step is within a day', async () => {
    const { res, handle } = await register(4); // heads-up 3 days before the due date: tomorrow
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().case).toMatchObject({ stage: 'Scheduled', startedAt: expect.any(String) });
    expect((await handle.describe()).status.name).toBe('RUNNING');
  });

  it('waits with an invoice due later, shows when its case starts, and the sweep starts it then, exactly once', async () => {
    const now = await today();
    const soon = await register(10);
    const later = await register(30);
    expect(soon.res.statusCode, soon.res.body).toBe(201);
    // Due in 10 days: the heads-up is on day 7, so the case starts a day before, on day 6.
    expect(soon.res.json().case).toMatchObject({ stage: 'NotStarted', startsAt: `${isoDate(6, now)}T00:00:00.000Z`, startedAt: null });
    await expect(soon.handle.describe()).rejects.toSatisfy(notFound);

    const detail = await h.app.inject({ url: `/invoices/${soon.payload.externalId}`, headers: h.auth('viewer') });
    expect(detail.statusCode).toBe(200);
    expect(detail.json()).toMatchObject({ case: { stage: 'NotStarted', startsAt: `${isoDate(6, now)}T00:00:00.000Z` }, live: null });
    const waiting = await h.app.inject({ url: `/cases?stage=NotStarted&customer=${soon.payload.customer.externalId}`, headers: h.auth('viewer') });
    expect(waiting.json()).toMatchObject({ total: 1, cases: [{ invoiceExternalId: soon.payload.externalId, startsAt: `${isoDate(6, now)}T00:00:00.000Z` }] });

    expect(await sweep()).toMatchObject({ started: 0, alreadyRunning: 0, failed: 0 });
    await expect(soon.handle.describe()).rejects.toSatisfy(notFound);

    await h.env.sleep('6 days');
    expect(await sweep()).toMatchObject({ started: 1, alreadyRunning: 0, failed: 0, more: false });
    expect((await soon.handle.describe()).status.name).toBe('RUNNING');
    await expect(later.handle.describe()).rejects.toSatisfy(notFound);
    expect(await caseOf(soon.handle.workflowId)).toMatchObject({ stage: 'Scheduled', startedAt: expect.any(Date) });

    // A second run finds nothing left to start.
    expect(await sweep()).toMatchObject({ started: 0, alreadyRunning: 0, failed: 0 });
  });

  it('picks up a case whose start failed at registration', async () => {
    const { handle } = await registerWithFailedStart(0);
    expect(await caseOf(handle.workflowId)).toMatchObject({ stage: 'NotStarted', startedAt: null });
    await expect(handle.describe()).rejects.toSatisfy(notFound);

    expect(await sweep()).toMatchObject({ started: 1, failed: 0 });
    expect((await handle.describe()).status.name).toBe('RUNNING');
  });

  it('pages through the due cases, a bounded batch per run, and leaves the rest to the next run', async () => {
    const dueYesterday = await registerWithFailedStart(-1);
    const dueToday = await registerWithFailedStart(0);
    const dueLastWeek = await registerWithFailedStart(-7);
    expect(await sweep({ pageSize: 1, maxCases: 2 })).toMatchObject({ started: 2, pages: 2, more: true });
    // The longest waiting first.
    expect((await dueLastWeek.handle.describe()).status.name).toBe('RUNNING');
    expect((await dueYesterday.handle.describe()).status.name).toBe('RUNNING');
    await expect(dueToday.handle.describe()).rejects.toSatisfy(notFound);

    expect(await sweep({ pageSize: 1 })).toMatchObject({ started: 1, pages: 2, more: false });
    expect((await dueToday.handle.describe()).status.name).toBe('RUNNING');
  });

  it("derives the start from the case's own policy: without a heads-up, a case starts a day before day 1", async () => {
    await h.db.db.insert(collectionPolicies).values({
      name: 'no-heads-up',
      version: 1,
      createdBy: 'test',
      definition: policySchema.parse({
        name: 'no-heads-up',
        version: 1,
        steps: [{ id: 'day-1', offsetDays: 1, action: 'email', template: 'courtesy_reminder', tone: 'friendly' }],
      }),
    });
    const now = await today();
    const { res, handle } = await register(2, { policy: 'no-heads-up' });
    expect(res.json().case).toMatchObject({ stage: 'NotStarted', startsAt: `${isoDate(2, now)}T00:00:00.000Z` });
    await expect(handle.describe()).rejects.toSatisfy(notFound);
  });
});

describe("the sweep's check of open cases", () => {
  it('marks a case whose workflow was terminated, on workflow time that has run ahead of the clock, and a running case not', async () => {
    const { res, handle, payload } = await register(-2);
    expect(res.statusCode).toBe(201);
    const { handle: running } = await register(-2);
    // Weeks of workflow time pass: the case rows carry workflow times far past the wall clock.
    await h.env.sleep('20 days');
    await handle.terminate('by mistake, from the Temporal UI');
    const result = await sweep({ checkCases: 5_000 });
    expect(result.workflowsGone).toContain(payload.externalId);
    expect(await caseOf(handle.workflowId)).toMatchObject({ workflowGone: 'terminated', workflowGoneSince: expect.any(Date) });
    expect(await caseOf(running.workflowId)).toMatchObject({ workflowGone: null, workflowCheckedAt: expect.any(Date) });
  });
});
