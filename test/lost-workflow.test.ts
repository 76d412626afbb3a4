// A case whose workflow Temporal no longer has (its execution lost, as a dev server killed with
// SIGKILL lost some) or that ended without closing the case (terminated from the Temporal UI):
// it shows on the stuck list with a restart action, and a restart, or the next payment, begins
// a new run from the opening balance and every stored payment, paused for a person to check
// its timeline: the balance is right and the debtor hears nothing until someone resumes.
// Real Temporal dev server.
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { approvals, auditEvents, collectionCases, collectionPolicies, customers, handovers } from '../db/schema';
import { findInvoice } from '../api/invoice-service';
import { restartCollection } from '../cases/collection-start';
import { collectionWorkflowId } from '../domain/collection';
import { policySchema } from '../domain/policy';
import { caseStatusQuery } from '../workflows/messages';
import { overdueSweep } from '../workflows/overdue-sweep';
import { signedBankDelivery, storedEvent } from './support/bank-payments';
import { afternoonZone, anyDay, emailFirstPolicy, invoicePayload, isoDate, zoneAtHour } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { replayAndRecord } from './support/histories';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
  await h.db.db.insert(collectionPolicies).values([
    emailFirstPolicy('lost-email-first'),
    {
      name: 'lost-agency-first',
      version: 1,
      createdBy: 'test',
      definition: policySchema.parse({
        name: 'lost-agency-first',
        version: 1,
        contactWindow: anyDay,
        steps: [{ id: 'agency', offsetDays: 1, action: 'agency_referral', template: 'agency_referral', tone: 'final', approval: { deadlineDays: 5 } }],
      }),
    },
  ]);
});

afterAll(async () => {
  await h?.stop();
});

const caseRow = async (workflowId: string) => (await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId)))[0]!;
const emailsTo = (address: string) => h.sendgrid.messages.filter((m) => m.body.personalizations[0]?.to[0]?.email === address).length;

function pay(externalId: string, id: string, amountMinor: number) {
  return h.app.inject(signedBankDelivery({ id, type: 'payment.succeeded', data: { invoiceExternalId: externalId, amountMinor, currency: 'EUR' } }));
}

/**
 * A running case with a part payment of 25,000 of its 125,000 applied. Its debtor's contact
 * window is closed (it is 2 a.m. there), so its e-mail, due since yesterday, waits.
 */
async function partPaidCase() {
  const invoice = invoicePayload({ dueDate: isoDate(-3), policy: 'lost-email-first' });
  const email = `${invoice.externalId.toLowerCase()}@debtor.example`;
  invoice.customer = { ...invoice.customer, email, timeZone: zoneAtHour(2) };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const workflowId = collectionWorkflowId(invoice.externalId);
  expect((await pay(invoice.externalId, `evt_part_${invoice.externalId}`, 25_000)).statusCode).toBe(200);
  await until('the part payment on the case', async () => (await caseRow(workflowId)).amountOutstandingMinor === 100_000);
  return { externalId: invoice.externalId, customerExternalId: invoice.customer.externalId, email, workflowId };
}

async function untilGone(workflowId: string) {
  await until('the execution to be gone', async () =>
    h.client.workflow
      .getHandle(workflowId)
      .describe()
      .then(() => false)
      .catch((err: unknown) => err instanceof WorkflowNotFoundError),
  );
}

/** Temporal loses the case's execution. */
async function lose(workflowId: string) {
  await h.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId } });
  await untilGone(workflowId);
}

/** The case's entry on the stuck list once its next step is due (a lost run never takes it). */
async function stuckEntry(workflowId: string) {
  await h.db.db.update(collectionCases).set({ nextActionAt: new Date(Date.now() - 60_000) }).where(eq(collectionCases.workflowId, workflowId));
  const list = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
  expect(list.statusCode, list.body).toBe(200);
  return (list.json() as { cases: { workflowId: string; kind: string; action: string; reason: string }[] }).cases.find((c) => c.workflowId === workflowId);
}

