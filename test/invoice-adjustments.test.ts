// Credit notes, cancellation and invoice changes over HTTP, forwarded to real workflows on the
// time-skipping server, with the real database.
import { WorkflowNotFoundError } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, collectionCases, communications, invoices } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery } from '../workflows/messages';
import { invoicePayload, isoDate } from './support/fixtures';
import { startTimeSkippingHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startTimeSkippingHarness>>;
beforeAll(async () => void (h = await startTimeSkippingHarness()));
afterAll(() => h?.stop());

async function register(dueInDays: number) {
  const now = new Date(await h.env.currentTimeMs());
  const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(dueInDays, now) });
  const res = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  expect(res.statusCode, res.body).toBe(201);
  return { payload, handle: h.env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

const post = (externalId: string, what: 'credit-notes' | 'cancellation', payload: object, headers: Record<string, string> = h.auth('collector')) =>
  h.app.inject({ method: 'POST', url: `/invoices/${externalId}/${what}`, headers, payload });

const patch = (externalId: string, payload: object, headers: Record<string, string> = h.auth('collector')) =>
  h.app.inject({ method: 'PATCH', url: `/invoices/${externalId}`, headers, payload });

async function invoiceRow(externalId: string) {
  const [row] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, externalId));
  return row!;
}

async function auditOf(externalId: string, type: string) {
  const invoice = await invoiceRow(externalId);
  return h.db.db.select().from(auditEvents).where(and(eq(auditEvents.invoiceId, invoice.id), eq(auditEvents.type, type)));
}

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): { type: string; detail: string } }, status: number, type: string) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.json().type).toBe(`urn:arrears:problem:${type}`);
  return res.json();
}

describe('credit notes', () => {
  it('lowers the amount outstanding once per adjustmentId, on the case and the invoice, audited with the caller', async () => {
    const { payload, handle } = await register(0);
    const note = { adjustmentId: 'CN-1', amountMinor: 25_000, currency: 'EUR', reason: 'two pallets damaged' };
    const first = await post(payload.externalId, 'credit-notes', note);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ delivery: 'applied', adjustment: { adjustmentId: 'CN-1', kind: 'credit_note', amountMinor: 25_000, recordedBy: 'test-collector' } });
    const again = await post(payload.externalId, 'credit-notes', note);
    expect(again.statusCode).toBe(200);
    expect(again.json().adjustment.id).toBe(first.json().adjustment.id);

    await h.env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(100_000);
    expect(await invoiceRow(payload.externalId)).toMatchObject({ amountOutstandingMinor: 100_000, amountCreditedMinor: 25_000, status: 'open' });
    const events = await auditOf(payload.externalId, 'invoice.credited');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: 'test-collector', data: { adjustmentId: 'CN-1', amountMinor: 25_000 } });
    const detail = await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('viewer') });
    expect(detail.json().invoice).toMatchObject({ amountCreditedMinor: 25_000, amountOutstandingMinor: 100_000 });

    expectProblem(await post(payload.externalId, 'credit-notes', { ...note, amountMinor: 1_000 }), 409, 'adjustment-conflict');
  });

  it('takes its id from the Idempotency-Key header when the body has none', async () => {
    const { payload, handle } = await register(0);
    const headers = { ...h.auth('admin'), 'idempotency-key': 'erp-credit-77' };
    const note = { amountMinor: 5_000, currency: 'EUR', reason: 'early payment discount' };
    expect((await post(payload.externalId, 'credit-notes', note, headers)).statusCode).toBe(201);
    const again = await post(payload.externalId, 'credit-notes', note, headers);
    expect(again.statusCode).toBe(200);
    expect(again.json().adjustment.adjustmentId).toBe('erp-credit-77');
    await h.env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(120_000);
  });

  it('refuses a credit above the amount outstanding or in another currency, viewers, unknown invoices and bad amounts', async () => {
    const { payload } = await register(0);
    const note = { amountMinor: 5_000, currency: 'EUR', reason: 'goodwill' };
    const above = expectProblem(await post(payload.externalId, 'credit-notes', { ...note, amountMinor: 125_001 }), 422, 'credit-exceeds-outstanding');
    expect(above.detail).toContain('125000 outstanding');
    expectProblem(await post(payload.externalId, 'credit-notes', { ...note, currency: 'USD' }), 422, 'currency-mismatch');
    expectProblem(await post(payload.externalId, 'credit-notes', note, h.auth('viewer')), 403, 'forbidden');
    expectProblem(await post('INV-unknown', 'credit-notes', note), 404, 'invoice-not-found');
    expectProblem(await post(payload.externalId, 'credit-notes', { ...note, amountMinor: 0.5 }), 400, 'validation');
    expect(await auditOf(payload.externalId, 'invoice.credited')).toEqual([]);
    expect((await invoiceRow(payload.externalId)).amountCreditedMinor).toBe(0);
  });

  it('checks a credit note against the credits before it, even before the case has applied them', async () => {
    const { payload, handle } = await register(0);
    const note = (adjustmentId: string) => post(payload.externalId, 'credit-notes', { adjustmentId, amountMinor: 80_000, currency: 'EUR', reason: 'damaged goods' });
    // Sent together: each is checked once the other is recorded, before its case has heard of it.
    const answers = await Promise.all([note('CN-A'), note('CN-B')]);
    expect(answers.map((a) => a.statusCode).sort()).toEqual([201, 422]);
    expect(answers.find((a) => a.statusCode === 422)!.json().detail).toContain('45000 outstanding');
    expect((await invoiceRow(payload.externalId)).amountCreditedMinor).toBe(80_000);
    await until('the case applied the credit', async () => (await handle.query(caseStatusQuery)).amountOutstandingMinor === 45_000 || undefined);
  });

  it('starts a case that has not started yet with the credit in hand', async () => {
    const { payload, handle } = await register(30);
    await expect(handle.describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    const res = await post(payload.externalId, 'credit-notes', { adjustmentId: 'CN-early', amountMinor: 25_000, currency: 'EUR', reason: 'price corrected' });
    expect(res.json()).toMatchObject({ delivery: 'applied' });
    expect(await handle.query(caseStatusQuery)).toMatchObject({ stage: 'Scheduled', amountOutstandingMinor: 100_000 });
  });
});

