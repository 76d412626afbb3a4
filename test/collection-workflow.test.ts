// The collection workflow on the time-skipping test server: months of a case in seconds,
// with the real activities writing to a real (embedded) PostgreSQL.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client, Connection } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../api/app';
import { auditEvents, collectionCases, communications, invoices } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { resolveServerExecutable } from '../scripts/temporal-servers';
import { caseStatusQuery, searchAttributes, type CollectionResult } from '../workflows/messages';
import { invoicePayload, isoDate } from './support/fixtures';
import { startHarness, type Harness } from './support/harness';

let env: TestWorkflowEnvironment;
let h: Harness;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: resolveServerExecutable('test-server') },
  });
  h = await startHarness(env);
});

afterAll(async () => {
  await h?.stop();
  await env?.teardown();
});

/** Registers an invoice due `dueInDays` from the test server's clock (which tests move forward). */
async function register(dueInDays: number) {
  const now = new Date(await env.currentTimeMs());
  const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(dueInDays, now) });
  const res = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  expect(res.statusCode, res.body).toBe(201);
  return { payload, handle: env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

async function pay(externalId: string, reference: string, amountMinor: number) {
  return h.app.inject({
    method: 'POST',
    url: `/invoices/${externalId}/payments`,
    headers: h.auth('collector'),
    payload: { reference, amountMinor, currency: 'EUR' },
  });
}

async function sentReminders(workflowId: string) {
  const rows = await h.db.db
    .select({ template: communications.template, body: communications.body })
    .from(communications)
    .innerJoin(collectionCases, eq(collectionCases.id, communications.caseId))
    .where(eq(collectionCases.workflowId, workflowId));
  return rows.map((r) => r.template).sort();
}

describe('invoice collection workflow (time-skipping server)', () => {
  it('walks 30 days of reminders in well under the time it describes, then closes as paid', async () => {
    const { payload, handle } = await register(0);

    const startedAt = performance.now();
    await env.sleep('31 days');
    const wallMs = performance.now() - startedAt;
    console.log(`31 days of workflow time took ${wallMs.toFixed(0)} ms of wall time`);

    expect(await sentReminders(handle.workflowId)).toEqual(['reminder-1', 'reminder-2', 'reminder-3']);
    const status = await handle.query(caseStatusQuery);
    expect(status.stage).toBe('AwaitingPayment');
    expect(status.amountOutstandingMinor).toBe(125_000);

    expect((await pay(payload.externalId, 'bank-1', 125_000)).statusCode).toBe(201);
    const result: CollectionResult = await handle.result();
    expect(result).toEqual({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0, paymentsApplied: 1 });

    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice).toMatchObject({ status: 'paid', amountOutstandingMinor: 0 });
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(caseRow).toMatchObject({ stage: 'Closed', outcome: 'paid' });
  });

  it('stops chasing as soon as the invoice is paid: no reminder after the payment', async () => {
    const { payload, handle } = await register(0);
    await env.sleep('2 days');
    expect(await sentReminders(handle.workflowId)).toEqual(['reminder-1']);

    await pay(payload.externalId, 'bank-2', 125_000);
    await handle.result();
    await env.sleep('40 days');
    expect(await sentReminders(handle.workflowId)).toEqual(['reminder-1']);
  });

  it('lowers the balance on a partial payment and keeps reminding for the rest', async () => {
    const { payload, handle } = await register(0);
    await env.sleep('2 days');
    await pay(payload.externalId, 'part-1', 25_000);
    await env.sleep('6 days');

    const status = await handle.query(caseStatusQuery);
    expect(status.amountOutstandingMinor).toBe(100_000);
    const second = await h.db.db
      .select({ body: communications.body })
      .from(communications)
      .where(eq(communications.idempotencyKey, `${handle.workflowId}:reminder:2`));
    expect(second[0]?.body).toContain('1.000,00');
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(caseRow?.amountOutstandingMinor).toBe(100_000);

    await pay(payload.externalId, 'part-2', 100_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 2 });
  });

  it('counts a payment delivered twice only once', async () => {
    const { payload, handle } = await register(0);
    const first = await pay(payload.externalId, 'dup-1', 50_000);
    const again = await pay(payload.externalId, 'dup-1', 50_000);
    expect([first.statusCode, again.statusCode]).toEqual([201, 200]);
    expect(again.json().payment.id).toBe(first.json().payment.id);

    await env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(75_000);
  });

  it('sends only the latest due reminder when a case starts late, never a burst', async () => {
    const { handle } = await register(-20);
    await env.sleep('1 hour');
    expect(await sentReminders(handle.workflowId)).toEqual(['reminder-2']);
    await env.sleep('15 days');
    expect(await sentReminders(handle.workflowId)).toEqual(['reminder-2', 'reminder-3']);
  });

  it('writes a payment to the database as soon as it lands, also after the last reminder', async () => {
    const { payload, handle } = await register(0);
    await env.sleep('31 days');
    expect((await handle.query(caseStatusQuery)).stage).toBe('AwaitingPayment');

    await pay(payload.externalId, 'late-part', 25_000);
    await env.sleep('1 minute');
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(caseRow).toMatchObject({ stage: 'AwaitingPayment', amountOutstandingMinor: 100_000 });
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice?.amountOutstandingMinor).toBe(100_000);
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(searchAttributes.amountOutstanding)).toBe(100_000);
  });

  it('keeps an overpayment on record instead of losing it', async () => {
    const { payload, handle } = await register(0);
    await pay(payload.externalId, 'over-1', 130_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 5_000 });
    const closed = await h.db.db
      .select({ data: auditEvents.data })
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'case.closed'), eq(auditEvents.invoiceId, (await invoiceRow(payload.externalId)).id)));
    expect(closed[0]?.data).toMatchObject({ overpaidMinor: 5_000 });
  });

  it('keeps money that arrives after the case closed, flagged for reconciliation', async () => {
    const { payload, handle } = await register(0);
    await pay(payload.externalId, 'full-1', 125_000);
    await handle.result();
    const late = await pay(payload.externalId, 'after-close', 10_000);
    expect(late.statusCode).toBe(201);
    expect(late.json().delivery).toBe('case_closed');
    const flagged = await h.db.db
      .select({ data: auditEvents.data })
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'payment.unapplied'), eq(auditEvents.invoiceId, (await invoiceRow(payload.externalId)).id)));
    expect(flagged[0]?.data).toMatchObject({ reference: 'after-close', amountMinor: 10_000, reason: 'case_closed' });
  });

  it('starts a case whose workflow failed to start when its payment arrives, and applies the payment', async () => {
    // Registration through an API whose Temporal connection is gone: the start fails.
    const lostConnection = await Connection.connect({ address: env.address });
    await lostConnection.close();
    const broken = await buildApp({
      db: h.db,
      temporal: new Client({ connection: lostConnection }),
      taskQueue: h.taskQueue,
      temporalUiUrl: 'http://localhost:8233',
    });
    const now = new Date(await env.currentTimeMs());
    const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(-2, now) });
    const failed = await broken.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    await broken.close();
    expect(failed.statusCode).toBe(503);
    expect(await invoiceRow(payload.externalId)).toBeDefined(); // stored, not lost

    const paid = await pay(payload.externalId, 'rescue-1', 125_000);
    expect(paid.json().delivery).toBe('applied');
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 1 });
    expect(await sentReminders(handle.workflowId)).toEqual([]); // paid before any reminder went out
  });
});

async function invoiceRow(externalId: string) {
  const [row] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, externalId));
  return row!;
}