function restart(externalId: string, role: 'collector' | 'viewer' = 'collector', payload: object = { reason: 'its workflow was lost' }) {
  return h.app.inject({ method: 'POST', url: `/invoices/${externalId}/restart`, headers: h.auth(role), payload });
}

async function untilStage(workflowId: string, stage: string) {
  return until(`the case in ${stage}`, async () => {
    const row = await caseRow(workflowId);
    return row.stage === stage && row;
  });
}

it('lists a case whose workflow Temporal lost, restarts it paused from the right balance, and contacts nobody until it is resumed', async () => {
  const { externalId, customerExternalId, email, workflowId } = await partPaidCase();
  // A running workflow is not restarted.
  const running = await restart(externalId);
  expect(running.statusCode, running.body).toBe(409);
  expect(running.json()).toMatchObject({ type: expect.stringContaining('case-running') });

  await lose(workflowId);
  expect(await stuckEntry(workflowId)).toMatchObject({ kind: 'workflow_missing', action: 'restart', reason: expect.stringContaining('no record of its workflow') });
  // Meanwhile the debtor's contact window has opened: a run that is not paused e-mails at once.
  await h.db.db.update(customers).set({ timeZone: afternoonZone() }).where(eq(customers.externalId, customerExternalId));

  // Viewers may not; a reason is required.
  expect((await restart(externalId, 'viewer')).statusCode).toBe(403);
  const noReason = await restart(externalId, 'collector', {});
  expect(noReason.statusCode).toBe(400);
  expect(noReason.headers['content-type']).toContain('application/problem+json');

  const restarted = await restart(externalId);
  expect(restarted.statusCode, restarted.body).toBe(202);
  expect(restarted.json()).toMatchObject({ restarted: true, runId: expect.any(String), stage: 'Paused' });
  // Paused, with the balance after the part payment (applied again from the stored payments, once).
  const paused = await untilStage(workflowId, 'Paused');
  expect(paused).toMatchObject({ amountOutstandingMinor: 100_000, stateRunId: restarted.json().runId });
  const status = await h.client.workflow.getHandle(workflowId).query(caseStatusQuery);
  expect(status).toMatchObject({ stage: 'Paused', amountOutstandingMinor: 100_000, pausedReason: expect.stringContaining('restarted after its workflow was lost') });
  const [audit] = await h.db.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'case.restarted'), eq(auditEvents.caseId, paused.id)));
  expect(audit).toMatchObject({ actor: expect.any(String), data: expect.objectContaining({ reason: 'its workflow was lost', previously: 'lost' }) });
  // On the stuck list as restarted, until someone resumes it (not 14 days later as any pause).
  expect(await stuckEntry(workflowId)).toMatchObject({ kind: 'restarted_paused', action: 'resume', reason: expect.stringContaining('its workflow was lost; check the timeline, then resume') });
  expect((await h.client.workflow.getHandle(workflowId).describe()).memo).toEqual({ restartedBy: audit!.actor, restartReason: 'its workflow was lost', previously: 'lost' });
  // Once is enough: it runs now, and the refusal says what to do instead.
  expect((await restart(externalId)).json()).toMatchObject({
    status: 409,
    type: expect.stringContaining('case-running'),
    detail: expect.stringContaining(`runs again since it was started after its loss (by ${audit!.actor}): check its timeline, then resume it`),
  });

  // Nothing goes out while it is paused; the collector checks the timeline and resumes, and the e-mail goes out, once.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  expect(emailsTo(email)).toBe(0);
  const resumed = await h.app.inject({ method: 'POST', url: `/invoices/${externalId}/resume`, headers: h.auth('collector'), payload: { reason: 'timeline checked: no dispute' } });
  expect(resumed.statusCode, resumed.body).toBe(202);
  await until('the e-mail', async () => emailsTo(email) === 1);
  expect(await stuckEntry(workflowId)).toBeUndefined();
  // Resumed, it is an ordinary running case to a restart.
  expect((await restart(externalId)).json()).toMatchObject({ status: 409, detail: expect.stringContaining('is running: there is nothing to restart') });

  // The rest of the money closes it exactly: no overpayment from a payment counted twice.
  expect((await pay(externalId, `evt_rest_${externalId}`, 100_000)).statusCode).toBe(200);
  expect(await h.client.workflow.getHandle(workflowId).result()).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0, paymentsApplied: 2 });
  await untilStage(workflowId, 'Closed');
  // A closed case is not restarted; nor one whose workflow completed while its row lags behind.
  expect((await restart(externalId)).json()).toMatchObject({ status: 409, type: expect.stringContaining('case-not-restartable') });
  await h.db.db.update(collectionCases).set({ stage: 'AwaitingPayment' }).where(eq(collectionCases.workflowId, workflowId));
  expect((await restart(externalId)).json()).toMatchObject({ status: 409, type: expect.stringContaining('case-completed') });
  expect(emailsTo(email)).toBe(1);
  // A restarted run, paused, resumed and paid, replays with the current code.
  await replayAndRecord(h.client.workflow.getHandle(workflowId), 'restart-paused-v2');
});