describe('cancellation', () => {
  it('cancels the invoice and closes its case as cancelled; a repeat returns it, and later corrections are 409', async () => {
    const { payload, handle } = await register(0);
    const res = await post(payload.externalId, 'cancellation', { reason: 'issued to the wrong customer' }, h.auth('admin'));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ delivery: 'applied', adjustment: { kind: 'cancellation', amountMinor: null, recordedBy: 'test-admin' } });
    expect(await handle.result()).toMatchObject({ outcome: 'cancelled' });
    expect((await invoiceRow(payload.externalId)).status).toBe('cancelled');
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(caseRow).toMatchObject({ stage: 'Closed', outcome: 'cancelled' });
    expect((await auditOf(payload.externalId, 'invoice.cancelled'))[0]).toMatchObject({ actor: 'test-admin' });

    const repeat = await post(payload.externalId, 'cancellation', { reason: 'sent twice' }, { ...h.auth('collector'), 'idempotency-key': 'other' });
    expect(repeat.statusCode).toBe(200);
    // It is what closed the case: applied, answered from its record without signalling again.
    expect(repeat.json()).toMatchObject({ delivery: 'applied', adjustment: { id: res.json().adjustment.id } });
    expectProblem(await post(payload.externalId, 'credit-notes', { amountMinor: 100, currency: 'EUR', reason: 'late credit' }), 409, 'case-closed');
    expectProblem(await patch(payload.externalId, { number: 'NEW-1' }), 409, 'case-closed');
    expectProblem(await post(payload.externalId, 'cancellation', { reason: 'nope' }, h.auth('viewer')), 403, 'forbidden');
  });

  it('closes a case that had not started without contacting anyone', async () => {
    const { payload, handle } = await register(30);
    expect((await post(payload.externalId, 'cancellation', { reason: 'order withdrawn' })).statusCode).toBe(201);
    expect(await handle.result()).toMatchObject({ outcome: 'cancelled' });
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(await h.db.db.select().from(communications).where(eq(communications.caseId, caseRow!.id))).toEqual([]);
  });
});

