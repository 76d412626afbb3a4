// A payment webhook while Temporal is unreachable: the event is stored and answered 200, the
// failed attempt is recorded (and shown on the stuck list), and another API process applies
// the payment once when its retry time comes. A payment recorded by hand, a credit note or a
// case command meanwhile is queued the same way. Real database, real Temporal dev server.
import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { temporalOutageRetrySeconds } from '../api/outbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, commandOutbox, invoiceAdjustments, invoices, payments, webhookEvents } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery } from '../workflows/messages';
import { expectPaidOnce, signedBankDelivery, storedEvent } from './support/bank-payments';
import { invoicePayload } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  // This API applies what it stores itself but never polls: the test decides when another process does.
  h = await startDevServerHarness({ paymentDispatch: { pollIntervalMs: 24 * 3_600_000 } });
});

afterAll(async () => {
  await h?.stop();
});

it('answers 200 while Temporal is unreachable, and another API process applies the payment once Temporal is back', async () => {
  const invoice = invoicePayload();
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const event = { id: `evt_temporal_down_${Date.now()}`, type: 'payment.succeeded', data: { invoiceExternalId: invoice.externalId, amountMinor: 125_000, currency: 'EUR' } };

  // An API process whose Temporal connection is gone takes the webhook.
  const cutOff = await h.appWithoutTemporal();
  const during = await cutOff.inject(signedBankDelivery(event));
  expect(during.statusCode, during.body).toBe(200);
  expect(during.json()).toMatchObject({ duplicate: false, event: { status: 'received' } });
  // Its dispatcher tries, fails, and leaves the event for a retry, saying why.
  const failed = await until('the first attempt to fail', async () => {
    const row = await storedEvent(h.db.db, event.id);
    return row && row.attempts > 0 && row;
  });
  expect(failed).toMatchObject({ status: 'received', lastError: expect.any(String), claimToken: null });
  // However long the outage has lasted (8 failed attempts: 4 minutes of backoff), the next
  // attempt is at most 10 s away, so the payment is applied soon after Temporal is back.
  await h.db.db.update(webhookEvents).set({ attempts: 8, nextAttemptAt: new Date() }).where(eq(webhookEvents.id, failed.id));
  const ninth = await until('the ninth attempt to fail', async () => {
    const row = await storedEvent(h.db.db, event.id);
    return row && row.attempts === 9 && row.claimToken === null && row;
  });
  const [next] = await h.db.db
    .select({ inSeconds: sql<string>`extract(epoch from ${webhookEvents.nextAttemptAt} - now())` })
    .from(webhookEvents)
    .where(eq(webhookEvents.id, ninth.id));
  expect(Number(next!.inSeconds)).toBeLessThanOrEqual(temporalOutageRetrySeconds);
  await cutOff.close();

  // Had it kept failing for over 5 minutes, operations would see it (the harness API never polls).
  await h.db.db.update(webhookEvents).set({ receivedAt: new Date(Date.now() - 6 * 60_000) }).where(eq(webhookEvents.id, failed.id));
  const stuckList = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
  expect(stuckList.statusCode, stuckList.body).toBe(200);
  const stuck = stuckList.json();
  expect(stuck.cases).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ kind: 'payment_unfinished', webhookEventId: failed.id, reason: expect.stringContaining('retried automatically') }),
    ]),
  );

  // Another API process, with Temporal reachable, picks it up when its retry time comes: once.
  await inAnotherApiProcess('the event to be applied', async () => (await storedEvent(h.db.db, event.id))?.status === 'applied');
  await expectPaidOnce(h, invoice.externalId);
});

/** Another API process, with Temporal reachable, runs (its dispatchers polling) until `what` holds. */
async function inAnotherApiProcess(what: string, done: () => Promise<unknown>): Promise<void> {
  const other = await h.anotherApp();
  try {
    await other.ready();
    await until(what, done);
  } finally {
    await other.close();
  }
}

/** A collector's payment for `invoice`, as the API takes it; `record(app)` sends it. */
function manualPayment(invoice: { externalId: string }, amountMinor: number) {
  const payment = { reference: `BANK-TX-${randomUUID()}`, amountMinor, currency: 'EUR' };
  const record = (app: typeof h.app) =>
    app.inject({ method: 'POST', url: `/invoices/${invoice.externalId}/payments`, headers: h.auth('collector'), payload: payment });
  return { payment, record };
}

