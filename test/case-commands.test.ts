// Collectors' commands and approvers' decisions over HTTP, delivered to real workflows on
// the time-skipping server.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectionCases, disputes } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery } from '../workflows/messages';
import { invoicePayload, isoDate } from './support/fixtures';
import { startTimeSkippingHarness } from './support/harness';

let env: TestWorkflowEnvironment;
let h: Awaited<ReturnType<typeof startTimeSkippingHarness>>;

beforeAll(async () => {
  h = await startTimeSkippingHarness();
  env = h.env;
});

afterAll(async () => {
  await h?.stop();
});

async function register() {
  const now = new Date(await env.currentTimeMs());
  const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now) });
  await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  return { payload, handle: env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

const command = (externalId: string, name: string, payload: object, headers: Record<string, string> = h.auth('collector')) =>
  h.app.inject({ method: 'POST', url: `/invoices/${externalId}/${name}`, headers, payload });

describe('case commands', () => {
  it('opens a dispute once per Idempotency-Key, records who did it, and resolves it', async () => {
    const { payload, handle } = await register();
    const headers = { ...h.auth('collector'), 'idempotency-key': 'ticket-7' };
    expect((await command(payload.externalId, 'dispute', { reason: 'goods damaged' }, headers)).statusCode).toBe(202);
    expect((await command(payload.externalId, 'dispute', { reason: 'goods damaged' }, headers)).statusCode).toBe(202);
    await env.sleep('1 hour');
    expect(await handle.query(caseStatusQuery)).toMatchObject({ stage: 'Disputed', dispute: { reason: 'goods damaged' } });
    const [c] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    expect(await h.db.db.select().from(disputes).where(eq(disputes.caseId, c!.id))).toHaveLength(1);

    const resolved = await command(payload.externalId, 'dispute-resolution', { resolution: 'customer_favour', note: 'credit CN-3', creditMinor: 25_000 });
    expect(resolved.statusCode).toBe(202);
    await env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(100_000);
  });

  it('starts a case that has not started yet with the command in hand (a dispute before the first reminder)', async () => {
    const now = new Date(await env.currentTimeMs());
    const payload = invoicePayload({ issueDate: isoDate(-5, now), dueDate: isoDate(30, now) });
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const [waiting] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, collectionWorkflowId(payload.externalId)));
    expect(waiting!.stage).toBe('NotStarted');

    expect((await command(payload.externalId, 'dispute', { reason: 'never ordered this' })).statusCode).toBe(202);
    await env.sleep('1 hour');
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    expect(await handle.query(caseStatusQuery)).toMatchObject({ stage: 'Disputed', dispute: { reason: 'never ordered this' } });
  });

  it('takes commands on a case whose balance does not fit in 32 bits (30,000,000.00 EUR)', async () => {
    const now = new Date(await env.currentTimeMs());
    const payload = invoicePayload({ amountTotalMinor: 3_000_000_000, issueDate: isoDate(-30, now), dueDate: isoDate(0, now) });
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const promised = await command(payload.externalId, 'promise', { promisedDate: isoDate(10, now), amountMinor: 3_000_000_000 });
    expect(promised.statusCode, promised.body).toBe(202);
    expect((await command(payload.externalId, 'dispute', { reason: 'wrong quantity' })).statusCode).toBe(202);
    await env.sleep('1 hour');
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    expect(await handle.query(caseStatusQuery)).toMatchObject({ stage: 'Disputed', amountOutstandingMinor: 3_000_000_000 });
  });

  it('refuses a note sent again under its Idempotency-Key with other text, and takes the same note again', async () => {
    const { payload } = await register();
    const headers = { ...h.auth('collector'), 'idempotency-key': 'call-3' };
    expect((await command(payload.externalId, 'notes', { text: 'called, no answer' }, headers)).statusCode).toBe(202);
    expect((await command(payload.externalId, 'notes', { text: 'called, no answer' }, headers)).statusCode).toBe(202);
    const other = await command(payload.externalId, 'notes', { text: 'debtor promised Friday' }, headers);
    expect(other.statusCode).toBe(409);
    expect(other.json().type).toBe('urn:arrears:problem:idempotency-conflict');
    const timeline = (await h.app.inject({ method: 'GET', url: `/invoices/${payload.externalId}`, headers: h.auth('collector') })).json().timeline;
    expect(timeline.filter((e: { type: string }) => e.type === 'command.notes').map((e: { data: { text: string } }) => e.data.text)).toEqual(['called, no answer']);
  });

  it('refuses a payment plan that does not cover the balance, a settlement that is not reduced, and viewers', async () => {
    const { payload } = await register();
    const plan = await command(payload.externalId, 'payment-plan', { instalments: [{ dueDate: isoDate(30), amountMinor: 1_000 }] });
    expect(plan.statusCode).toBe(422);
    expect(plan.json().type).toBe('urn:arrears:problem:plan-does-not-cover-balance');
    const settlement = await command(payload.externalId, 'settlement', { amountMinor: 125_000, payBy: isoDate(10) });
    expect(settlement.statusCode).toBe(422);
    expect((await command(payload.externalId, 'pause', { reason: 'checking' }, h.auth('viewer'))).statusCode).toBe(403);
    expect((await command('INV-nope', 'pause', { reason: 'checking' })).statusCode).toBe(404);
    expect((await command(payload.externalId, 'promise', { promisedDate: 'soon', amountMinor: -1 })).statusCode).toBe(400);
  });
});

