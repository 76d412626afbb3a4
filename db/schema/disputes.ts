import { bigint, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { collectionCases } from './collection-cases';

/**
 * A debtor's dispute: the team responsible works it as a problem to fix (wrong delivery,
 * defective goods), not a debt to chase harder. Collection pauses while it is open.
 */
export const disputes = pgTable(
  'disputes',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    caseId: uuid('case_id')
      .notNull()
      .references(() => collectionCases.id),
    /** workflow id + dispute number: a retried activity finds its row. */
    disputeKey: text('dispute_key').notNull().unique(),
    reason: text('reason').notNull(),
    openedBy: text('opened_by').notNull(),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull(),
    resolution: text('resolution', { enum: ['customer_favour', 'business_favour'] }),
    resolutionNote: text('resolution_note'),
    creditMinor: bigint('credit_minor', { mode: 'number' }),
    resolvedBy: text('resolved_by'),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [index('disputes_open_idx').on(t.resolvedAt)],
);