it('lists a case whose workflow was terminated without closing it, and restarts it paused', async () => {
  const { externalId, workflowId } = await partPaidCase();
  await h.client.workflow.getHandle(workflowId).terminate('by mistake, from the Temporal UI');
  expect(await stuckEntry(workflowId)).toMatchObject({ kind: 'workflow_ended', action: 'restart', reason: expect.stringContaining('terminated') });

  const restarted = await restart(externalId);
  expect(restarted.statusCode, restarted.body).toBe(202);
  const paused = await untilStage(workflowId, 'Paused');
  expect(paused.amountOutstandingMinor).toBe(100_000);
  const [audit] = await h.db.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'case.restarted'), eq(auditEvents.caseId, paused.id)));
  expect(audit?.data).toMatchObject({ previously: 'terminated' });
});

it('answers a restart sent again after its answer was lost as the restart it was, and puts it on the timeline once', async () => {
  const { externalId, workflowId } = await partPaidCase();
  await lose(workflowId);
  // A restart whose start reached Temporal, but whose answer did not reach the API (it said 503).
  const deps = { db: h.db.db, temporal: h.client, taskQueue: h.taskQueue, temporalUiUrl: 'http://localhost:8233', clock: async () => new Date() };
  const stored = await findInvoice(deps, externalId);
  const runId = await restartCollection(deps, { ...stored, caseRow: stored.caseRow! }, { restartedBy: 'Casey (collector)', restartReason: 'its workflow was lost', previously: 'lost' });
  const restartedCase = await untilStage(workflowId, 'Paused');
  expect((await h.client.workflow.getHandle(workflowId).describe()).memo).toEqual({ restartedBy: 'Casey (collector)', restartReason: 'its workflow was lost', previously: 'lost' });

  // Sent again (by anyone): the restart it was, now on the timeline as it was asked for.
  const again = await restart(externalId, 'collector', { reason: 'sending it again after a 503' });
  expect(again.statusCode, again.body).toBe(202);
  expect(again.json()).toEqual({ restarted: true, runId, stage: 'Paused' });
  // Once: a third send, or anyone else's restart, finds it running.
  expect((await restart(externalId)).json()).toMatchObject({ status: 409, type: expect.stringContaining('case-running') });
  const audits = await h.db.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'case.restarted'), eq(auditEvents.caseId, restartedCase.id)));
  expect(audits).toEqual([expect.objectContaining({ actor: 'Casey (collector)', data: { runId, reason: 'its workflow was lost', previously: 'lost' } })]);
  // One run: the second send started nothing.
  expect((await h.client.workflow.getHandle(workflowId).describe()).runId).toBe(runId);
});

