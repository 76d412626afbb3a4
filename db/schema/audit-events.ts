import { bigserial, jsonb, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';

/**
 * The append-only record of who did what. A database trigger (see the migrations) refuses
 * UPDATE and DELETE. The optional dedupe key lets an activity retry without writing twice.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    caseId: uuid('case_id'),
    invoiceId: uuid('invoice_id'),
    /** "system", "workflow", or the API key name of the person or service. */
    actor: text('actor').notNull(),
    type: text('type').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull().default({}),
    dedupeKey: text('dedupe_key').unique(),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('audit_events_case_idx').on(t.caseId), index('audit_events_invoice_idx').on(t.invoiceId)],
);
