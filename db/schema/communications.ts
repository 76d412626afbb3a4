import { pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { collectionCases } from './collection-cases';

export const channels = ['email', 'letter', 'call_task'] as const;
export const communicationStatuses = ['recorded', 'queued', 'sent', 'failed'] as const;

/** Every contact with a debtor. The idempotency key (workflow id + step) makes a retried send a no-op. */
export const communications = pgTable(
  'communications',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    caseId: uuid('case_id')
      .notNull()
      .references(() => collectionCases.id),
    idempotencyKey: text('idempotency_key').notNull().unique(),
    channel: text('channel', { enum: channels }).notNull(),
    template: text('template').notNull(),
    locale: text('locale').notNull(),
    recipient: text('recipient'),
    subject: text('subject'),
    body: text('body').notNull(),
    status: text('status', { enum: communicationStatuses }).notNull(),
    /** The provider's id for the message (SendGrid's X-Message-Id), once sent. */
    providerMessageId: text('provider_message_id'),
    /** Why it failed, for a person to act on. */
    failureReason: text('failure_reason'),
    tone: text('tone', { enum: ['friendly', 'firm', 'final'] }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('communications_case_idx').on(t.caseId)],
);
