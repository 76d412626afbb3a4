import { bigint, char, pgTable, text, timestamp, unique, uuid, index } from 'drizzle-orm/pg-core';
import { invoices } from './invoices';

export const payments = pgTable(
  'payments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Null while the payment matches no known invoice: kept for reconciliation, never dropped. */
    invoiceId: uuid('invoice_id').references(() => invoices.id),
    /** Who reported it: "manual", "stripe", a webhook source name. */
    provider: text('provider').notNull(),
    /** The provider's own id for the event: the same event stored twice is one payment. */
    providerEventId: text('provider_event_id').notNull(),
    amountMinor: bigint('amount_minor', { mode: 'number' }).notNull(),
    currency: char('currency', { length: 3 }).notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull(),
    recordedBy: text('recorded_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('payments_provider_event_uq').on(t.provider, t.providerEventId), index('payments_invoice_idx').on(t.invoiceId)],
);
