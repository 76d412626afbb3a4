import { sql } from 'drizzle-orm';
import { bigint, char, index, integer, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { payments } from './payments';

/**
 * received: stored and answered, not yet applied: the payment dispatcher applies it;
 * applied: recorded as a payment and delivered to its case;
 * unapplied: recorded as a payment of its invoice, but the case was already closed (or never
 *   opened): flagged for reconciliation (refund or allocate);
 * unmatched: money for no known invoice (or in another currency), kept for reconciliation;
 * invalid: signed by the source but not a valid event (kept, answered 400);
 * ignored: an event type that carries no payment for us;
 * duplicate: the same money as another event (a Stripe invoice and its charge), counted there.
 */
/** The source of the rows that deliver payments recorded by hand; no webhook source may take this name. */
export const manualPaymentSource = 'manual';

export const webhookEventStatuses = ['received', 'applied', 'unapplied', 'unmatched', 'invalid', 'ignored', 'duplicate'] as const;

/**
 * The payment outbox. Every signed event a payment processor sends, stored once (source +
 * event id unique) before anything else happens, so a duplicate delivery finds it and a lost
 * one can be replayed; and the delivery of each payment recorded by hand (source "manual").
 */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** "stripe", the name of a generic signed-webhook source, or "manual" (a payment recorded through the API). */
    source: text('source').notNull(),
    /** The processor's id for the event. */
    eventId: text('event_id').notNull(),
    type: text('type').notNull(),
    status: text('status', { enum: webhookEventStatuses }).notNull().default('received'),
    /** Our invoice the event names (metadata or external id), whether or not we know it. */
    invoiceExternalId: text('invoice_external_id'),
    /** The processor's id for the money itself (a charge, a paid invoice): one payment per money movement. */
    moneyId: text('money_id'),
    amountMinor: bigint('amount_minor', { mode: 'number' }),
    currency: char('currency', { length: 3 }),
    /** When the money arrived, per the processor. */
    paidAt: timestamp('paid_at', { withTimezone: true }),
    paymentId: uuid('payment_id').references(() => payments.id),
    /** Why it is unmatched or ignored. */
    detail: text('detail'),
    payload: jsonb('payload').notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    processedAt: timestamp('processed_at', { withTimezone: true }),
    /** Failed attempts to apply a received event (the dispatcher backs off between them). */
    attempts: integer('attempts').notNull().default(0),
    /**
     * While received: when the dispatcher may (next) pick it up. Whoever applies it claims it
     * first, moving this ahead by a lease; an attempt that fails moves it to its retry time.
     */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    /** The current claim on a received event: only its holder records the outcome. */
    claimToken: uuid('claim_token'),
    /** Why the last attempt to apply it failed. */
    lastError: text('last_error'),
  },
  (t) => [
    unique('webhook_events_source_event_uq').on(t.source, t.eventId),
    index('webhook_events_status_idx').on(t.status, t.receivedAt),
    index('webhook_events_invoice_idx').on(t.invoiceExternalId),
    index('webhook_events_due_idx').on(t.nextAttemptAt).where(sql`status = 'received'`),
  ],
);
