import { pgTable, text, timestamp, uuid, index } from 'drizzle-orm/pg-core';
import { apiKeys } from './api-keys';

/**
 * Browser sessions for the pages: a person signs in with their API key once and gets a
 * cookie. Only the token's hash is stored; revoking the key ends its sessions at once.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull().unique(),
    apiKeyId: uuid('api_key_id')
      .notNull()
      .references(() => apiKeys.id),
    /** Put in every form and checked on every POST, on top of the SameSite=Strict cookie. */
    csrfToken: text('csrf_token').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('sessions_api_key_idx').on(t.apiKeyId)],
);