describe('changing an invoice', () => {
  it('moves the due date and the start of a case that has not started, and audits the change', async () => {
    const now = new Date(await h.env.currentTimeMs());
    const { payload } = await register(30);
    const res = await patch(payload.externalId, { dueDate: isoDate(40, now), number: 'R-2026-0042' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      invoice: { dueDate: isoDate(40, now), number: 'R-2026-0042' },
      case: { stage: 'NotStarted', startsAt: `${isoDate(36, now)}T00:00:00.000Z` },
    });
    const [event] = await auditOf(payload.externalId, 'invoice.updated');
    expect(event).toMatchObject({ actor: 'test-collector', data: { changed: { dueDate: { from: payload.dueDate, to: isoDate(40, now) } } } });
    // The same values again change nothing.
    expect((await patch(payload.externalId, { dueDate: isoDate(40, now) })).statusCode).toBe(200);
    expect(await auditOf(payload.externalId, 'invoice.updated')).toHaveLength(1);
  });

  it('starts the case at once when an earlier due date brings its start time, and refuses to move a running case (409)', async () => {
    const now = new Date(await h.env.currentTimeMs());
    const { payload, handle } = await register(30);
    const earlier = await patch(payload.externalId, { dueDate: isoDate(1, now) });
    expect(earlier.json().case).toMatchObject({ stage: 'Scheduled' });
    expect((await handle.describe()).status.name).toBe('RUNNING');

    const refused = expectProblem(await patch(payload.externalId, { dueDate: isoDate(20, now) }), 409, 'case-started');
    expect(refused.detail).toContain(`POST /invoices/${payload.externalId}/cancellation`);
    expect((await invoiceRow(payload.externalId)).dueDate).toBe(isoDate(1, now));
    // The number still changes on a running case: letters read it from the invoice.
    expect((await patch(payload.externalId, { number: 'R-2026-0043' })).json().invoice.number).toBe('R-2026-0043');
  });

  it('refuses an empty change, a due date before the issue date, viewers and unknown invoices', async () => {
    const { payload } = await register(30);
    expectProblem(await patch(payload.externalId, {}), 400, 'validation');
    expectProblem(await patch(payload.externalId, { dueDate: '2000-01-01' }), 422, 'due-before-issue');
    expectProblem(await patch(payload.externalId, { number: 'X' }, h.auth('viewer')), 403, 'forbidden');
    expectProblem(await patch('INV-unknown', { number: 'X' }), 404, 'invoice-not-found');
  });

  it('refuses to move a case whose start time has come but whose start failed: the sweep may be starting it', async () => {
    const now = new Date(await h.env.currentTimeMs());
    const broken = await h.appWithoutTemporal();
    const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now) });
    expect((await broken.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(503);
    await broken.close();
    expectProblem(await patch(payload.externalId, { dueDate: isoDate(20, now) }), 409, 'case-started');
    expect((await invoiceRow(payload.externalId)).dueDate).toBe(isoDate(0, now));
  });
});

describe('contract', () => {
  it('documents the correction routes in the OpenAPI document', async () => {
    const doc = (await h.app.inject({ url: '/docs/json' })).json();
    const credit = doc.paths['/invoices/{externalId}/credit-notes'].post;
    expect(credit.requestBody.content['application/json'].schema.required).toEqual(expect.arrayContaining(['amountMinor', 'currency', 'reason']));
    expect(Object.keys(credit.responses)).toEqual(expect.arrayContaining(['200', '201', '403', '404', '409', '422']));
    expect(doc.paths['/invoices/{externalId}/cancellation'].post).toBeDefined();
    expect(doc.paths['/invoices/{externalId}'].patch.requestBody.content['application/json'].schema.properties).toHaveProperty('dueDate');
  });
});