describe('approvals over HTTP', () => {
  it('lists a pending escalation with its cost, lets an approver decide it, and answers 409 to a second decision', async () => {
    const { handle } = await register();
    await env.sleep('61 days');
    const list = await h.app.inject({ url: '/approvals', headers: h.auth('approver') });
    const mine = list.json().approvals.find((a: { workflowId: string }) => a.workflowId === handle.workflowId);
    expect(mine).toMatchObject({ kind: 'agency_referral', amountMinor: 125_000, costMinor: 31_250, status: 'pending' });

    const decide = (role: 'collector' | 'approver') =>
      h.app.inject({ method: 'POST', url: `/approvals/${mine.id}/decision`, headers: h.auth(role), payload: { decision: 'approve', reason: 'no answer to five contacts' } });
    expect((await decide('collector')).statusCode).toBe(403);
    const accepted = await decide('approver');
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json()).toMatchObject({ approvalId: mine.id, decision: 'approve' });
    const again = await decide('approver');
    expect(again.statusCode).toBe(409);
    expect(again.headers['content-type']).toContain('application/problem+json');

    const detail = await h.app.inject({ url: `/approvals/${mine.id}`, headers: h.auth('viewer') });
    expect(detail.json()).toMatchObject({ status: 'approved', decidedBy: 'test-approver' });
  });
});

describe('call worklist', () => {
  const outcome = (id: string, text: string, role: 'collector' | 'viewer' = 'collector') =>
    h.app.inject({ method: 'POST', url: `/call-tasks/${id}/outcome`, headers: h.auth(role), payload: { outcome: text } });
  const worklist = async (query = '') => (await h.app.inject({ url: `/call-tasks${query}`, headers: h.auth('viewer') })).json();

  it('lists the call a case asked for, takes its outcome once, and puts it on the timeline', async () => {
    const { payload } = await register();
    await env.sleep('10 days'); // past day 7, even when it fell on a weekend
    const task = (await worklist('?limit=200')).tasks.find((t: { invoiceExternalId: string }) => t.invoiceExternalId === payload.externalId);
    expect(task).toMatchObject({ status: 'open', phone: '+49 30 1234567', customerName: 'Muster GmbH', currency: 'EUR', amountOutstandingMinor: 125_000 });

    expect((await outcome(task.id, 'left a voicemail', 'viewer')).statusCode).toBe(403);
    const done = await outcome(task.id, 'spoke to AP: payment run on Friday');
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toMatchObject({ status: 'done', outcome: 'spoke to AP: payment run on Friday', assignedTo: expect.any(String) });
    expect((await outcome(task.id, 'spoke to AP: payment run on Friday')).statusCode).toBe(200);
    const other = await outcome(task.id, 'no answer');
    expect(other.statusCode).toBe(409);
    expect(other.json().type).toBe('urn:arrears:problem:call-task-closed');
    expect((await worklist('?limit=200')).tasks.map((t: { id: string }) => t.id)).not.toContain(task.id);
    expect((await worklist('?status=done&limit=200')).tasks.map((t: { id: string }) => t.id)).toContain(task.id);
    const timeline = (await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('viewer') })).json().timeline;
    expect(timeline.filter((e: { type: string }) => e.type === 'call_task.done')).toHaveLength(1);
    expect((await outcome('00000000-0000-4000-8000-000000000000', 'no answer')).statusCode).toBe(404);
  });

  it('refuses an outcome for a call withdrawn because the debtor paid', async () => {
    const { payload, handle } = await register();
    await env.sleep('10 days');
    const task = (await worklist('?limit=200')).tasks.find((t: { invoiceExternalId: string }) => t.invoiceExternalId === payload.externalId);
    const paid = await h.app.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/payments`,
      headers: h.auth('collector'),
      payload: { reference: `paid-${payload.externalId}`, amountMinor: 125_000, currency: 'EUR' },
    });
    expect(paid.statusCode).toBe(201);
    await handle.result();
    const refused = await outcome(task.id, 'called: no answer');
    expect(refused.statusCode).toBe(409);
    expect(refused.json().detail).toContain('cancelled');
  });
});
