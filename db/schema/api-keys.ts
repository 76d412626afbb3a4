import { pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { roles } from '../../domain/roles';

export { roles };


/** API keys are stored as SHA-256 hashes; the key itself is shown once, when created. */
export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  role: text('role', { enum: roles }).notNull(),
  keyHash: text('key_hash').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
});
