import { desc, eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { collectionPolicies } from '../db/schema';
import { defaultPolicy } from '../domain/policy';
import { HttpProblem } from './problem';

export type PolicyRow = typeof collectionPolicies.$inferSelect;

/**
 * The newest version of a policy, for a case about to start. The built-in default policy is
 * stored on first use, so every case can name the exact version it follows.
 */
export async function latestPolicy(db: Database, name = defaultPolicy.name): Promise<PolicyRow> {
  const find = () =>
    db.select().from(collectionPolicies).where(eq(collectionPolicies.name, name)).orderBy(desc(collectionPolicies.version)).limit(1);
  let [row] = await find();
  if (!row && name === defaultPolicy.name) {
    await db
      .insert(collectionPolicies)
      .values({ name, version: defaultPolicy.version, definition: defaultPolicy, createdBy: 'system' })
      .onConflictDoNothing();
    [row] = await find();
  }
  if (!row) throw new HttpProblem(422, 'unknown-policy', 'Unknown collection policy', `No collection policy named "${name}".`);
  return row;
}

/** The version a case pinned when it started. */
export async function pinnedPolicy(db: Database, policyId: string): Promise<PolicyRow> {
  const [row] = await db.select().from(collectionPolicies).where(eq(collectionPolicies.id, policyId));
  if (!row) throw new Error(`collection policy ${policyId} is missing`);
  return row;
}
