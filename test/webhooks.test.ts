// Payment webhooks end to end: signed HTTP deliveries into the real app, a real database and
// the real Temporal dev server, as a processor or a bank would send them.
import { and, eq } from 'drizzle-orm';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiSettingsFromConfig, buildApp } from '../api/app';
import { signedHeaders } from '../api/webhook-signatures';
import { loadConfig } from '../config';
import { collectionCases, invoices, payments, webhookEvents } from '../db/schema';
import { caseStatusQuery } from '../workflows/messages';
import { invoicePayload } from './support/fixtures';
import { startDevServerHarness, webhookSecrets } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
});

afterAll(async () => {
  await h?.stop();
});

let sequence = 0;
const eventId = (label: string) => `evt_${label}_${Date.now()}_${sequence++}`;

function paymentEvent(invoiceExternalId: string, amountMinor: number, overrides: Record<string, unknown> = {}) {
  return { id: eventId('pay'), type: 'payment.succeeded', data: { invoiceExternalId, amountMinor, currency: 'EUR', ...overrides } };
}

/** A delivery signed the way the README tells a sender to sign it. */
function signedDelivery(body: unknown, options: { secret?: string; timestamp?: number; source?: string } = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    method: 'POST' as const,
    url: `/webhooks/${options.source ?? 'bank'}`,
    headers: signedHeaders(options.secret ?? webhookSecrets.bank, raw, timestamp),
    payload: raw,
  };
}

async function registerOverdue(amountTotalMinor = 125_000) {
  const payload = invoicePayload({ amountTotalMinor });
  const response = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  expect(response.statusCode, response.body).toBe(201);
  return payload.externalId;
}

async function caseOf(externalId: string) {
  const [row] = await h.db.db
    .select({ caseRow: collectionCases })
    .from(collectionCases)
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .where(eq(invoices.externalId, externalId));
  return row!.caseRow;
}

async function paymentsOf(externalId: string) {
  return h.db.db
    .select({ payment: payments })
    .from(payments)
    .innerJoin(invoices, eq(invoices.id, payments.invoiceId))
    .where(eq(invoices.externalId, externalId));
}

async function storedEvents(id: string) {
  return h.db.db.select().from(webhookEvents).where(eq(webhookEvents.eventId, id));
}

/** How the event was handled: the webhook answers once it is stored, and the dispatcher applies it right after. */
async function outcome(response: Awaited<ReturnType<typeof h.app.inject>>) {
  expect(response.statusCode, response.body).toBe(200);
  const id: string = response.json().event.id;
  return until('the event to be handled', async () => {
    const event = (await h.app.inject({ method: 'GET', url: `/webhook-events/${id}`, headers: h.auth('viewer') })).json();
    return event.status !== 'received' && event;
  });
}

async function liveStatus(externalId: string) {
  return h.client.workflow.getHandle((await caseOf(externalId)).workflowId).query(caseStatusQuery);
}

