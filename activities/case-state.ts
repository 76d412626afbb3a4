import { Context } from '@temporalio/activity';
import { and, eq, isNotNull, isNull, lt, ne, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { auditEvents, callTasks, collectionCases, customers, invoices } from '../db/schema';
import type { CollectionOutcome, CollectionStage } from '../domain/collection';

export type RecordCaseStateInput = {
  workflowId: string;
  /** Increases with every state change of the workflow: the audit event's dedupe key. */
  seq: number;
  stage: CollectionStage;
  outcome: CollectionOutcome | null;
  amountOutstandingMinor: number;
  nextActionAt: string | null;
  blockedReason: string | null;
  /** Why a Paused case is paused (absent from workflows older than this field: null). */
  pausedReason?: string | null;
  /** Started again after a loss, paused (or about to be), not yet resumed (absent from older workflows: false). */
  pausedAfterRestart?: boolean;
  /** Workflow time of the change (ISO instant). */
  at: string;
  event: string;
  data: Record<string, unknown>;
  /** The writing workflow run; by default the calling activity's (tests call it directly). */
  runId?: string;
  /** When the writing run started (ISO instant): a later run's state wins over an earlier's. */
  runStartedAt?: string;
};

/** The workflow run of the activity calling, or null outside an activity. */
function callingRunId(): string | null {
  try {
    return Context.current().info.workflowExecution?.runId ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether a state is newer than the row's. Within one run a higher seq is newer. Across runs the
 * one that started later wins: its predecessor may have been continued as new, or lost by the
 * server (a signal-with-start or a restart then begins a new run counting from 1 again), and a
 * lost run the server still fires timers for must not write over its successor. A reset run
 * keeps its original's start time, so at the same start time another run wins too. Rows written
 * before runs were dated, and writes from a worker that does not date them, fall back to
 * "another run wins", but an undated write never overwrites another run's dated row.
 */
function newerState(seq: number, runId: string | null, runStartedAt: Date | null) {
  const higherSeq = lt(collectionCases.stateSeq, seq);
  if (!runId) return higherSeq;
  const otherRun = and(isNotNull(collectionCases.stateRunId), ne(collectionCases.stateRunId, runId));
  const undatedRow = and(isNull(collectionCases.stateRunStartedAt), or(higherSeq, otherRun));
  if (!runStartedAt) return or(undatedRow, and(eq(collectionCases.stateRunId, runId), higherSeq));
  return or(
    undatedRow,
    lt(collectionCases.stateRunStartedAt, runStartedAt),
    and(eq(collectionCases.stateRunStartedAt, runStartedAt), or(higherSeq, otherRun)),
  );
}

export type CaseStateDeps = { db: Database };

/** Bare column names (as an insert's column list and an update's SET need them), from the tables. */
const columns = (...list: { name: string }[]) => sql.join(list.map((column) => sql.identifier(column.name)), sql`, `);

/**
 * Copies the workflow's state to the database (case row, invoice balance and status) and
 * appends one audit event, so the API lists cases without asking Temporal. A retry of the
 * same seq changes nothing; the audit event is written once, by its dedupe key.
 *
 * One statement (data-modifying CTEs), so one round trip and one commit: it runs for every
 * change of every case, two of them before a case's first step (BENCHMARKS.md, item 2). A
 * case closing settled takes a second, for its customer's credit hold (releaseCreditHold).
 */
export async function recordCaseState(deps: CaseStateDeps, input: RecordCaseStateInput): Promise<void> {
  const now = new Date(input.at);
  const runId = input.runId ?? callingRunId();
  const runStartedAt = input.runStartedAt ? new Date(input.runStartedAt) : null;
  // Only a newer state may overwrite: an attempt that timed out and commits late must not
  // turn a closed case back into an open one.
  const updateCase = deps.db
    .update(collectionCases)
    .set({
      stage: input.stage,
      outcome: input.outcome,
      amountOutstandingMinor: input.amountOutstandingMinor,
      nextActionAt: input.nextActionAt ? new Date(input.nextActionAt) : null,
      blockedReason: input.blockedReason,
      pausedReason: input.pausedReason ?? null,
      pausedAfterRestart: input.pausedAfterRestart ?? false,
      closedAt: input.stage === 'Closed' ? now : null,
      // The first state a workflow reports is the moment its case started (if the starter did not record it).
      startedAt: sql`coalesce(${collectionCases.startedAt}, ${input.at}::timestamptz)`,
      stateSeq: input.seq,
      // A run that writes exists: whatever the sweep's check found gone before, is not.
      workflowGone: null,
      workflowGoneSince: null,
      // An undated write keeps the row's date: only its own run's row can be dated (newerState).
      ...(runId ? { stateRunId: runId } : {}),
      ...(runStartedAt ? { stateRunStartedAt: runStartedAt } : {}),
      updatedAt: now,
    })
    .where(and(eq(collectionCases.workflowId, input.workflowId), newerState(input.seq, runId, runStartedAt)))
    // Embedded below in parentheses (as drizzle embeds a query), returning "id" and "invoice_id".
    .returning({ id: collectionCases.id, invoiceId: collectionCases.invoiceId });
  const invoiceSet = sql.join(
    [
      sql`${columns(invoices.amountOutstandingMinor)} = ${input.amountOutstandingMinor}`,
      ...(input.outcome ? [sql`${columns(invoices.status)} = ${input.outcome}`] : []),
      sql`${columns(invoices.updatedAt)} = ${now.toISOString()}::timestamptz`,
    ],
    sql`, `,
  );
  const data = { stage: input.stage, amountOutstandingMinor: input.amountOutstandingMinor, ...input.data };
  // Nobody is to call a debtor who paid, disputes or asked not to be contacted: their open call
  // tasks leave the worklist. An account settled (paid, settled or cancelled) lifts its credit
  // hold once the customer has no other open case.
  const withdrawCalls = input.stage === 'Closed' || input.stage === 'Disputed' || input.event === 'case.communication_ceased';
  const settled = input.stage === 'Closed' && (input.outcome === 'paid' || input.outcome === 'settled' || input.outcome === 'cancelled');
  const withdrawn = withdrawCalls
    ? sql`, withdrawn as (
      update ${callTasks} set ${columns(callTasks.status)} = 'cancelled', ${columns(callTasks.outcome)} = ${`withdrawn: ${input.event}`},
        ${columns(callTasks.completedAt)} = ${now.toISOString()}::timestamptz
      from updated where ${callTasks.caseId} = updated.id and ${callTasks.status} = 'open'
      returning 1
    )`
    : sql``;
  const dedupeKey = runId ? `${input.workflowId}:${runId}:state:${input.seq}` : `${input.workflowId}:state:${input.seq}`;
  // The audit event goes to the case whether or not its row was newer (a late write is still
  // history); the invoice follows the row only when the row changed.
  const result = await deps.db.execute<{ found: number }>(sql`
    with updated as ${updateCase},
    -- The fallback reads the case as the statement began; only its ids, which never change.
    target as (
      select id as case_id, invoice_id from updated
      union all
      select ${collectionCases.id}, ${collectionCases.invoiceId} from ${collectionCases}
      where ${collectionCases.workflowId} = ${input.workflowId} and not exists (select 1 from updated)
    ),
    invoice as (
      update ${invoices} set ${invoiceSet} from updated where ${invoices.id} = updated.invoice_id returning 1
    ),
    audit as (
      insert into ${auditEvents} (${columns(auditEvents.caseId, auditEvents.invoiceId, auditEvents.actor, auditEvents.type, auditEvents.data, auditEvents.dedupeKey, auditEvents.occurredAt)})
      select case_id, invoice_id, 'workflow', ${input.event}, ${JSON.stringify(data)}::jsonb, ${dedupeKey}, ${now.toISOString()}::timestamptz from target
      on conflict (${columns(auditEvents.dedupeKey)}) do nothing
      returning 1
    )${withdrawn}
    select (select count(*) from target)::int as found`);
  const rows = Array.isArray(result) ? result : (result as unknown as { rows: { found: number }[] }).rows;
  if (!rows[0]?.found) throw new Error(`no collection case for workflow ${input.workflowId}`);
  if (settled) await releaseCreditHold(deps, input.workflowId);
}

/**
 * Lifts the credit hold of the customer whose case `workflowId` closed settled, unless another
 * of their cases is still being chased, or was written off or sold. A statement of its own,
 * after the case's close has committed: two of a customer's cases closing at once (one bank
 * transfer paying both) would each, inside their own statement, see the other still open, and
 * neither lift it. Run after the commit, the later of the two sees both closed. A retry runs it
 * again, from the rows, whatever the state write it follows found.
 */
async function releaseCreditHold(deps: CaseStateDeps, workflowId: string): Promise<void> {
  await deps.db.execute(sql`
    update ${customers} set ${columns(customers.creditHoldSince)} = null
    from ${collectionCases} closed join ${invoices} on ${invoices.id} = closed.invoice_id
    where closed.workflow_id = ${workflowId} and closed.stage = 'Closed' and closed.outcome in ('paid', 'settled', 'cancelled')
      and ${customers.id} = ${invoices.customerId} and ${customers.creditHoldSince} is not null
      and not exists (
        -- Another case still chasing, or one whose debt was written off or sold: the account is not settled.
        select 1 from ${collectionCases} other join ${invoices} other_invoice on other_invoice.id = other.invoice_id
        where other_invoice.customer_id = ${customers.id} and other.id <> closed.id
          and (other.stage not in ('Closed', 'NotStarted') or other.outcome in ('written_off', 'sold'))
      )`);
}
