import { bigint, char, jsonb, pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { collectionCases } from './collection-cases';

export const approvalKinds = ['agency_referral', 'legal_action', 'write_off', 'sell_debt', 'settlement'] as const;
export const approvalStatuses = ['pending', 'approved', 'rejected', 'expired'] as const;

/** A request for a person to sign off an escalation, and their decision. */
export const approvals = pgTable(
  'approvals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    caseId: uuid('case_id')
      .notNull()
      .references(() => collectionCases.id),
    kind: text('kind', { enum: approvalKinds }).notNull(),
    amountMinor: bigint('amount_minor', { mode: 'number' }).notNull(),
    currency: char('currency', { length: 3 }).notNull(),
    /** workflow id + step id: a retried request finds its row instead of making a second one. */
    requestKey: text('request_key').notNull().unique(),
    stepId: text('step_id').notNull(),
    reason: text('reason').notNull(),
    /** Roles that may decide (from the policy's approval rule). */
    approverRoles: jsonb('approver_roles').$type<string[]>().notNull(),
    /** What the action costs against what it may recover, for the approver. */
    costMinor: bigint('cost_minor', { mode: 'number' }).notNull().default(0),
    remindedAt: timestamp('reminded_at', { withTimezone: true }),
    escalatedAt: timestamp('escalated_at', { withTimezone: true }),
    requestedBy: text('requested_by').notNull(),
    status: text('status', { enum: approvalStatuses }).notNull().default('pending'),
    deadlineAt: timestamp('deadline_at', { withTimezone: true }).notNull(),
    decidedBy: text('decided_by'),
    decidedAt: timestamp('decided_at', { withTimezone: true }),
    decisionReason: text('decision_reason'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('approvals_status_idx').on(t.status)],
);
