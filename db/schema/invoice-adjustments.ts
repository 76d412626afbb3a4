import { sql } from 'drizzle-orm';
import { bigint, char, index, integer, pgTable, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { invoices } from './invoices';

export const adjustmentKinds = ['credit_note', 'cancellation'] as const;

/**
 * Credit notes and cancellations of an invoice, as the accounting system issued them. Stored
 * once per adjustment id before the case hears of it; the workflow counts each id once. Each
 * is also its own outbox entry: forwarded in the request, or retried by the adjustment
 * dispatcher until its case has it.
 */
export const invoiceAdjustments = pgTable(
  'invoice_adjustments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    invoiceId: uuid('invoice_id')
      .notNull()
      .references(() => invoices.id),
    /** The caller's id for it (the credit note's number, or the Idempotency-Key): sending it again changes nothing. */
    adjustmentId: text('adjustment_id').notNull(),
    kind: text('kind', { enum: adjustmentKinds }).notNull(),
    /** Credit notes only: integer minor units, in the invoice's currency. */
    amountMinor: bigint('amount_minor', { mode: 'number' }),
    currency: char('currency', { length: 3 }),
    reason: text('reason').notNull(),
    recordedBy: text('recorded_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * When the forwarding that reached its case began (the signal was accepted after this); null
     * while it is being forwarded. A contact step that began later states the credited balance.
     */
    forwardedAt: timestamp('forwarded_at', { withTimezone: true }),
    /**
     * While not forwarded: when the adjustment dispatcher may (next) try. Whoever forwards it
     * claims it first (claimToken, and this moved ahead by a lease); a failed attempt moves it to
     * its retry time. Null once forwarded.
     */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    claimToken: uuid('claim_token'),
    /** Failed attempts to forward it, and why the last one failed. */
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
  },
  (t) => [
    unique('invoice_adjustments_invoice_adjustment_uq').on(t.invoiceId, t.adjustmentId),
    index('invoice_adjustments_due_idx').on(t.nextAttemptAt).where(sql`next_attempt_at is not null`),
    // An invoice is cancelled once, whatever id a repeat carries.
    uniqueIndex('invoice_adjustments_one_cancellation_uq').on(t.invoiceId).where(sql`kind = 'cancellation'`),
  ],
);