describe('generic signed payment webhook', () => {
  it('stores the event, records the payment and closes the case as paid', async () => {
    const externalId = await registerOverdue();
    const event = paymentEvent(externalId, 125_000, { paymentId: 'bank-tx-1' });
    const response = await h.app.inject(signedDelivery(event));
    expect(response.statusCode, response.body).toBe(200);
    // Answered as soon as it is stored; applied right after.
    expect(response.json()).toMatchObject({ duplicate: false, event: { status: 'received', eventId: event.id, invoiceExternalId: externalId } });
    expect(await outcome(response)).toMatchObject({ status: 'applied', attempts: 0 });

    const closed = await until('the case to close', async () => {
      const row = await caseOf(externalId);
      return row.stage === 'Closed' && row;
    });
    expect(closed.outcome).toBe('paid');
    const [recorded] = await paymentsOf(externalId);
    expect(recorded!.payment).toMatchObject({ provider: 'bank', providerEventId: 'bank-tx-1', amountMinor: 125_000, recordedBy: 'webhook:bank' });

    // The processor redelivers: 200, nothing new.
    const again = await h.app.inject(signedDelivery(event));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true, event: { status: 'applied' } });
    expect(await paymentsOf(externalId)).toHaveLength(1);

    // Money after the case closed (its workflow has ended): recorded, and flagged for a person.
    const handle = h.client.workflow.getHandle(closed.workflowId);
    await until('the workflow to complete', async () => (await handle.describe()).status.name === 'COMPLETED');
    const late = await h.app.inject(signedDelivery(paymentEvent(externalId, 5_000)));
    const lateOutcome = await outcome(late);
    expect(lateOutcome).toMatchObject({ status: 'unapplied' });
    expect(lateOutcome.detail).toContain('already closed');
    expect(await paymentsOf(externalId)).toHaveLength(2);
    const flagged = await h.app.inject({ method: 'GET', url: '/webhook-events?status=unapplied', headers: h.auth('collector') });
    expect(flagged.json().events.map((e: { eventId: string }) => e.eventId)).toContain(late.json().event.eventId);
  });

  it('counts ten concurrent deliveries of one event as one payment', async () => {
    const externalId = await registerOverdue(125_000);
    const delivery = signedDelivery(paymentEvent(externalId, 40_000));
    const responses = await Promise.all(Array.from({ length: 10 }, () => h.app.inject(delivery)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(10).fill(200));
    expect(responses.filter((r) => r.json().duplicate === false)).toHaveLength(1);

    await until('the case to count the payment', async () => (await liveStatus(externalId)).amountOutstandingMinor === 85_000);
    expect(await paymentsOf(externalId)).toHaveLength(1);
    // The rest arrives: it closes exactly, with nothing overpaid; ten counted payments would have overpaid it long ago.
    expect((await h.app.inject(signedDelivery(paymentEvent(externalId, 85_000)))).statusCode).toBe(200);
    const status = await until('the case to close', async () => {
      const live = await liveStatus(externalId);
      return live.stage === 'Closed' && live;
    });
    expect(status).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0 });
  });

  it('stores a burst of deliveries, redeliveries among them, once each, and applies every payment once', async () => {
    const externalIds = await Promise.all(Array.from({ length: 4 }, () => registerOverdue(100_000)));
    const events = Array.from({ length: 40 }, (_, i) => paymentEvent(externalIds[i % 4]!, 1_000));
    // Every event twice and a few three times, shuffled, all at once: concurrent deliveries are
    // written together, so redeliveries meet their originals in the same statement.
    const deliveries = [...events, ...events, ...events.slice(0, 8)].map((e) => signedDelivery(e)).sort(() => Math.random() - 0.5);
    const responses = await Promise.all(deliveries.map((d) => h.app.inject(d)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(deliveries.length).fill(200));
    for (const event of events) {
      const answers = responses.filter((r) => r.json().event.eventId === event.id);
      expect(answers.filter((r) => r.json().duplicate === false), event.id).toHaveLength(1);
      expect(await storedEvents(event.id)).toHaveLength(1);
    }
    for (const externalId of externalIds) {
      await until('the case to count its ten payments', async () => (await liveStatus(externalId)).amountOutstandingMinor === 90_000);
      expect(await paymentsOf(externalId)).toHaveLength(10);
    }
  });

  it('keeps a signed event with a NUL character, which PostgreSQL cannot store, by replacing it, and applies its payment', async () => {
    const externalId = await registerOverdue(100_000);
    const event = paymentEvent(externalId, 1_000, { note: 'nul \u0000 here' });
    const delivery = signedDelivery(event);
    expect(delivery.payload).toContain('\\u0000');
    const handled = await outcome(await h.app.inject(delivery));
    expect(handled.status).toBe('applied');
    const [stored] = await storedEvents(event.id);
    expect((stored!.payload as { data: { note: string } }).data.note).toBe('nul \ufffd here');
    await until('the case to count the payment', async () => (await liveStatus(externalId)).amountOutstandingMinor === 99_000);
  });

  it('refuses a NUL character elsewhere with 400 naming the field, after authentication, and stores nothing', async () => {
    const payload = invoicePayload();
    payload.customer.name = 'Muster \u0000 GmbH';
    const unsigned = await h.app.inject({ method: 'POST', url: '/invoices', payload });
    expect(unsigned.statusCode).toBe(401);
    const refused = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    expect(refused.statusCode, refused.body).toBe(400);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.json().errors).toEqual([{ path: 'body.customer.name', message: expect.stringContaining('NUL') }]);
    expect(await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId))).toHaveLength(0);
  });

  it('applies partial payments in whatever order they arrive', async () => {
    const externalId = await registerOverdue(100_000);
    const later = paymentEvent(externalId, 70_000, { receivedAt: '2026-11-20T10:00:00Z' });
    const earlier = paymentEvent(externalId, 30_000, { receivedAt: '2026-11-18T10:00:00Z' });
    expect((await h.app.inject(signedDelivery(later))).statusCode).toBe(200);
    expect((await h.app.inject(signedDelivery(earlier))).statusCode).toBe(200);
    const closed = await until('the case to close', async () => (await caseOf(externalId)).stage === 'Closed' && (await caseOf(externalId)));
    expect(closed.outcome).toBe('paid');
    const recorded = (await paymentsOf(externalId)).map((r) => [r.payment.amountMinor, r.payment.receivedAt.toISOString()]);
    expect(recorded).toEqual(
      expect.arrayContaining([
        [70_000, '2026-11-20T10:00:00.000Z'],
        [30_000, '2026-11-18T10:00:00.000Z'],
      ]),
    );
  });

  it('keeps money for an unknown invoice as unmatched until a collector matches it', async () => {
    const event = paymentEvent('INV-NOT-YET-KNOWN', 125_000);
    const response = await h.app.inject(signedDelivery(event));
    expect(await outcome(response)).toMatchObject({ status: 'unmatched', detail: 'No invoice with external id INV-NOT-YET-KNOWN.' });

    const listed = await h.app.inject({ method: 'GET', url: '/webhook-events?status=unmatched&source=bank', headers: h.auth('viewer') });
    expect(listed.statusCode).toBe(200);
    const unmatched = listed.json().events.find((e: { eventId: string }) => e.eventId === event.id);
    expect(unmatched).toMatchObject({ amountMinor: 125_000, currency: 'EUR' });

    // The bank reference had a typo: the collector names the right invoice.
    const externalId = await registerOverdue(125_000);
    const viewerTries = await h.app.inject({
      method: 'POST',
      url: `/webhook-events/${unmatched.id}/match`,
      headers: h.auth('viewer'),
      payload: { invoiceExternalId: externalId },
    });
    expect(viewerTries.statusCode).toBe(403);
    const matched = await h.app.inject({
      method: 'POST',
      url: `/webhook-events/${unmatched.id}/match`,
      headers: h.auth('collector'),
      payload: { invoiceExternalId: externalId },
    });
    expect(matched.statusCode, matched.body).toBe(200);
    expect(matched.json()).toMatchObject({ status: 'applied', invoiceExternalId: externalId });
    await until('the case to close', async () => (await caseOf(externalId)).outcome === 'paid');

    const twice = await h.app.inject({
      method: 'POST',
      url: `/webhook-events/${unmatched.id}/match`,
      headers: h.auth('collector'),
      payload: { invoiceExternalId: externalId },
    });
    expect(twice.statusCode).toBe(409);
    expect(twice.json().type).toBe('urn:arrears:problem:webhook-event-not-unmatched');
    expect(await paymentsOf(externalId)).toHaveLength(1);
  });

  it('applies money that arrived before its invoice as soon as the invoice is registered', async () => {
    const invoice = invoicePayload({ amountTotalMinor: 90_000 });
    const early = await h.app.inject(signedDelivery(paymentEvent(invoice.externalId, 50_000)));
    expect(await outcome(early)).toMatchObject({ status: 'unmatched' });

    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
    const [stored] = await storedEvents(early.json().event.eventId);
    expect(stored).toMatchObject({ status: 'applied' });
    await until('the case to count it', async () => (await liveStatus(invoice.externalId)).amountOutstandingMinor === 40_000);
    expect(await paymentsOf(invoice.externalId)).toHaveLength(1);
  });

  it('keeps money in another currency as unmatched, and stores other event types as ignored', async () => {
    const externalId = await registerOverdue();
    const dollars = await h.app.inject(signedDelivery(paymentEvent(externalId, 125_000, { currency: 'USD' })));
    const dollarsOutcome = await outcome(dollars);
    expect(dollarsOutcome).toMatchObject({ status: 'unmatched' });
    expect(dollarsOutcome.detail).toContain('is in EUR; the payment is in USD');

    const refund = await h.app.inject(signedDelivery({ id: eventId('refund'), type: 'payment.refunded', data: {} }));
    expect(refund.statusCode).toBe(200);
    expect(refund.json().event).toMatchObject({ status: 'ignored' });
    expect(await paymentsOf(externalId)).toHaveLength(0);
  });

  it('refuses unsigned, wrongly signed, stale and unknown-source deliveries, and stores none of them', async () => {
    const externalId = await registerOverdue();
    const event = paymentEvent(externalId, 125_000);
    const cases = [
      { name: 'no signature', request: { ...signedDelivery(event), headers: { 'content-type': 'application/json' } }, status: 401, type: 'webhook-signature-missing' },
      { name: 'wrong secret', request: signedDelivery(event, { secret: 'not-the-secret-at-all' }), status: 401, type: 'webhook-signature-invalid' },
      { name: 'stale', request: signedDelivery(event, { timestamp: Math.floor(Date.now() / 1000) - 301 }), status: 401, type: 'webhook-timestamp-stale' },
      { name: 'unknown source', request: signedDelivery(event, { source: 'elsewhere' }), status: 404, type: 'webhook-source-unknown' },
    ];
    for (const c of cases) {
      const response = await h.app.inject(c.request);
      expect(response.statusCode, c.name).toBe(c.status);
      expect(response.headers['content-type'], c.name).toContain('application/problem+json');
      expect(response.json().type, c.name).toBe(`urn:arrears:problem:${c.type}`);
    }
    // A body changed after signing fails too.
    const tampered = signedDelivery(event);
    tampered.payload = tampered.payload.replace('125000', '1');
    expect((await h.app.inject(tampered)).statusCode).toBe(401);
    expect(await storedEvents(event.id)).toHaveLength(0);
  });

  it('keeps signed but invalid events as invalid and answers 400 saying what is wrong', async () => {
    const externalId = await registerOverdue();
    const bad = [
      { body: paymentEvent(externalId, 12.5), path: 'body.data.amountMinor' },
      { body: paymentEvent(externalId, -100), path: 'body.data.amountMinor' },
      { body: paymentEvent(externalId, 100, { currency: 'EURO' }), path: 'body.data.currency' },
      { body: { type: 'payment.succeeded', data: { invoiceExternalId: externalId, amountMinor: 100, currency: 'EUR' } }, path: 'body.id' },
      { body: 'null', path: 'body' },
    ];
    for (const { body, path } of bad) {
      const response = await h.app.inject(signedDelivery(body));
      expect(response.statusCode, path).toBe(400);
      expect(response.json().errors.map((e: { path: string }) => e.path), path).toContain(path);
    }
    // Kept for a person to look at: the one without an id under its body's hash.
    const invalid = (await h.app.inject({ method: 'GET', url: '/webhook-events?status=invalid&source=bank', headers: h.auth('viewer') })).json();
    expect(invalid.total).toBe(5);
    expect(invalid.events.map((e: { eventId: string }) => e.eventId)).toEqual(expect.arrayContaining([(bad[0]!.body as { id: string }).id, expect.stringMatching(/^sha256:[0-9a-f]{64}$/)]));
    // A redelivery is refused the same way and stores nothing more.
    expect((await h.app.inject(signedDelivery(bad[0]!.body))).statusCode).toBe(400);
    expect((await h.app.inject({ method: 'GET', url: '/webhook-events?status=invalid&source=bank', headers: h.auth('viewer') })).json().total).toBe(5);
    // The sender fixes the amount and sends the event again under the same id: it is applied.
    const fixed = { ...(bad[0]!.body as { id: string; type: string; data: object }), data: { invoiceExternalId: externalId, amountMinor: 1250, currency: 'EUR' } };
    const resent = await h.app.inject(signedDelivery(fixed));
    expect(resent.json()).toMatchObject({ duplicate: false, event: { eventId: fixed.id, amountMinor: 1250 } });
    expect(await outcome(resent)).toMatchObject({ status: 'applied' });
    expect(await paymentsOf(externalId)).toHaveLength(1);
    const notJson = await h.app.inject(signedDelivery('{"id": '));
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().type).toBe('urn:arrears:problem:malformed-json');

    const huge = await h.app.inject(signedDelivery(paymentEvent(externalId, 100, { note: 'x'.repeat(300 * 1024) })));
    expect(huge.statusCode).toBe(413);
    expect(huge.headers['content-type']).toContain('application/problem+json');
    expect(huge.json().type).toBe('urn:arrears:problem:body-too-large');
    expect(await paymentsOf(externalId)).toHaveLength(1);
  });
});

