import { customType, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { communications } from './communications';

// postgres.js returns a Buffer, PGlite a Uint8Array: the column always gives a Buffer.
const bytea = customType<{ data: Buffer; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => Buffer.from(value),
});

export const letterStatuses = ['queued', 'printed', 'mailed', 'cancelled'] as const;

/** A rendered letter (PDF) and its place in the print-and-mail queue. */
export const letters = pgTable(
  'letters',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    communicationId: uuid('communication_id')
      .notNull()
      .unique()
      .references(() => communications.id),
    pdf: bytea('pdf').notNull(),
    /** Where it goes: the customer's postal address at the time it was rendered. */
    address: text('address').notNull(),
    certified: text('certified', { enum: ['no', 'yes'] }).notNull().default('no'),
    status: text('status', { enum: letterStatuses }).notNull().default('queued'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    printedAt: timestamp('printed_at', { withTimezone: true }),
  },
  (t) => [index('letters_status_idx').on(t.status)],
);