it('applies a payment to a case whose workflow was lost or terminated: a new run takes it, paused and listed until resumed (a pause sent meanwhile changes nothing), and a payment in full closes the case', async () => {
  const lost = await partPaidCase();
  await lose(lost.workflowId);
  const terminated = await partPaidCase();
  await h.client.workflow.getHandle(terminated.workflowId).terminate('by mistake, from the Temporal UI');

  expect((await pay(lost.externalId, `evt_more_${lost.externalId}`, 50_000)).statusCode).toBe(200);
  expect((await pay(terminated.externalId, `evt_rest_${terminated.externalId}`, 100_000)).statusCode).toBe(200);
  // Applied after the answer: to the cases, not flagged as money for closed ones.
  for (const id of [`evt_more_${lost.externalId}`, `evt_rest_${terminated.externalId}`]) {
    await until(`payment ${id} applied`, async () => (await storedEvent(h.db.db, id))?.status === 'applied');
  }
  // The part payment: paused at the balance after both payments, each counted once.
  const paused = await untilStage(lost.workflowId, 'Paused');
  expect(paused.amountOutstandingMinor).toBe(50_000);
  expect((await h.client.workflow.getHandle(lost.workflowId).query(caseStatusQuery)).pausedReason).toContain('started again by a paymentReceived message');
  // Nobody asked for it, so the stuck list says so at once, for someone to check and resume; the
  // pause is on the timeline as the workflow's, and on the case row with its reason.
  expect(paused).toMatchObject({ pausedAfterRestart: true, pausedReason: expect.stringContaining('started again by a paymentReceived message') });
  const timeline = await h.db.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'case.paused'), eq(auditEvents.caseId, paused.id)));
  expect(timeline.at(-1)).toMatchObject({ actor: 'workflow', data: { reason: paused.pausedReason } });
  expect(await stuckEntry(lost.workflowId)).toMatchObject({ kind: 'restarted_paused', action: 'resume', reason: expect.stringContaining('paymentReceived') });
  const command = (name: string) =>
    h.app.inject({ method: 'POST', url: `/invoices/${lost.externalId}/${name}`, headers: h.auth('collector'), payload: { reason: `${name} after the check` } });
  // A pause sent meanwhile changes nothing: it is still the restart's pause, listed. (The payment
  // after it reaches the workflow after it: once the payment is on the row, the pause was handled.)
  expect((await command('pause')).statusCode).toBe(202);
  expect((await pay(lost.externalId, `evt_after_pause_${lost.externalId}`, 1_000)).statusCode).toBe(200);
  await until('the payment after the pause', async () => (await caseRow(lost.workflowId)).amountOutstandingMinor === 49_000);
  expect(await caseRow(lost.workflowId)).toMatchObject({ stage: 'Paused', pausedAfterRestart: true, pausedReason: expect.stringContaining('started again by a paymentReceived') });
  expect(await stuckEntry(lost.workflowId)).toMatchObject({ kind: 'restarted_paused' });
  // Paused again by a collector after a resume: an ordinary pause, not listed before its 14 days.
  expect((await command('resume')).statusCode).toBe(202);
  await untilStage(lost.workflowId, 'Scheduled');
  expect((await command('pause')).statusCode).toBe(202);
  await untilStage(lost.workflowId, 'Paused');
  expect(await stuckEntry(lost.workflowId)).toBeUndefined();
  // The payment in full: closed as paid.
  expect(await h.client.workflow.getHandle(terminated.workflowId).result()).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0, paymentsApplied: 2 });
  await untilStage(terminated.workflowId, 'Closed');
});

it('lists a lost case that a dispute started again as restarted, though the dispute holds it first', async () => {
  const { externalId, workflowId } = await partPaidCase();
  await lose(workflowId);
  const disputed = await h.app.inject({ method: 'POST', url: `/invoices/${externalId}/dispute`, headers: h.auth('collector'), payload: { reason: 'goods arrived damaged' } });
  expect(disputed.statusCode, disputed.body).toBe(202);
  expect(await untilStage(workflowId, 'Disputed')).toMatchObject({ pausedAfterRestart: true, amountOutstandingMinor: 100_000 });
  expect(await stuckEntry(workflowId)).toMatchObject({ kind: 'restarted_paused', action: 'resume', reason: expect.stringContaining('paused until someone resumes it') });
});

