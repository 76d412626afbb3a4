import { bigint, integer, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { collectionOutcomes, collectionStages } from '../../domain/collection';
import { collectionPolicies } from './collection-policies';
import { invoices } from './invoices';

/** One collection case per invoice; the database copy of its workflow's state, for listing. */
export const collectionCases = pgTable(
  'collection_cases',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    invoiceId: uuid('invoice_id')
      .notNull()
      .unique()
      .references(() => invoices.id),
    workflowId: text('workflow_id').notNull().unique(),
    stage: text('stage', { enum: collectionStages }).notNull(),
    outcome: text('outcome', { enum: collectionOutcomes }),
    amountOutstandingMinor: bigint('amount_outstanding_minor', { mode: 'number' }).notNull(),
    nextActionAt: timestamp('next_action_at', { withTimezone: true }),
    /** The workflow's state sequence number last written: an older write arriving late is ignored. */
    stateSeq: integer('state_seq').notNull().default(0),
    /** The policy version the case follows, pinned when it started. */
    policyId: uuid('policy_id').references(() => collectionPolicies.id),
    /** Why the case cannot go on by itself (e.g. the e-mail address was refused), until someone acts. */
    blockedReason: text('blocked_reason'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    closedAt: timestamp('closed_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('collection_cases_stage_idx').on(t.stage)],
);
