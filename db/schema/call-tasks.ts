import { pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { collectionCases } from './collection-cases';

export const callTaskStatuses = ['open', 'done', 'cancelled'] as const;

/** The collectors' worklist: a phone call a ladder step asks for. */
export const callTasks = pgTable(
  'call_tasks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    caseId: uuid('case_id')
      .notNull()
      .references(() => collectionCases.id),
    /** workflow id + step: a retried activity finds the task instead of making a second one. */
    idempotencyKey: text('idempotency_key').notNull().unique(),
    template: text('template').notNull(),
    /** What to say and why, for the collector. */
    brief: text('brief').notNull(),
    phone: text('phone'),
    dueAt: timestamp('due_at', { withTimezone: true }).notNull(),
    status: text('status', { enum: callTaskStatuses }).notNull().default('open'),
    assignedTo: text('assigned_to'),
    outcome: text('outcome'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [index('call_tasks_status_due_idx').on(t.status, t.dueAt)],
);