it('starts a lost case again with a payment plan sent to it, and counts only the money paid after the plan was agreed toward it', async () => {
  const { externalId, workflowId } = await partPaidCase(); // 25,000 of 125,000 paid
  await lose(workflowId);
  const instalments = [
    { dueDate: isoDate(30), amountMinor: 25_000 },
    { dueDate: isoDate(60), amountMinor: 75_000 },
  ];
  const plan = await h.app.inject({ method: 'POST', url: `/invoices/${externalId}/payment-plan`, headers: h.auth('collector'), payload: { instalments } });
  expect(plan.statusCode, plan.body).toBe(202);
  await untilStage(workflowId, 'Paused');
  const resumed = await h.app.inject({ method: 'POST', url: `/invoices/${externalId}/resume`, headers: h.auth('collector'), payload: { reason: 'plan agreed' } });
  expect(resumed.statusCode, resumed.body).toBe(202);
  await untilStage(workflowId, 'PaymentPlan');
  // The 25,000 paid before the plan is not its first instalment: that one is still ahead.
  const status = await h.client.workflow.getHandle(workflowId).query(caseStatusQuery);
  expect(status).toMatchObject({ amountOutstandingMinor: 100_000, paymentPlan: { nextInstalment: 0 }, nextAction: { kind: 'instalment 1 reminder' } });
});

it('restarts a lost case with the credit of a dispute resolved before, and asks an approver about a new settlement offer rather than taking the old decision', async () => {
  const { externalId, workflowId } = await partPaidCase(); // 25,000 of 125,000 paid
  const command = (name: string, payload: object, role: 'collector' | 'approver' = 'collector') =>
    h.app.inject({ method: 'POST', url: `/invoices/${externalId}/${name}`, headers: h.auth(role), payload });
  expect((await command('dispute', { reason: 'two pallets damaged' })).statusCode).toBe(202);
  await untilStage(workflowId, 'Disputed');
  expect((await command('dispute-resolution', { resolution: 'customer_favour', note: 'credit for the damaged pallets', creditMinor: 10_000 })).statusCode).toBe(202);
  const row = await until('the credit on the case', async () => {
    const r = await caseRow(workflowId);
    return r.amountOutstandingMinor === 90_000 && r.stage !== 'Disputed' && r;
  });
  expect((await command('settlement', { amountMinor: 60_000, payBy: isoDate(10) })).statusCode).toBe(202);
  const first = await until('the settlement asking an approver', async () => {
    const [a] = await h.db.db.select().from(approvals).where(and(eq(approvals.caseId, row.id), eq(approvals.kind, 'settlement'), eq(approvals.status, 'pending')));
    return a;
  });
  const decided = await h.app.inject({ method: 'POST', url: `/approvals/${first.id}/decision`, headers: h.auth('approver'), payload: { decision: 'approve', reason: 'keeps the customer' } });
  expect(decided.statusCode, decided.body).toBe(200);
  await untilStage(workflowId, 'SettlementAgreed');

  await lose(workflowId);
  expect((await restart(externalId)).statusCode).toBe(202);
  await untilStage(workflowId, 'Paused');
  // The dispute's credit counts again, as the stored payment does.
  expect(await h.client.workflow.getHandle(workflowId).query(caseStatusQuery)).toMatchObject({ amountOutstandingMinor: 90_000 });
  expect((await command('resume', { reason: 'timeline checked: offer to be made again' })).statusCode).toBe(202);
  await untilStage(workflowId, 'Scheduled');
  // A new, smaller offer is the restarted run's first: it waits for an approver, not for the old yes.
  expect((await command('settlement', { amountMinor: 30_000, payBy: isoDate(10) })).statusCode).toBe(202);
  await until('the new offer asking an approver', async () => {
    const pending = await h.db.db.select().from(approvals).where(and(eq(approvals.caseId, row.id), eq(approvals.kind, 'settlement'), eq(approvals.status, 'pending')));
    return pending.length === 1 && pending[0]!.amountMinor === 30_000;
  });
  expect((await h.client.workflow.getHandle(workflowId).query(caseStatusQuery)).stage).toBe('AwaitingApproval');
});

