import { Context } from '@temporalio/activity';
import { and, eq, isNotNull, lt, ne, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { auditEvents, collectionCases, invoices } from '../db/schema';
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
  /** Workflow time of the change (ISO instant). */
  at: string;
  event: string;
  data: Record<string, unknown>;
  /** The writing workflow run; by default the calling activity's (tests call it directly). */
  runId?: string;
};

/** The workflow run of the activity calling, or null outside an activity. */
function callingRunId(): string | null {
  try {
    return Context.current().info.workflowExecution?.runId ?? null;
  } catch {
    return null;
  }
}

export type CaseStateDeps = { db: Database };

/**
 * Copies the workflow's state to the database (case row, invoice balance and status) and
 * appends one audit event, so the API lists cases without asking Temporal. A retry of the
 * same seq changes nothing; the audit event is written once, by its dedupe key.
 */
export async function recordCaseState(deps: CaseStateDeps, input: RecordCaseStateInput): Promise<void> {
  const now = new Date(input.at);
  const runId = input.runId ?? callingRunId();
  // Newer: a higher seq of the same run, or any state of another run. A run is started afresh
  // only when its predecessor is gone from Temporal (its own seq starts at 1 again), and a
  // predecessor that is gone writes nothing more.
  const newer = runId
    ? or(lt(collectionCases.stateSeq, input.seq), and(isNotNull(collectionCases.stateRunId), ne(collectionCases.stateRunId, runId)))
    : lt(collectionCases.stateSeq, input.seq);
  await deps.db.transaction(async (tx) => {
    // Only a newer state may overwrite: an attempt that timed out and commits late must not
    // turn a closed case back into an open one.
    const [updated] = await tx
      .update(collectionCases)
      .set({
        stage: input.stage,
        outcome: input.outcome,
        amountOutstandingMinor: input.amountOutstandingMinor,
        nextActionAt: input.nextActionAt ? new Date(input.nextActionAt) : null,
        blockedReason: input.blockedReason,
        closedAt: input.stage === 'Closed' ? now : null,
        // The first state a workflow reports is the moment its case started (if the starter did not record it).
        startedAt: sql`coalesce(${collectionCases.startedAt}, ${input.at}::timestamptz)`,
        stateSeq: input.seq,
        ...(runId ? { stateRunId: runId } : {}),
        updatedAt: now,
      })
      .where(and(eq(collectionCases.workflowId, input.workflowId), newer))
      .returning({ caseId: collectionCases.id, invoiceId: collectionCases.invoiceId });
    const target =
      updated ??
      (
        await tx
          .select({ caseId: collectionCases.id, invoiceId: collectionCases.invoiceId })
          .from(collectionCases)
          .where(eq(collectionCases.workflowId, input.workflowId))
      )[0];
    if (!target) throw new Error(`no collection case for workflow ${input.workflowId}`);

    if (updated) {
      await tx
        .update(invoices)
        .set({
          amountOutstandingMinor: input.amountOutstandingMinor,
          ...(input.outcome ? { status: input.outcome } : {}),
          updatedAt: now,
        })
        .where(eq(invoices.id, updated.invoiceId));
    }

    await tx
      .insert(auditEvents)
      .values({
        caseId: target.caseId,
        invoiceId: target.invoiceId,
        actor: 'workflow',
        type: input.event,
        data: { stage: input.stage, amountOutstandingMinor: input.amountOutstandingMinor, ...input.data },
        dedupeKey: runId ? `${input.workflowId}:${runId}:state:${input.seq}` : `${input.workflowId}:state:${input.seq}`,
        occurredAt: now,
      })
      .onConflictDoNothing({ target: auditEvents.dedupeKey });
  });
}
