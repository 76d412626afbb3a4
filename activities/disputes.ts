import { eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { auditEvents, disputes } from '../db/schema';
import { loadCase } from './channels';

export type OpenDisputeInput = { workflowId: string; disputeNo: number; reason: string; by: string; at: string };
export type ResolveDisputeInput = {
  workflowId: string;
  disputeNo: number;
  resolution: 'customer_favour' | 'business_favour';
  note: string;
  creditMinor: number;
  by: string;
  at: string;
};


/** Puts the dispute on the responsible team's list (the open rows of `disputes`). Idempotent. */
export async function openDispute(deps: { db: Database }, input: OpenDisputeInput): Promise<{ disputeId: string }> {
  const { caseId, invoice } = await loadCase(deps.db, input.workflowId);
  const c = { id: caseId, invoiceId: invoice.id };
  const disputeKey = `${input.workflowId}:dispute:${input.disputeNo}`;
  return deps.db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(disputes)
      .values({ caseId: c.id, disputeKey, reason: input.reason, openedBy: input.by, openedAt: new Date(input.at) })
      .onConflictDoNothing({ target: disputes.disputeKey })
      .returning({ id: disputes.id });
    if (!inserted) return { disputeId: (await tx.select({ id: disputes.id }).from(disputes).where(eq(disputes.disputeKey, disputeKey)))[0]!.id };
    await tx.insert(auditEvents).values({
      caseId: c.id,
      invoiceId: c.invoiceId,
      actor: input.by,
      type: 'dispute.opened',
      data: { disputeId: inserted.id, reason: input.reason },
      occurredAt: new Date(input.at),
    });
    return { disputeId: inserted.id };
  });
}

/** Records how the dispute ended. Idempotent: a resolved dispute stays as it was resolved. */
export async function resolveDispute(deps: { db: Database }, input: ResolveDisputeInput): Promise<void> {
  const { caseId, invoice } = await loadCase(deps.db, input.workflowId);
  const c = { id: caseId, invoiceId: invoice.id };
  const disputeKey = `${input.workflowId}:dispute:${input.disputeNo}`;
  await deps.db.transaction(async (tx) => {
    const [row] = await tx.select().from(disputes).where(eq(disputes.disputeKey, disputeKey));
    if (!row || row.resolvedAt) return;
    await tx
      .update(disputes)
      .set({
        resolution: input.resolution,
        resolutionNote: input.note,
        creditMinor: input.creditMinor,
        resolvedBy: input.by,
        resolvedAt: new Date(input.at),
      })
      .where(eq(disputes.id, row.id));
    await tx.insert(auditEvents).values({
      caseId: c.id,
      invoiceId: c.invoiceId,
      actor: input.by,
      type: 'dispute.resolved',
      data: { disputeId: row.id, resolution: input.resolution, creditMinor: input.creditMinor, note: input.note },
      occurredAt: new Date(input.at),
    });
  });
}
