import { log } from '@temporalio/activity';
import { and, asc, eq, isNull, lte, sql } from 'drizzle-orm';
import { startCollection, type CaseStartDeps } from '../cases/collection-start';
import { goneAs, viewWorkflow } from '../cases/workflow-view';
import { collectionCases, customers, invoices } from '../db/schema';

/** Where a page of the sweep ended: the last case it looked at, in (startsAt, id) order. */
export type SweepCursor = { startsAt: string; caseId: string };

export type StartDueCasesInput = {
  /** The sweep's "now" (workflow time): a case whose start time is at or before it is due. */
  asOf: string;
  /** Where the previous page ended; null for the first page. */
  after: SweepCursor | null;
  limit: number;
};

export type SweepCounts = { started: number; alreadyRunning: number; failed: number };

export type StartDueCasesResult = SweepCounts & {
  /** Invoices whose start failed; the next run tries them again. */
  failedInvoices: string[];
  /** Where the next page begins; null when this page was the last. */
  next: SweepCursor | null;
};

/**
 * One page of the overdue sweep: starts the workflows of open invoices whose case has not
 * started and whose start time has come, including cases whose start failed before. Starting
 * is idempotent (a second start of a workflow id is refused and counted as already running),
 * so a retried page changes nothing. A case that fails to start is counted and left for the
 * next run; it never fails the page for the others.
 */
export async function startDueCases(deps: CaseStartDeps, input: StartDueCasesInput): Promise<StartDueCasesResult> {
  const asOf = new Date(input.asOf);
  const { after } = input;
  const rows = await deps.db
    .select({ caseRow: collectionCases, invoice: invoices, customer: { externalId: customers.externalId, timeZone: customers.timeZone } })
    .from(collectionCases)
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .innerJoin(customers, eq(customers.id, invoices.customerId))
    .where(
      and(
        eq(collectionCases.stage, 'NotStarted'),
        lte(collectionCases.startsAt, asOf),
        eq(invoices.status, 'open'),
        // Keyset paging: a case started on an earlier page may still read NotStarted for a moment.
        after ? sql`(${collectionCases.startsAt}, ${collectionCases.id}) > (${after.startsAt}::timestamptz, ${after.caseId}::uuid)` : undefined,
      ),
    )
    .orderBy(asc(collectionCases.startsAt), asc(collectionCases.id))
    .limit(input.limit);

  const result: StartDueCasesResult = { started: 0, alreadyRunning: 0, failed: 0, failedInvoices: [], next: null };
  for (const row of rows) {
    try {
      if ((await startCollection(deps, row, asOf)) === 'started') result.started += 1;
      else result.alreadyRunning += 1;
    } catch (err) {
      result.failed += 1;
      result.failedInvoices.push(row.invoice.externalId);
      log.warn('starting a collection case failed', { invoiceExternalId: row.invoice.externalId, error: String(err) });
    }
  }
  const last = rows.at(-1);
  if (last && rows.length === input.limit) result.next = { startsAt: last.caseRow.startsAt.toISOString(), caseId: last.caseRow.id };
  return result;
}

export type CheckOpenCasesInput = {
  /** The sweep's "now" (workflow time): recorded as the time of the check. */
  asOf: string;
  limit: number;
};

export type CheckOpenCasesResult = {
  checked: number;
  /** Temporal did not answer for these; they stay first in line for the next run. */
  unanswered: number;
  /** Invoices whose open case's workflow is gone (lost, or ended without closing the case). */
  gone: string[];
};

/**
 * Asks Temporal about the workflows of open cases, the longest unchecked first, and records on
 * each case whether its workflow is gone: lost by the server, or ended (terminated from the UI)
 * without closing the case. The stuck list shows those, with a restart; the next state a run
 * writes clears the mark. Nothing is restarted here: a person reads the timeline first. When a
 * whole batch goes unanswered (Temporal away) the rest waits for the next run.
 */
export async function checkOpenCases(deps: CaseStartDeps, input: CheckOpenCasesInput): Promise<CheckOpenCasesResult> {
  const asOf = new Date(input.asOf);
  const rows = await deps.db
    .select({
      id: collectionCases.id,
      workflowId: collectionCases.workflowId,
      stateSeq: collectionCases.stateSeq,
      stateRunId: collectionCases.stateRunId,
      externalId: invoices.externalId,
    })
    .from(collectionCases)
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    // Written out (not parameters), so the planner matches the partial index.
    .where(sql`${collectionCases.stage} not in ('NotStarted', 'Closed')`)
    .orderBy(sql`${collectionCases.workflowCheckedAt} asc nulls first`, asc(collectionCases.id))
    .limit(input.limit);
  const result: CheckOpenCasesResult = { checked: 0, unanswered: 0, gone: [] };
  for (let i = 0; i < rows.length; i += checkConcurrency) {
    const batch = rows.slice(i, i + checkConcurrency);
    const answered = await Promise.all(batch.map(async (row) => {
      let gone: string | null;
      try {
        const view = await viewWorkflow(deps.temporal, row.workflowId);
        gone = view.state === 'missing' || view.state === 'ended' ? goneAs(view) : null;
      } catch (err) {
        result.unanswered += 1;
        log.warn('checking a case workflow failed', { workflowId: row.workflowId, error: String(err) });
        return false;
      }
      result.checked += 1;
      if (gone) {
        // Marked only if no run has written to the case since it was read (restarted meanwhile, say).
        const [marked] = await deps.db
          .update(collectionCases)
          .set({ workflowCheckedAt: asOf, workflowGone: gone, workflowGoneSince: sql`coalesce(${collectionCases.workflowGoneSince}, ${asOf.toISOString()}::timestamptz)` })
          .where(
            and(
              eq(collectionCases.id, row.id),
              eq(collectionCases.stateSeq, row.stateSeq),
              row.stateRunId === null ? isNull(collectionCases.stateRunId) : eq(collectionCases.stateRunId, row.stateRunId),
            ),
          )
          .returning({ id: collectionCases.id });
        if (marked) {
          result.gone.push(row.externalId);
          return true;
        }
      }
      await deps.db.update(collectionCases).set({ workflowCheckedAt: asOf, workflowGone: null, workflowGoneSince: null }).where(eq(collectionCases.id, row.id));
      return true;
    }));
    if (!answered.some(Boolean)) break;
  }
  return result;
}

/** Describes in flight at once while checking open cases. */
const checkConcurrency = 8;