describe('Stripe webhook', () => {
  function stripeDelivery(event: object, options: { secret?: string; timestamp?: number } = {}) {
    const payload = JSON.stringify(event);
    return {
      method: 'POST' as const,
      url: '/webhooks/stripe',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({
          payload,
          secret: options.secret ?? webhookSecrets.stripe,
          ...(options.timestamp ? { timestamp: options.timestamp } : {}),
        }),
      },
      payload,
    };
  }

  function stripeInvoiceEvent(type: string, invoice: { id: string; amount_paid: number; metadata?: Record<string, string>; payment_intent?: string }) {
    return {
      id: eventId('stripe'),
      object: 'event',
      type,
      created: Math.floor(Date.now() / 1000),
      data: { object: { object: 'invoice', currency: 'eur', status_transitions: { paid_at: 1795800000 }, metadata: {}, ...invoice } },
    };
  }

  it('applies invoice.paid matched by metadata, once even when the charge behind it names the invoice too', async () => {
    const externalId = await registerOverdue();
    const paymentIntent = `pi_${Date.now()}`;
    const stripeInvoice = { id: `in_${Date.now()}`, amount_paid: 125_000, metadata: { arrears_invoice_id: externalId }, payment_intent: paymentIntent };
    const paid = await h.app.inject(stripeDelivery(stripeInvoiceEvent('invoice.paid', stripeInvoice)));
    expect(await outcome(paid)).toMatchObject({ status: 'applied', source: 'stripe', invoiceExternalId: externalId });
    // invoice.payment_succeeded is the same money: stored, not counted (invoice.paid is the one).
    const succeeded = await h.app.inject(stripeDelivery(stripeInvoiceEvent('invoice.payment_succeeded', stripeInvoice)));
    expect(succeeded.json()).toMatchObject({ duplicate: false, event: { status: 'ignored' } });
    // The charge of the same PaymentIntent, with the metadata copied onto it: one payment still.
    const charge = await h.app.inject(
      stripeDelivery({
        id: eventId('stripe'),
        object: 'event',
        type: 'charge.succeeded',
        created: Math.floor(Date.now() / 1000),
        data: { object: { id: `ch_${sequence++}`, object: 'charge', amount: 125_000, amount_captured: 125_000, amount_refunded: 0, captured: true, currency: 'eur', created: 1795800000, payment_intent: paymentIntent, metadata: { arrears_invoice_id: externalId } } },
      }),
    );
    // Listed as a duplicate, not as money to refund.
    expect(await outcome(charge)).toMatchObject({ status: 'duplicate', detail: expect.stringContaining('counted once') });

    const recorded = await paymentsOf(externalId);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.payment).toMatchObject({ provider: 'stripe', providerEventId: paymentIntent, receivedAt: new Date(1795800000 * 1000) });
    await until('the case to close', async () => (await caseOf(externalId)).outcome === 'paid');
  });

  it('applies a Stripe invoice and its charge arriving together once: one applied, one duplicate', async () => {
    const externalId = await registerOverdue(60_000);
    const paymentIntent = `pi_pair_${Date.now()}`;
    const paid = stripeInvoiceEvent('invoice.paid', { id: `in_pair_${Date.now()}`, amount_paid: 60_000, metadata: { arrears_invoice_id: externalId }, payment_intent: paymentIntent });
    const charge = {
      id: eventId('stripe'),
      object: 'event',
      type: 'charge.succeeded',
      created: Math.floor(Date.now() / 1000),
      data: { object: { id: `ch_${sequence++}`, object: 'charge', amount: 60_000, amount_captured: 60_000, amount_refunded: 0, captured: true, currency: 'eur', created: 1795800000, payment_intent: paymentIntent, metadata: { arrears_invoice_id: externalId } } },
    };
    const responses = await Promise.all([h.app.inject(stripeDelivery(paid)), h.app.inject(stripeDelivery(charge))]);
    const outcomes = await Promise.all(responses.map(outcome));
    expect(outcomes.map((o) => o.status).sort()).toEqual(['applied', 'duplicate']);
    // The duplicate names the event that recorded the money.
    const [applied, duplicate] = outcomes[0]!.status === 'applied' ? outcomes : [outcomes[1]!, outcomes[0]!];
    expect(duplicate.detail).toContain(applied.eventId);
    const status = await until('the case to close', async () => {
      const live = await liveStatus(externalId);
      return live.stage === 'Closed' && live;
    });
    expect(status).toMatchObject({ outcome: 'paid', overpaidMinor: 0 });
    const unapplied = (await h.app.inject({ method: 'GET', url: '/webhook-events?status=unapplied&source=stripe', headers: h.auth('viewer') })).json();
    expect(unapplied.events.filter((e: { invoiceExternalId: string }) => e.invoiceExternalId === externalId)).toHaveLength(0);
  });

  it("reads Stripe's two-decimal ISK amounts as whole krónur", async () => {
    const payload = invoicePayload({ currency: 'ISK', amountTotalMinor: 50_000 });
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const event = stripeInvoiceEvent('invoice.paid', { id: `in_isk_${Date.now()}`, amount_paid: 2_000_000, metadata: { arrears_invoice_id: payload.externalId } });
    (event.data.object as { currency: string }).currency = 'isk';
    const response = await h.app.inject(stripeDelivery(event));
    expect(await outcome(response)).toMatchObject({ status: 'applied', amountMinor: 20_000, currency: 'ISK' });
    await until('the case to count it', async () => (await liveStatus(payload.externalId)).amountOutstandingMinor === 30_000);
  });

  it('matches a Stripe invoice by its own id, applies a charge with metadata, ignores a charge without', async () => {
    const stripeId = `in_${Date.now()}x`;
    const payload = invoicePayload({ externalId: stripeId });
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const byId = await h.app.inject(stripeDelivery(stripeInvoiceEvent('invoice.paid', { id: stripeId, amount_paid: 25_000 })));
    expect(await outcome(byId)).toMatchObject({ status: 'applied', invoiceExternalId: stripeId, amountMinor: 25_000 });

    const charge = (metadata: Record<string, string>) => ({
      id: eventId('stripe'),
      object: 'event',
      type: 'charge.succeeded',
      created: Math.floor(Date.now() / 1000),
      data: { object: { id: `ch_${sequence++}`, object: 'charge', amount: 100_000, amount_captured: 100_000, amount_refunded: 0, captured: true, currency: 'eur', created: 1795800000, metadata } },
    });
    const withMetadata = await h.app.inject(stripeDelivery(charge({ arrears_invoice_id: stripeId })));
    expect(await outcome(withMetadata)).toMatchObject({ status: 'applied', amountMinor: 100_000 });
    const without = await h.app.inject(stripeDelivery(charge({})));
    expect(without.json().event).toMatchObject({ status: 'ignored' });
    await until('the case to close', async () => (await caseOf(stripeId)).outcome === 'paid');
    expect(await paymentsOf(stripeId)).toHaveLength(2);
  });

  it('refuses a wrong Stripe signature and a stale one', async () => {
    const event = stripeInvoiceEvent('invoice.paid', { id: 'in_refused', amount_paid: 100 });
    const wrong = await h.app.inject(stripeDelivery(event, { secret: 'whsec_wrong' }));
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().type).toBe('urn:arrears:problem:webhook-signature-invalid');
    const stale = await h.app.inject(stripeDelivery(event, { timestamp: Math.floor(Date.now() / 1000) - 600 }));
    expect(stale.statusCode).toBe(401);
    expect(stale.json().type).toBe('urn:arrears:problem:webhook-timestamp-stale');
    expect(
      await h.db.db.select().from(webhookEvents).where(and(eq(webhookEvents.source, 'stripe'), eq(webhookEvents.eventId, event.id))),
    ).toHaveLength(0);
  });
});

