import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { collectionCases } from './collection-cases';
import { invoices } from './invoices';

/** The case commands that go to the workflow (a note only goes to the timeline). */
export const deliveredCommandNames = ['dispute', 'dispute-resolution', 'promise', 'payment-plan', 'settlement', 'cease-communication', 'pause', 'resume'] as const;

/** What became of a command: its case has it, the case had closed before it arrived, or someone withdrew it while it waited. */
export const caseCommandOutcomes = ['applied', 'case_closed', 'withdrawn'] as const;

/**
 * Collectors' and operators' commands on a case (dispute, promise, plan, pause, resume …) that go
 * to its workflow. Each is stored before it is sent and is its own outbox entry: delivered in the
 * request, or, when Temporal could not be reached, retried by the command dispatcher until its
 * case has it. The workflow counts each message id once.
 */
export const commandOutbox = pgTable(
  'case_commands',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    caseId: uuid('case_id')
      .notNull()
      .references(() => collectionCases.id),
    invoiceId: uuid('invoice_id')
      .notNull()
      .references(() => invoices.id),
    /** The command's route name (`pause`, `payment-plan` …). */
    name: text('name', { enum: deliveredCommandNames }).notNull(),
    /** `${name}:${Idempotency-Key}` (or a random id): sent again with the same key, it is this row. */
    messageId: text('message_id').notNull(),
    /** The request's body, as validated. */
    body: jsonb('body').$type<Record<string, unknown>>().notNull(),
    requestedBy: text('requested_by').notNull(),
    /**
     * The case's amount outstanding as the sender saw it. A promise or payment plan carries it to
     * the workflow, which counts what the case received after that toward the agreement, however
     * late the command reaches it. Null for rows stored before it was kept.
     */
    balanceSeenMinor: bigint('balance_seen_minor', { mode: 'number' }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /** When its delivery ended (null while it waits), and how. */
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    outcome: text('outcome', { enum: caseCommandOutcomes }),
    /**
     * While not delivered: when the command dispatcher may (next) try. Whoever delivers it claims
     * it first (claimToken, and this moved ahead by a lease); a failed attempt moves it to its
     * retry time. Null once delivered.
     */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    claimToken: uuid('claim_token'),
    /** Failed attempts to deliver it, and why the last one failed. */
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
  },
  (t) => [
    unique('case_commands_case_message_uq').on(t.caseId, t.messageId),
    index('case_commands_due_idx').on(t.nextAttemptAt).where(sql`next_attempt_at is not null`),
    // A case's undelivered commands, oldest first: each waits for the ones before it.
    index('case_commands_undelivered_idx').on(t.caseId, t.createdAt, t.id).where(sql`outcome is null`),
  ],
);
