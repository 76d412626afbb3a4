/**
 * The claiming and retry timing shared by the outboxes the API's dispatchers drain: stored
 * payments (`webhook_events`: webhooks, and payments recorded by hand), invoice adjustments
 * (credit notes and cancellations) and case commands (`case_commands`). A row waiting to be applied has a `next_attempt_at`;
 * whoever applies it holds a claim (a token, and that time moved ahead by a lease), and only the
 * holder records the outcome, so a slow or stale attempt never overwrites a newer one.
 */
import { and, asc, inArray, isNull, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import type { commandOutbox, invoiceAdjustments, webhookEvents } from '../db/schema';
import { isTemporalUnreachable } from './invoice-service';
import { HttpProblem } from './problem';

type OutboxTable = typeof webhookEvents | typeof invoiceAdjustments | typeof commandOutbox;

/** A claim on an outbox row: its holder applies it and records the outcome; no one else does. */
export type OutboxClaim = { id: string; token: string };

/** How long a claim holds before another dispatcher may take it over. */
const leaseSeconds = 30;
export const leaseEnd = sql`now() + make_interval(secs => ${leaseSeconds})`;

/** The longest wait between attempts to deliver to a case while Temporal is unreachable. */
export const temporalOutageRetrySeconds = 10;

/** No one is applying the row now: it has no claim, or its claim's lease ran out. */
export function noLiveClaim(table: OutboxTable) {
  return or(isNull(table.claimToken), lte(table.nextAttemptAt, sql`now()`));
}

/**
 * Claims rows that are `pending` and whose retry time (or an abandoned claim's lease) has come,
 * oldest first, each with a claim of its own. Two dispatchers never claim one row.
 */
export async function claimDue(db: Database, table: OutboxTable, pending: SQL, limit: number): Promise<OutboxClaim[]> {
  if (limit <= 0) return [];
  const due = db
    .select({ id: table.id })
    .from(table)
    .where(and(pending, lte(table.nextAttemptAt, sql`now()`)))
    .orderBy(asc(table.nextAttemptAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  // The outer conditions are checked again on each row.
  return db
    .update(table)
    .set({ claimToken: sql`gen_random_uuid()`, nextAttemptAt: leaseEnd })
    .where(and(inArray(table.id, due), pending, lte(table.nextAttemptAt, sql`now()`)))
    .returning({ id: table.id, token: sql<string>`${table.claimToken}::text` });
}

/**
 * What a failed attempt writes (under its claim): one more attempt, the error, no claim, and
 * the next try after 1 s, 2 s, 4 s … 5 min. Temporal being away is an outage, not something
 * wrong with the row: then the next try is at most 10 s away, so the row is applied soon after
 * Temporal is back however long it was away.
 */
export function failedAttempt(table: OutboxTable, err: unknown) {
  const outage = err instanceof HttpProblem && isTemporalUnreachable(err.cause);
  const ceilingSeconds = outage ? temporalOutageRetrySeconds : 300;
  // Why, in words for operations; the underlying error (addresses and all) stays in the log.
  const message = `${err instanceof Error ? err.message : String(err)}${outage ? ' (Temporal could not be reached, or did not answer in time)' : ''}`;
  return {
    attempts: sql`${table.attempts} + 1`,
    nextAttemptAt: sql`now() + make_interval(secs => least(power(2, least(${table.attempts}, 9)), ${ceilingSeconds}))`,
    lastError: message.slice(0, 1000),
    claimToken: null,
  };
}
