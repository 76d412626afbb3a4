import { bigint, char, date, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { customers } from './customers';

export const invoiceStatuses = ['open', 'paid', 'settled', 'cancelled', 'written_off', 'sold'] as const;

export const invoices = pgTable(
  'invoices',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** The id in the business's own accounting system; registering it twice changes nothing. */
    externalId: text('external_id').notNull().unique(),
    customerId: uuid('customer_id')
      .notNull()
      .references(() => customers.id),
    number: text('number').notNull(),
    currency: char('currency', { length: 3 }).notNull(),
    /** Integer minor units (cents); bigint in the database, exact up to 2^53 in JavaScript. */
    amountTotalMinor: bigint('amount_total_minor', { mode: 'number' }).notNull(),
    amountOutstandingMinor: bigint('amount_outstanding_minor', { mode: 'number' }).notNull(),
    /** The sum of the invoice's credit notes (invoice_adjustments); the case lowers its balance by each. */
    amountCreditedMinor: bigint('amount_credited_minor', { mode: 'number' }).notNull().default(0),
    issueDate: date('issue_date', { mode: 'string' }).notNull(),
    dueDate: date('due_date', { mode: 'string' }).notNull(),
    status: text('status', { enum: invoiceStatuses }).notNull().default('open'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('invoices_customer_idx').on(t.customerId), index('invoices_due_date_idx').on(t.dueDate)],
);
