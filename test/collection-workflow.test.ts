// The collection workflow on the time-skipping test server: months of a case in seconds,
// with the real activities writing to a real (embedded) PostgreSQL.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectionCases, communications, invoices } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { resolveServerExecutable } from '../scripts/temporal-servers';
import { caseStatusQuery, type CollectionResult } from '../workflows/messages';
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
    expect(result).toEqual({ outcome: 'paid', amountOutstandingMinor: 0, paymentsApplied: 1 });

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
});
