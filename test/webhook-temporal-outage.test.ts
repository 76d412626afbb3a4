// A payment webhook while Temporal is unreachable: the event is stored and answered 200, the
// failed attempt is recorded (and shown on the stuck list), and another API process applies
// the payment once when its retry time comes. A payment recorded by hand meanwhile is queued
// the same way. Real database, real Temporal dev server.
import { eq, sql } from 'drizzle-orm';
import { temporalOutageRetrySeconds } from '../api/payment-service';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { payments, webhookEvents } from '../db/schema';
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
  const other = await h.anotherApp();
  try {
    await other.ready();
    await until('the event to be applied', async () => (await storedEvent(h.db.db, event.id))?.status === 'applied');
  } finally {
    await other.close();
  }
  await expectPaidOnce(h, invoice.externalId);
});

it('queues a payment a collector records while Temporal is unreachable, and applies it once Temporal is back', async () => {
  const invoice = invoicePayload();
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const payment = { reference: `BANK-TX-${Date.now()}`, amountMinor: invoice.amountTotalMinor, currency: 'EUR' };
  const record = (app: typeof h.app) =>
    app.inject({ method: 'POST', url: `/invoices/${invoice.externalId}/payments`, headers: h.auth('collector'), payload: payment });

  // Stored and queued, not refused: the collector need not remember to send it again.
  const cutOff = await h.appWithoutTemporal();
  const queued = await record(cutOff);
  expect(queued.statusCode, queued.body).toBe(202);
  expect(queued.json()).toMatchObject({ delivery: 'queued', queuedEvent: expect.any(String), payment: { provider: 'manual', providerEventId: payment.reference } });
  // Sent again anyway: the same queued delivery, and still one payment.
  const again = await record(cutOff);
  expect(again.statusCode, again.body).toBe(202);
  expect(again.json().queuedEvent).toBe(queued.json().queuedEvent);
  await cutOff.close();

  const shown = await h.app.inject({ url: `/webhook-events/${queued.json().queuedEvent}`, headers: h.auth('viewer') });
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
  const other = await h.anotherApp();
  try {
    await other.ready();
    await until('the queued payment to be applied', async () => (await storedEvent(h.db.db, payment.reference))?.status === 'applied');
  } finally {
    await other.close();
  }
  await expectPaidOnce(h, invoice.externalId);
  const recorded = await h.db.db.select().from(payments).where(eq(payments.providerEventId, payment.reference));
  expect(recorded).toHaveLength(1);
});