async function registered() {
  const invoice = invoicePayload();
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  return invoice;
}

it('queues a payment a collector records while Temporal is unreachable, and applies it once Temporal is back', async () => {
  const invoice = await registered();
  const { payment, record } = manualPayment(invoice, invoice.amountTotalMinor);

  // Stored and queued, not refused: the collector need not remember to send it again.
  const cutOff = await h.appWithoutTemporal();
  const queued = await record(cutOff);
  expect(queued.statusCode, queued.body).toBe(202);
  expect(queued.json()).toMatchObject({ delivery: 'queued', deliveryEvent: expect.any(String), payment: { provider: 'manual', providerEventId: payment.reference } });
  // Sent again anyway: the same queued delivery, and still one payment.
  const again = await record(cutOff);
  expect(again.statusCode, again.body).toBe(202);
  expect(again.json().deliveryEvent).toBe(queued.json().deliveryEvent);
  await cutOff.close();

  const shown = await h.app.inject({ url: `/webhook-events/${queued.json().deliveryEvent}`, headers: h.auth('viewer') });
  expect(shown.json()).toMatchObject({
    source: 'manual',
    eventId: payment.reference,
    status: 'received',
    invoiceExternalId: invoice.externalId,
    amountMinor: payment.amountMinor,
    attempts: expect.any(Number),
    lastError: expect.any(String),
  });

  // Any API process with Temporal delivers it when its retry time comes: once.
  await inAnotherApiProcess('the queued payment to be applied', async () => (await storedEvent(h.db.db, payment.reference))?.status === 'applied');
  await expectPaidOnce(h, invoice.externalId);
  const recorded = await h.db.db.select().from(payments).where(eq(payments.providerEventId, payment.reference));
  expect(recorded).toHaveLength(1);
});

it('applies a queued payment at once when it is sent again with Temporal back', async () => {
  const invoice = await registered();
  const { payment, record } = manualPayment(invoice, invoice.amountTotalMinor);
  const cutOff = await h.appWithoutTemporal();
  expect((await record(cutOff)).statusCode).toBe(202);
  await cutOff.close();
  // This API never polls: only the request itself can apply it now.
  const resent = await record(h.app);
  expect(resent.statusCode, resent.body).toBe(200);
  expect(resent.json()).toMatchObject({ delivery: 'applied' });
  expect(await storedEvent(h.db.db, payment.reference)).toMatchObject({ status: 'applied' });
  await expectPaidOnce(h, invoice.externalId);
});

it('answers a payment applied before and sent again during an outage from its record, without flagging it', async () => {
  const invoice = await registered();
  const { payment, record } = manualPayment(invoice, invoice.amountTotalMinor);
  const first = await record(h.app);
  expect(first.statusCode, first.body).toBe(201);
  expect(first.json()).toMatchObject({ delivery: 'applied' });
  await expectPaidOnce(h, invoice.externalId);

  const cutOff = await h.appWithoutTemporal();
  const resent = await record(cutOff);
  await cutOff.close();
  expect(resent.statusCode, resent.body).toBe(200);
  expect(resent.json()).toMatchObject({ delivery: 'applied', deliveryEvent: first.json().deliveryEvent });
  expect(await storedEvent(h.db.db, payment.reference)).toMatchObject({ status: 'applied' });
  expect(await unappliedFlags(invoice.externalId)).toEqual([]);
});

it('flags a queued payment for reconciliation when the case closed before it was delivered', async () => {
  const invoice = await registered();
  const late = manualPayment(invoice, 40_000);
  const cutOff = await h.appWithoutTemporal();
  expect((await late.record(cutOff)).statusCode).toBe(202);
  await cutOff.close();
  // The customer also paid in full, and that arrived first: the case closes as paid.
  expect((await manualPayment(invoice, invoice.amountTotalMinor).record(h.app)).statusCode).toBe(201);
  await expectPaidOnce(h, invoice.externalId);

  await inAnotherApiProcess('the queued payment to be settled', async () => (await storedEvent(h.db.db, late.payment.reference))?.status === 'unapplied');
  expect((await storedEvent(h.db.db, late.payment.reference))?.detail).toContain('refund or allocate');
  expect(await unappliedFlags(invoice.externalId)).toEqual([expect.objectContaining({ reference: late.payment.reference, amountMinor: 40_000, reason: 'case_closed' })]);
});

