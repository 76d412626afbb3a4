// Many open cases at once, for the population benchmarks. Registering 100,000 invoices over
// HTTP would take hours here (registrations run at 15–30/s), so the rows are written in bulk SQL
// and each case's workflow is started through the product's own start path, startCollection
// (cases/collection-start.ts): the same workflow id, input, search attributes and id-reuse
// policy as a registration or the overdue sweep, and the case row marked started after it.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Client } from '@temporalio/client';
import { startCollection, type StoredCase } from '../../cases/collection-start';
import type { Database } from '../../db/client';
import { collectionCases, collectionPolicies, customers, invoices } from '../../db/schema';
import { collectionWorkflowId } from '../../domain/collection';
import { policySchema, type CollectionPolicy } from '../../domain/policy';

/** Stores a policy (validated like any other) and returns its row id. */
export async function insertPolicy(db: Database, definition: unknown): Promise<{ id: string; definition: CollectionPolicy }> {
  const policy = policySchema.parse(definition);
  const [row] = await db
    .insert(collectionPolicies)
    .values({ name: policy.name, version: policy.version, definition: policy, createdBy: 'bench' })
    .returning({ id: collectionPolicies.id });
  return { id: row!.id, definition: policy };
}

export type BulkCases = {
  count: number;
  policyId: string;
  dueDate: string;
  /** The debtor's IANA zone: decides when their contact window opens. */
  timeZone: string;
  amountMinor?: number;
};

/**
 * Writes `count` customers, invoices and not-yet-started cases, 1,000 rows per statement, and
 * returns them as startCollection takes them. One customer per invoice, each with its own
 * address, so every e-mail is distinguishable at the SendGrid side.
 */
export async function insertCases(db: Database, spec: BulkCases): Promise<StoredCase[]> {
  const run = randomUUID().slice(0, 8);
  const amount = spec.amountMinor ?? 125_000;
  const stored: StoredCase[] = [];
  for (let from = 0; from < spec.count; from += 1000) {
    const n = Math.min(1000, spec.count - from);
    const ids = Array.from({ length: n }, (_, i) => `${run}-${from + i}`);
    await db.transaction(async (tx) => {
      const customerRows = await tx
        .insert(customers)
        .values(ids.map((id) => ({ externalId: `C-${id}`, name: `Debtor ${id}`, email: `ap-${id}@debtor.example`, timeZone: spec.timeZone, locale: 'en' })))
        .returning();
      const invoiceRows = await tx
        .insert(invoices)
        .values(
          ids.map((id, i) => ({
            externalId: `INV-${id}`,
            customerId: customerRows[i]!.id,
            number: `B-${id}`,
            currency: 'EUR',
            amountTotalMinor: amount,
            amountOutstandingMinor: amount,
            issueDate: spec.dueDate,
            dueDate: spec.dueDate,
          })),
        )
        .returning();
      const caseRows = await tx
        .insert(collectionCases)
        .values(
          invoiceRows.map((invoice) => ({
            invoiceId: invoice.id,
            workflowId: collectionWorkflowId(invoice.externalId),
            stage: 'NotStarted' as const,
            amountOutstandingMinor: amount,
            openingAmountMinor: amount,
            policyId: spec.policyId,
            startsAt: sql`now()`,
          })),
        )
        .returning();
      invoiceRows.forEach((invoice, i) => stored.push({ invoice, customer: customerRows[i]!, caseRow: caseRows[i]! }));
    });
  }
  return stored;
}

/**
 * Starts every case's workflow through startCollection, `concurrency` at a time. Returns how
 * many answered "already started": every case is fresh, so each of those is a start the client
 * retried after the server had taken it (a busy dev server cancels a slow request's context).
 * The workflow runs either way, as it should.
 */
export async function startCases(deps: { db: Database; temporal: Client; taskQueue: string }, stored: StoredCase[], concurrency: number): Promise<number> {
  let next = 0;
  let retried = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < stored.length) {
        if ((await startCollection(deps, stored[next++]!, new Date())) === 'already_started') retried++;
      }
    }),
  );
  return retried;
}

/**
 * Polls `check` until it returns true; throws once `deadline` (a performance.now() instant)
 * has passed, with `what` in the message, so no benchmark waits forever.
 */
export async function until(check: () => Promise<boolean>, deadline: number, what: string, everyMs = 500): Promise<void> {
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
