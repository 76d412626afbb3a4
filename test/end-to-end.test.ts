// The first slice end to end, on the real Temporal dev server (the CLI) and a real database:
// HTTP registration → workflow → reminder activity → HTTP payment → case closed as paid.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, collectionCases, collectionPolicies, communications, invoices, letters } from '../db/schema';
import { policySchema } from '../domain/policy';
import { collectionWorkflowId } from '../domain/collection';
import { searchAttributes } from '../workflows/messages';
import { invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
});

afterAll(async () => {
  await h?.stop();
});

describe('first slice on the Temporal dev server', () => {
  it('registers an overdue invoice, sends its first letter, and closes the case as paid when the payment arrives', async () => {
    // Letters are not held for the debtor's contact window, so this runs at any hour.
    await h.db.db
      .insert(collectionPolicies)
      .values({
        name: 'letters-first',
        version: 1,
        createdBy: 'test',
        definition: policySchema.parse({
          name: 'letters-first',
          version: 1,
          steps: [
            { id: 'day-1-letter', offsetDays: 1, action: 'letter', template: 'reminder_letter', tone: 'friendly' },
            { id: 'day-30-letter', offsetDays: 30, action: 'letter', template: 'reminder_letter', tone: 'firm' },
          ],
        }),
      })
      .onConflictDoNothing();
    const payload = { ...invoicePayload({ dueDate: isoDate(-3) }), policy: 'letters-first' };
    const workflowId = collectionWorkflowId(payload.externalId);

    const registered = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    expect(registered.statusCode, registered.body).toBe(201);
    expect(registered.json().case).toMatchObject({ workflowId, stage: 'Scheduled' });

    const handle = h.client.workflow.getHandle(workflowId);
    const first = await handle.describe();
    expect(first.status.name).toBe('RUNNING');
    expect(first.typedSearchAttributes.get(searchAttributes.invoiceId)).toBe(payload.externalId);

    // Registering again starts nothing new: same run, 200.
    const again = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    expect(again.statusCode).toBe(200);
    expect((await handle.describe()).runId).toBe(first.runId);

    // Day 1's letter is due already: the activity renders it and queues it for print.
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId));
    const reminder = await until('the first letter', async () => {
      const rows = await h.db.db.select().from(communications).where(eq(communications.caseId, caseRow!.id));
      return rows.length > 0 && rows;
    });
    expect(reminder).toHaveLength(1);
    expect(reminder[0]).toMatchObject({ channel: 'letter', template: 'reminder_letter', status: 'queued' });
    expect(reminder[0]!.recipient).toContain('Musterstraße 1');
    const [letter] = await h.db.db.select().from(letters).where(eq(letters.communicationId, reminder[0]!.id));
    expect(letter?.pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const audit = await h.db.db.select().from(auditEvents).where(eq(auditEvents.caseId, caseRow!.id));
    expect(audit.map((e) => e.type)).toEqual(expect.arrayContaining(['invoice.registered', 'letter.queued']));

    const paid = await h.app.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/payments`,
      headers: h.auth('collector'),
      payload: { reference: `bank-${payload.externalId}`, amountMinor: payload.amountTotalMinor, currency: 'EUR' },
    });
    expect(paid.statusCode, paid.body).toBe(201);
    expect(await handle.result()).toEqual({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0, paymentsApplied: 1 });

    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice).toMatchObject({ status: 'paid', amountOutstandingMinor: 0 });
    const detail = await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('viewer') });
    expect(detail.json()).toMatchObject({ case: { stage: 'Closed', outcome: 'paid' }, live: { stage: 'Closed' } });
    expect(detail.json().timeline.map((e: { type: string }) => e.type)).toContain('payment.recorded');
  });

  it('keeps the case findable in Temporal by stage and amount outstanding', async () => {
    const payload = invoicePayload({ dueDate: isoDate(3) }); // its heads-up is due: the case starts at once
    await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    const query = `InvoiceId = "${payload.externalId}" AND CollectionStage = "Scheduled" AND AmountOutstanding = ${payload.amountTotalMinor}`;
    const found = await until('the visibility record', async () => {
      const ids: string[] = [];
      for await (const wf of h.client.workflow.list({ query })) ids.push(wf.workflowId);
      return ids.length > 0 && ids;
    });
    expect(found).toEqual([collectionWorkflowId(payload.externalId)]);
  });

  it('answers /readyz with 200 when the database and Temporal answer', async () => {
    const res = await h.app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', database: 'ok', temporal: 'ok' });
  });
});
