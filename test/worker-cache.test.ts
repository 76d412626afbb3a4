// A worker whose cache holds fewer cases than are busy at once: every task of a case that was
// evicted replays its history, which costs time, but nothing may be lost or stuck. With as many
// workflow tasks in hand as the cache holds, the SDK's core evicted runs whose case-state writes
// (local activities) were still in flight, and their tasks timed out (workflowTaskSlots).
import { randomUUID } from 'node:crypto';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery } from '../workflows/messages';
import { invoicePayload } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

// The smallest cache the configuration allows: the worker runs 2 workflow tasks at once.
const cache = 4;
let h: Awaited<ReturnType<typeof startDevServerHarness>>;
beforeAll(async () => {
  h = await startDevServerHarness({ maxCachedWorkflows: cache });
});
afterAll(() => h?.stop());

it('applies every payment and answers every query when more cases are busy than the worker caches', async () => {
  const invoices = Array.from({ length: cache * 5 }, () => invoicePayload());
  for (const invoice of invoices) {
    const res = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice });
    expect(res.statusCode, res.body).toBe(201);
  }
  const pay = (invoice: (typeof invoices)[number], amountMinor: number) =>
    h.app.inject({
      method: 'POST',
      url: `/invoices/${invoice.externalId}/payments`,
      headers: h.auth('collector'),
      payload: { reference: `TX-${randomUUID()}`, amountMinor, currency: 'EUR' },
    });
  const handles = invoices.map((invoice) => h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)));
  // Three rounds of part payments to all cases at once, each case queried meanwhile.
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(invoices.map((invoice) => pay(invoice, 1_000)));
    expect(answers.map((a) => a.statusCode)).toEqual(invoices.map(() => 201));
    const statuses = await Promise.all(handles.map((handle) => handle.query(caseStatusQuery)));
    expect(statuses.every((s) => s.stage !== 'Closed')).toBe(true);
  }
  await until('every payment counted', async () => {
    const statuses = await Promise.all(handles.map((handle) => handle.query(caseStatusQuery)));
    return statuses.every((s, i) => s.amountOutstandingMinor === invoices[i]!.amountTotalMinor - 3_000);
  }, 60_000);
  // No task was dropped on the way: a stranded one shows as a workflow task that timed out
  // after it started (and its case waited 10 s for the server to hand it out again).
  const { EventType, TimeoutType } = temporal.api.enums.v1;
  const stranded = [];
  for (const handle of handles) {
    const { events } = await handle.fetchHistory();
    for (const event of events ?? []) {
      const timedOut = event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT && event.workflowTaskTimedOutEventAttributes?.timeoutType === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE;
      if (timedOut || event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) stranded.push(`${handle.workflowId}#${event.eventId}`);
    }
  }
  expect(stranded).toEqual([]);
});
