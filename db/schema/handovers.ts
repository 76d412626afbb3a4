import { bigint, char, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { approvals } from './approvals';
import { collectionCases } from './collection-cases';

export const handoverKinds = ['agency_referral', 'legal_action', 'write_off', 'sell_debt'] as const;

/**
 * What an approved escalation did: an agency placement, a legal case, a write-off ledger
 * entry or a debt sale. One per approval.
 */
export const handovers = pgTable('handovers', {
  id: uuid('id').primaryKey().defaultRandom(),
  caseId: uuid('case_id')
    .notNull()
    .references(() => collectionCases.id),
  approvalId: uuid('approval_id')
    .notNull()
    .unique()
    .references(() => approvals.id),
  kind: text('kind', { enum: handoverKinds }).notNull(),
  amountMinor: bigint('amount_minor', { mode: 'number' }).notNull(),
  currency: char('currency', { length: 3 }).notNull(),
  details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