it('tells an approver deciding for a lost case to restart it; the restarted case asks again, under the same request, and takes the decision, which stands if it is lost again', async () => {
  const invoice = invoicePayload({ dueDate: isoDate(-5), policy: 'lost-agency-first', amountTotalMinor: 250_000 });
  invoice.customer = { ...invoice.customer, timeZone: afternoonZone() };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const workflowId = collectionWorkflowId(invoice.externalId);
  const paused = await untilStage(workflowId, 'AwaitingApproval');
  const [approval] = await h.db.db.select().from(approvals).where(eq(approvals.caseId, paused.id));
  const decide = () =>
    h.app.inject({ method: 'POST', url: `/approvals/${approval!.id}/decision`, headers: h.auth('approver'), payload: { decision: 'approve', reason: 'no answer to five contacts' } });

  await lose(workflowId);
  const refused = await decide();
  expect(refused.statusCode, refused.body).toBe(409);
  expect(refused.json()).toMatchObject({ type: expect.stringContaining('case-workflow-missing'), detail: expect.stringContaining(`/invoices/${invoice.externalId}/restart`) });

  expect((await restart(invoice.externalId)).statusCode).toBe(202);
  await untilStage(workflowId, 'Paused');
  const resumed = await h.app.inject({ method: 'POST', url: `/invoices/${invoice.externalId}/resume`, headers: h.auth('collector'), payload: { reason: 'timeline checked' } });
  expect(resumed.statusCode).toBe(202);
  await untilStage(workflowId, 'AwaitingApproval');
  expect(await h.db.db.select({ id: approvals.id }).from(approvals).where(eq(approvals.caseId, paused.id))).toEqual([{ id: approval!.id }]);
  const decided = await decide();
  expect(decided.statusCode, decided.body).toBe(200);
  await untilStage(workflowId, 'HandedOver');

  // Lost once more, after the handover: restarted and resumed, it passes the gate on the
  // decision taken, without asking anyone again, and is handed over (once) as before.
  await lose(workflowId);
  expect((await restart(invoice.externalId)).statusCode).toBe(202);
  await untilStage(workflowId, 'Paused');
  expect((await h.app.inject({ method: 'POST', url: `/invoices/${invoice.externalId}/resume`, headers: h.auth('collector'), payload: { reason: 'timeline checked' } })).statusCode).toBe(202);
  await untilStage(workflowId, 'HandedOver');
  expect(await h.db.db.select({ id: approvals.id, status: approvals.status }).from(approvals).where(eq(approvals.caseId, paused.id))).toEqual([{ id: approval!.id, status: 'approved' }]);
  const status = await h.client.workflow.getHandle(workflowId).query(caseStatusQuery);
  expect(status.pendingApproval).toBeNull();
  expect(await h.db.db.select().from(handovers).where(eq(handovers.approvalId, approval!.id))).toHaveLength(1);
  // The new run's history replays (and is kept for future code to replay: RECORD_HISTORIES=1).
  await replayAndRecord(h.client.workflow.getHandle(workflowId), 'approval-decided-before-restart-v1');
});

