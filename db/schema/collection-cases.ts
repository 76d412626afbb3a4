import { sql } from 'drizzle-orm';
import { bigint, boolean, integer, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
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
    /**
     * The balance the case opened with, at registration. A workflow started afresh (its
     * predecessor lost or ended) starts from it and applies every stored payment and correction
     * again, by id; amountOutstandingMinor already has those taken off.
     */
    openingAmountMinor: bigint('opening_amount_minor', { mode: 'number' }).notNull(),
    nextActionAt: timestamp('next_action_at', { withTimezone: true }),
    /** The workflow's state sequence number last written: an older write arriving late is ignored. */
    stateSeq: integer('state_seq').notNull().default(0),
    /**
     * The workflow run that wrote the state. A later write of the same run must have a higher
     * stateSeq; a run that starts afresh (its predecessor gone from Temporal) counts from 1 again.
     */
    stateRunId: text('state_run_id'),
    /**
     * When that run started. A run that started later wins whatever its seq: a continued-as-new,
     * reset or afresh-started run supersedes its predecessor, and a predecessor that still
     * writes (a dev server that lost track of it) is ignored.
     */
    stateRunStartedAt: timestamp('state_run_started_at', { withTimezone: true }),
    /** The policy version the case follows, pinned when it started. */
    policyId: uuid('policy_id').references(() => collectionPolicies.id),
    /** Why the case cannot go on by itself (e.g. the e-mail address was refused), until someone acts. */
    blockedReason: text('blocked_reason'),
    /** Why a Paused case is paused, and by whom (null in any other stage). */
    pausedReason: text('paused_reason'),
    /**
     * Its workflow was started again after a loss (by a restart, or by a message) and holds the
     * pause it started with (Paused, or about to be once a dispute is handled), until resumed:
     * someone has to check its timeline (the stuck list shows it at once).
     */
    pausedAfterRestart: boolean('paused_after_restart').notNull().default(false),
    /**
     * When the workflow is due to start: a day before the policy's first step (see
     * collectionStartsAt). Registration starts it at once when that has come; otherwise the
     * overdue sweep does.
     */
    startsAt: timestamp('starts_at', { withTimezone: true }).notNull(),
    /** When the workflow started; null while the case waits for its start (stage NotStarted). */
    startedAt: timestamp('started_at', { withTimezone: true }),
    closedAt: timestamp('closed_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    /** When the overdue sweep last asked Temporal about the case's workflow (it checks the longest unchecked first). */
    workflowCheckedAt: timestamp('workflow_checked_at', { withTimezone: true }),
    /**
     * Set by that check when the open case's workflow is gone: 'lost' (Temporal has no record of
     * it) or how it ended without closing the case ('terminated', 'failed', …); cleared by the
     * next state a run of it writes.
     */
    workflowGone: text('workflow_gone'),
    workflowGoneSince: timestamp('workflow_gone_since', { withTimezone: true }),
  },
  (t) => [
    index('collection_cases_stage_idx').on(t.stage),
    // The overdue sweep's work list: cases not started yet, oldest start time first.
    index('collection_cases_not_started_idx').on(t.startsAt, t.id).where(sql`stage = 'NotStarted'`),
    // The sweep's check of open cases: the longest unchecked first.
    index('collection_cases_workflow_check_idx').on(t.workflowCheckedAt.asc().nullsFirst(), t.id).where(sql`stage not in ('NotStarted', 'Closed')`),
    // The stuck list's cases whose workflow the check found gone.
    index('collection_cases_workflow_gone_idx').on(t.workflowGoneSince).where(sql`workflow_gone is not null`),
  ],
);