it('knows a payment as applied when its delivery reached the case but the answer was lost, and it is sent again after the case closed', async () => {
  const invoice = await registered();
  const event = { id: `evt_answer_lost_${Date.now()}`, type: 'payment.succeeded', data: { invoiceExternalId: invoice.externalId, amountMinor: 125_000, currency: 'EUR' } };
  expect((await h.app.inject(signedBankDelivery(event))).statusCode).toBe(200);
  await until('the payment applied', async () => (await storedEvent(h.db.db, event.id))?.status === 'applied');
  await expectPaidOnce(h, invoice.externalId);
  // As if the signal had reached Temporal but its answer had not come back in time: the
  // delivery is still waiting, and a dispatcher delivers it again.
  await h.db.db.update(webhookEvents).set({ status: 'received', nextAttemptAt: new Date() }).where(eq(webhookEvents.eventId, event.id));
  await inAnotherApiProcess('the delivery settled', async () => (await storedEvent(h.db.db, event.id))?.status !== 'received');
  // The case closed counting it: applied, not money for a closed case.
  expect(await storedEvent(h.db.db, event.id)).toMatchObject({ status: 'applied' });
  expect(await unappliedFlags(invoice.externalId)).toEqual([]);
});

/** The payment.unapplied audit events of an invoice: money reconciliation must refund or allocate. */
async function unappliedFlags(externalId: string) {
  const rows = await h.db.db
    .select({ data: auditEvents.data })
    .from(auditEvents)
    .innerJoin(invoices, eq(invoices.id, auditEvents.invoiceId))
    .where(and(eq(invoices.externalId, externalId), eq(auditEvents.type, 'payment.unapplied')));
  return rows.map((row) => row.data);
}

describe('credit notes and cancellations while Temporal is unreachable', () => {
  const adjust = (app: typeof h.app, externalId: string, what: 'credit-notes' | 'cancellation', payload: object) =>
    app.inject({ method: 'POST', url: `/invoices/${externalId}/${what}`, headers: h.auth('collector'), payload });
  const storedAdjustment = async (adjustmentId: string) =>
    (await h.db.db.select().from(invoiceAdjustments).where(eq(invoiceAdjustments.adjustmentId, adjustmentId)))[0];

  it('queues a credit note, shows it on the stuck list, and another API process forwards it once Temporal is back', async () => {
    const invoice = await registered();
    const note = { adjustmentId: `CN-${randomUUID()}`, amountMinor: 25_000, currency: 'EUR', reason: 'one pallet short' };
    const cutOff = await h.appWithoutTemporal();
    const queued = await adjust(cutOff, invoice.externalId, 'credit-notes', note);
    await cutOff.close();
    expect(queued.statusCode, queued.body).toBe(202);
    expect(queued.json()).toMatchObject({ delivery: 'queued', adjustment: { adjustmentId: note.adjustmentId } });
    const waiting = await storedAdjustment(note.adjustmentId);
    expect(waiting).toMatchObject({ forwardedAt: null, attempts: 1, lastError: expect.any(String), claimToken: null });

    // Still not forwarded after 5 minutes: operations see it, and that it is being retried.
    await h.db.db.update(invoiceAdjustments).set({ createdAt: new Date(Date.now() - 6 * 60_000) }).where(eq(invoiceAdjustments.id, waiting!.id));
    const stuck = (await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') })).json();
    expect(stuck.cases).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'adjustment_unfinished', invoiceExternalId: invoice.externalId, reason: expect.stringContaining('retried automatically') }),
      ]),
    );

    await inAnotherApiProcess('the credit note forwarded', async () => (await storedAdjustment(note.adjustmentId))?.forwardedAt);
    expect(await storedAdjustment(note.adjustmentId)).toMatchObject({ nextAttemptAt: null, claimToken: null });
    // Forwarded is in the case's history; the case may act on it in a later workflow task.
    const caseStatus = () => h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)).query(caseStatusQuery);
    await until('the credit applied', async () => (await caseStatus()).amountOutstandingMinor === invoice.amountTotalMinor - 25_000);
  });

  it('forwards a queued cancellation at once when it is sent again with Temporal back, and the case closes', async () => {
    const invoice = await registered();
    const cancellation = { adjustmentId: `CANCEL-${randomUUID()}`, reason: 'issued to the wrong customer' };
    const cutOff = await h.appWithoutTemporal();
    expect((await adjust(cutOff, invoice.externalId, 'cancellation', cancellation)).statusCode).toBe(202);
    await cutOff.close();
    // This API never polls: only the request itself can forward it now.
    const again = await adjust(h.app, invoice.externalId, 'cancellation', cancellation);
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json()).toMatchObject({ delivery: 'applied' });
    expect((await storedAdjustment(cancellation.adjustmentId))?.forwardedAt).toBeInstanceOf(Date);
    expect(await h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)).result()).toMatchObject({ outcome: 'cancelled' });
  });
});