describe('rate limits', () => {
  it('answers 429 problem+json past the per-minute limit, per client address, counting bad keys too', async () => {
    const app = await buildApp({
      db: h.db,
      temporal: h.client,
      taskQueue: h.taskQueue,
      temporalUiUrl: 'http://localhost:8233',
      settings: { ...apiSettingsFromConfig(loadConfig({})), rateLimitPerMinute: 3 },
    });
    try {
      const from = (remoteAddress: string, authorization: string) => app.inject({ method: 'GET', url: '/cases', headers: { authorization }, remoteAddress });
      const viewer = `Bearer ${h.keys.viewer}`;
      const statuses = [
        (await from('10.0.0.1', viewer)).statusCode,
        (await from('10.0.0.1', 'Bearer arr_guess-1')).statusCode,
        (await from('10.0.0.1', 'Bearer arr_guess-2')).statusCode,
        (await from('10.0.0.1', 'Bearer arr_guess-3')).statusCode,
      ];
      expect(statuses).toEqual([200, 401, 401, 429]);
      const limited = await from('10.0.0.1', viewer);
      expect(limited.statusCode).toBe(429);
      expect(limited.headers['content-type']).toContain('application/problem+json');
      expect(limited.headers['retry-after']).toBeDefined();
      expect(limited.json().type).toBe('urn:arrears:problem:rate-limited');
      // Another client has its own allowance.
      expect((await from('10.0.0.2', viewer)).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
