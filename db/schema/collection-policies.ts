import { integer, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import type { CollectionPolicy } from '../../domain/policy';

/**
 * Collection policies, versioned: a new version is a new row, never an edit, and each case
 * pins the row it started with, so changing a policy never changes a running case.
 */
export const collectionPolicies = pgTable(
  'collection_policies',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    /** The whole policy, validated by domain/policy.ts's schema before it is stored. */
    definition: jsonb('definition').$type<CollectionPolicy>().notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('collection_policies_name_version_uq').on(t.name, t.version)],
);