describe('case commands while Temporal is unreachable', () => {
  const send = (app: typeof h.app, externalId: string, name: string, payload: object, key: string) =>
    app.inject({ method: 'POST', url: `/invoices/${externalId}/${name}`, headers: { ...h.auth('collector'), 'idempotency-key': key }, payload });
  const storedCommands = (externalId: string) =>
    h.db.db
      .select({ command: commandOutbox })
      .from(commandOutbox)
      .innerJoin(invoices, eq(invoices.id, commandOutbox.invoiceId))
      .where(eq(invoices.externalId, externalId))
      .orderBy(commandOutbox.createdAt)
      .then((rows) => rows.map((row) => row.command));
  const timelineTypes = async (externalId: string) =>
    ((await h.app.inject({ url: `/invoices/${externalId}`, headers: h.auth('viewer') })).json().timeline as { type: string }[])
      .map((event) => event.type)
      .filter((type) => type.startsWith('command.'));

  it('queues a pause and a resume, shows them on the case and the stuck list, and another API process delivers them once, in the order sent', async () => {
    const invoice = await registered();
    const cutOff = await h.appWithoutTemporal();
    const pause = await send(cutOff, invoice.externalId, 'pause', { reason: 'customer on the phone' }, `pause-${randomUUID()}`);
    expect(pause.statusCode, pause.body).toBe(202);
    expect(pause.json()).toMatchObject({ accepted: true, delivery: 'queued' });
    // Sent again with the same key: the same command, still one.
    const pauseKey = pause.json().messageId.replace(/^pause:/, '');
    expect((await send(cutOff, invoice.externalId, 'pause', { reason: 'customer on the phone' }, pauseKey)).json()).toMatchObject({ delivery: 'queued' });
    const resume = await send(cutOff, invoice.externalId, 'resume', { reason: 'call finished' }, `resume-${randomUUID()}`);
    expect(resume.json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();

    // Nothing reached the case; both wait, in order, on the invoice's page and its detail.
    const detail = (await h.app.inject({ url: `/invoices/${invoice.externalId}`, headers: h.auth('viewer') })).json();
    expect(detail.queuedCommands).toEqual([
      expect.objectContaining({ command: 'pause', requestedBy: expect.any(String), attempts: expect.any(Number) }),
      expect.objectContaining({ command: 'resume' }),
    ]);
    expect(await timelineTypes(invoice.externalId)).toEqual([]);
    const waiting = await storedCommands(invoice.externalId);
    expect(waiting.map((c) => [c.name, c.outcome])).toEqual([
      ['pause', null],
      ['resume', null],
    ]);
    expect(waiting[0]!.attempts).toBeGreaterThan(0);
    expect(waiting[0]!.lastError).toContain('Temporal could not be reached');

    // Still not delivered after 5 minutes: operations see both, and why.
    await h.db.db.update(commandOutbox).set({ createdAt: sql`${commandOutbox.createdAt} - interval '6 minutes'` }).where(eq(commandOutbox.invoiceId, waiting[0]!.invoiceId));
    const stuck = (await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') })).json();
    const listed = stuck.cases.filter((c: { kind: string; invoiceExternalId: string }) => c.kind === 'command_unfinished' && c.invoiceExternalId === invoice.externalId);
    expect(listed.map((c: { reason: string }) => c.reason)).toEqual([expect.stringContaining('retried automatically'), expect.stringContaining('resume')]);

    // The resume's retry falls due first: it must still wait for the pause.
    await h.db.db.update(commandOutbox).set({ nextAttemptAt: sql`now() - interval '1 minute'` }).where(eq(commandOutbox.id, waiting[1]!.id));
    await h.db.db.update(commandOutbox).set({ nextAttemptAt: sql`now()` }).where(eq(commandOutbox.id, waiting[0]!.id));
    await inAnotherApiProcess('both commands delivered', async () => (await storedCommands(invoice.externalId)).every((c) => c.outcome === 'applied'));
    // Paused, then resumed: had the resume overtaken the pause, the case would now be paused.
    const status = await h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)).query(caseStatusQuery);
    expect(status.stage).not.toBe('Paused');
    expect(await timelineTypes(invoice.externalId)).toEqual(['command.pause', 'command.resume']);
    // When each was sent, not only when it arrived.
    const timeline = (await h.app.inject({ url: `/invoices/${invoice.externalId}`, headers: h.auth('viewer') })).json().timeline as { type: string; data: { requestedAt?: string } }[];
    expect(timeline.find((e) => e.type === 'command.pause')!.data.requestedAt).toBe((await storedCommands(invoice.externalId))[0]!.createdAt.toISOString());
    const delivered = await storedCommands(invoice.externalId);
    expect(delivered.map((c) => c.deliveredAt!.getTime() >= c.createdAt.getTime() && c.nextAttemptAt === null)).toEqual([true, true]);
    const after = (await h.app.inject({ url: `/invoices/${invoice.externalId}`, headers: h.auth('viewer') })).json();
    expect(after.queuedCommands).toEqual([]);
  });

  it('delivers a queued command at once when it is sent again with Temporal back', async () => {
    const invoice = await registered();
    const key = `dispute-${randomUUID()}`;
    const cutOff = await h.appWithoutTemporal();
    expect((await send(cutOff, invoice.externalId, 'dispute', { reason: 'goods damaged' }, key)).json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    // This API never polls: only the request itself can deliver it now.
    const resent = await send(h.app, invoice.externalId, 'dispute', { reason: 'goods damaged' }, key);
    expect(resent.statusCode, resent.body).toBe(202);
    expect(resent.json()).toMatchObject({ delivery: 'applied', messageId: `dispute:${key}` });
    // The case has the dispute at once; it stops its ladder once the step in hand (if any) ends.
    const caseStatus = () => h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)).query(caseStatusQuery);
    expect(await caseStatus()).toMatchObject({ dispute: { reason: 'goods damaged' } });
    await until('the case disputed', async () => (await caseStatus()).stage === 'Disputed');
    expect(await timelineTypes(invoice.externalId)).toEqual(['command.dispute']);
    // The same key with another body is not the same command.
    const other = await send(h.app, invoice.externalId, 'dispute', { reason: 'wrong quantity' }, key);
    expect(other.statusCode, other.body).toBe(409);
    expect(other.json()).toMatchObject({ type: 'urn:arrears:problem:idempotency-conflict' });
  });

  it('lets an operator withdraw a queued command that holds back the case, and the later ones go on', async () => {
    const invoice = await registered();
    const disputeKey = `dispute-${randomUUID()}`;
    const cutOff = await h.appWithoutTemporal();
    expect((await send(cutOff, invoice.externalId, 'dispute', { reason: 'sent in error' }, disputeKey)).json()).toMatchObject({ delivery: 'queued' });
    expect((await send(cutOff, invoice.externalId, 'pause', { reason: 'customer on holiday' }, `pause-${randomUUID()}`)).json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    const [dispute] = await storedCommands(invoice.externalId);

    // Listed after 5 minutes with the way to drop it.
    await h.db.db.update(commandOutbox).set({ createdAt: sql`${commandOutbox.createdAt} - interval '6 minutes'` }).where(eq(commandOutbox.invoiceId, dispute!.invoiceId));
    const stuck = (await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') })).json();
    expect(stuck.cases).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'command_unfinished', action: 'withdraw', commandId: dispute!.id })]));

    const withdraw = (headers: Record<string, string>) =>
      h.app.inject({ method: 'POST', url: `/case-commands/${dispute!.id}/withdrawal`, headers, payload: { reason: 'the customer called back: no dispute' } });
    expect((await withdraw(h.auth('viewer'))).statusCode).toBe(403);
    const withdrawn = await withdraw(h.auth('collector'));
    expect(withdrawn.statusCode, withdrawn.body).toBe(200);
    // Withdrawn again (a form sent twice): the same answer, and one entry on the timeline.
    expect((await withdraw(h.auth('collector'))).statusCode).toBe(200);

    // The pause behind it goes on; the dispute never reaches the case.
    await inAnotherApiProcess('the pause delivered', async () => (await storedCommands(invoice.externalId))[1]?.outcome === 'applied');
    // Delivered is in the case's history; the case acts on it in its next workflow task.
    const caseStatus = () => h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId)).query(caseStatusQuery);
    await until('the case paused', async () => (await caseStatus()).stage === 'Paused');
    expect(await caseStatus()).toMatchObject({ stage: 'Paused', dispute: null });
    expect(await timelineTypes(invoice.externalId)).toEqual(['command.withdrawn', 'command.pause']);
    // A command its case has is no longer waiting: not withdrawn.
    const pause = (await storedCommands(invoice.externalId))[1]!;
    const late = await h.app.inject({ method: 'POST', url: `/case-commands/${pause.id}/withdrawal`, headers: h.auth('collector'), payload: { reason: 'too late' } });
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ type: 'urn:arrears:problem:command-settled' });
    // Sent again, it is not sent anew.
    const resent = await send(h.app, invoice.externalId, 'dispute', { reason: 'sent in error' }, disputeKey);
    expect(resent.statusCode, resent.body).toBe(409);
    expect(resent.json()).toMatchObject({ type: 'urn:arrears:problem:command-withdrawn' });
  });

  it('counts a payment the case received while a payment plan waited toward the plan, and does not ask for it again', async () => {
    const invoice = await registered();
    const half = invoice.amountTotalMinor / 2;
    const day = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString().slice(0, 10);
    const instalments = [
      { dueDate: day(30), amountMinor: half },
      { dueDate: day(60), amountMinor: half },
    ];
    const cutOff = await h.appWithoutTemporal();
    expect((await send(cutOff, invoice.externalId, 'payment-plan', { instalments }, `plan-${randomUUID()}`)).json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    // The first instalment, paid before the plan reached the case.
    expect((await manualPayment(invoice, half).record(h.app)).statusCode).toBe(201);
    const handle = h.client.workflow.getHandle(collectionWorkflowId(invoice.externalId));
    await until('the payment applied', async () => (await handle.query(caseStatusQuery)).amountOutstandingMinor === half);

    await inAnotherApiProcess('the plan delivered', async () => (await storedCommands(invoice.externalId)).every((c) => c.outcome === 'applied'));
    // The plan counts the payment as its first instalment: the case waits for the second.
    await until('the plan under way', async () => (await handle.query(caseStatusQuery)).paymentPlan?.nextInstalment === 1);
    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ stage: 'PaymentPlan', amountOutstandingMinor: half, nextAction: { kind: 'instalment 2 reminder' } });
  });

  it('tells whoever queued commands that their case closed before they arrived', async () => {
    const invoice = await registered();
    const key = `promise-${randomUUID()}`;
    const promise = { promisedDate: invoice.dueDate, amountMinor: invoice.amountTotalMinor };
    const cutOff = await h.appWithoutTemporal();
    expect((await send(cutOff, invoice.externalId, 'promise', promise, key)).json()).toMatchObject({ delivery: 'queued' });
    // Queued behind the promise, without an attempt of its own.
    expect((await send(cutOff, invoice.externalId, 'pause', { reason: 'waiting for the promise' }, `pause-${randomUUID()}`)).json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    // The customer paid in full meanwhile: the case closes as paid.
    expect((await manualPayment(invoice, invoice.amountTotalMinor).record(h.app)).statusCode).toBe(201);
    await expectPaidOnce(h, invoice.externalId);

    await inAnotherApiProcess('the queued commands settled', async () => (await storedCommands(invoice.externalId)).every((c) => c.outcome));
    expect(await storedCommands(invoice.externalId)).toEqual([
      expect.objectContaining({ name: 'promise', outcome: 'case_closed', nextAttemptAt: null }),
      expect.objectContaining({ name: 'pause', outcome: 'case_closed', nextAttemptAt: null }),
    ]);
    expect(await timelineTypes(invoice.externalId)).toEqual(['command.not_delivered', 'command.not_delivered']);
    // Sent again: the same answer as a command sent to a closed case.
    const resent = await send(h.app, invoice.externalId, 'promise', promise, key);
    expect(resent.statusCode, resent.body).toBe(409);
    expect(resent.json()).toMatchObject({ type: 'urn:arrears:problem:case-closed' });
  });
});