it("finds, in the overdue sweep's check of open cases, a lost case with no step ahead, lists it as gone until restarted, then as restarted, and as gone alone when lost again", async () => {
  const invoice = invoicePayload({ dueDate: isoDate(-3), policy: 'lost-email-first' });
  invoice.customer = { ...invoice.customer, email: `${invoice.externalId.toLowerCase()}@debtor.example`, timeZone: afternoonZone() };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const workflowId = collectionWorkflowId(invoice.externalId);
  // Its only reminder sent, it waits for payment with nothing scheduled.
  expect(await untilStage(workflowId, 'AwaitingPayment')).toMatchObject({ nextActionAt: null });
  const running = invoicePayload({ dueDate: isoDate(-3), policy: 'lost-email-first' });
  running.customer = { ...running.customer, timeZone: afternoonZone() };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: running })).statusCode).toBe(201);
  await untilStage(collectionWorkflowId(running.externalId), 'AwaitingPayment');

  await h.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId } });
  await untilGone(workflowId);
  const listed = async () => {
    const list = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
    return (list.json() as { cases: { workflowId: string; kind: string; action: string; since: string | null }[] }).cases.find((c) => c.workflowId === workflowId);
  };
  // Nothing is due on it, so the stuck list's own look at due cases cannot see it.
  expect(await listed()).toBeUndefined();

  const sweepRun = await h.client.workflow.start(overdueSweep, { taskQueue: h.taskQueue, workflowId: `sweep-${randomUUID()}`, args: [{ checkCases: 10_000 }] });
  const sweep = await sweepRun.result();
  expect(sweep.casesChecked).toBeGreaterThanOrEqual(2);
  expect(sweep.workflowsGone).toContain(invoice.externalId);
  await replayAndRecord(sweepRun, 'overdue-sweep-checks-open-cases-v1');
  expect(await caseRow(workflowId)).toMatchObject({ workflowGone: 'lost', workflowGoneSince: expect.any(Date), workflowCheckedAt: expect.any(Date) });
  expect(await caseRow(collectionWorkflowId(running.externalId))).toMatchObject({ workflowGone: null, workflowCheckedAt: expect.any(Date) });
  expect(await listed()).toMatchObject({ kind: 'workflow_missing', action: 'restart', since: expect.any(String) });
  const detail = await h.app.inject({ url: `/invoices/${invoice.externalId}`, headers: h.auth('viewer') });
  expect(detail.json().case).toMatchObject({ workflowGone: 'lost' });

  expect((await restart(invoice.externalId)).statusCode).toBe(202);
  await untilStage(workflowId, 'Paused');
  expect(await caseRow(workflowId)).toMatchObject({ workflowGone: null, workflowGoneSince: null });
  // Listed no more as gone; as restarted, until resumed.
  expect(await listed()).toMatchObject({ kind: 'restarted_paused', action: 'resume' });
  expect(await caseRow(workflowId)).toMatchObject({ stage: 'Paused', pausedAfterRestart: true, pausedReason: expect.stringContaining('restarted after its workflow was lost') });
  // The next check finds it running, and leaves it unmarked.
  const checkedBefore = (await caseRow(workflowId)).workflowCheckedAt!;
  const next = await h.client.workflow.execute(overdueSweep, { taskQueue: h.taskQueue, workflowId: `sweep-${randomUUID()}`, args: [{ checkCases: 10_000 }] });
  expect(next.workflowsGone).not.toContain(invoice.externalId);
  const after = await caseRow(workflowId);
  expect(after.workflowCheckedAt!.getTime()).toBeGreaterThan(checkedBefore.getTime());
  expect(after.workflowGone).toBeNull();

  // Lost again while paused, weeks on: listed once, as gone (to restart), not also as waiting for a
  // resume or as paused too long.
  await h.db.db.update(collectionCases).set({ updatedAt: new Date(Date.now() - 15 * 86_400_000) }).where(eq(collectionCases.workflowId, workflowId));
  await lose(workflowId);
  expect((await h.client.workflow.execute(overdueSweep, { taskQueue: h.taskQueue, workflowId: `sweep-${randomUUID()}`, args: [{ checkCases: 10_000 }] })).workflowsGone).toContain(invoice.externalId);
  const list = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
  expect((list.json() as { cases: { workflowId: string; kind: string }[] }).cases.filter((c) => c.workflowId === workflowId)).toEqual([
    expect.objectContaining({ kind: 'workflow_missing', action: 'restart' }),
  ]);
});
