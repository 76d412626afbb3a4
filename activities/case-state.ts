import { and, eq, lt, sql } from 'drizzle-orm';
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
};

export type CaseStateDeps = { db: Database };

/**
 * Copies the workflow's state to the database (case row, invoice balance and status) and
 * appends one audit event, so the API lists cases without asking Temporal. A retry of the
 * same seq changes nothing; the audit event is written once, by its dedupe key.
 */
export async function recordCaseState(deps: CaseStateDeps, input: RecordCaseStateInput): Promise<void> {
  const now = new Date(input.at);
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
        updatedAt: now,
      })
      .where(and(eq(collectionCases.workflowId, input.workflowId), lt(collectionCases.stateSeq, input.seq)))
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
        dedupeKey: `${input.workflowId}:state:${input.seq}`,
        occurredAt: now,
      })
      .onConflictDoNothing({ target: auditEvents.dedupeKey });
  });
}
