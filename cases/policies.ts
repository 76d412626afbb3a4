import { desc, eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { collectionPolicies } from '../db/schema';
import { defaultPolicy } from '../domain/policy';

export type PolicyRow = typeof collectionPolicies.$inferSelect;

/**
 * The newest version of a policy, for a case about to be opened; undefined if no policy has
 * that name. The built-in default policy is stored on first use, so every case can name the
 * exact version it follows.
 */
export async function latestPolicy(db: Database, name = defaultPolicy.name): Promise<PolicyRow | undefined> {
  const find = () =>
    db.select().from(collectionPolicies).where(eq(collectionPolicies.name, name)).orderBy(desc(collectionPolicies.version)).limit(1);
  const [row] = await find();
  if (row || name !== defaultPolicy.name) return row;
  await db
    .insert(collectionPolicies)
    .values({ name, version: defaultPolicy.version, definition: defaultPolicy, createdBy: 'system' })
    .onConflictDoNothing();
  return (await find())[0];
}

/** The version a case pinned when it was opened (cases from before pinning follow the newest default). */
export async function pinnedPolicy(db: Database, policyId: string | null): Promise<PolicyRow> {
  const [row] = policyId
    ? await db.select().from(collectionPolicies).where(eq(collectionPolicies.id, policyId))
    : [await latestPolicy(db)];
  if (!row) throw new Error(`collection policy ${policyId} is missing`);
  return row;
}
