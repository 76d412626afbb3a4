import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, desc, eq, gte, inArray, isNotNull, lt, lte, type SQL } from 'drizzle-orm';
import type { approvalKinds, approvalStatuses} from '../db/schema';
import { approvals, collectionCases, communications, customers, invoices } from '../db/schema';
import { decideApprovalUpdate } from '../workflows/messages';
import type { Caller } from './auth';
import type { ServiceDeps } from './invoice-service';
import { HttpProblem } from './problem';

/** Validator refusals from the workflow, as HTTP: a stale or decided request is a 409. */
const refusals: Record<string, { status: number; slug: string }> = {
  NoSuchPendingApproval: { status: 409, slug: 'approval-not-pending' },
  AlreadyDecided: { status: 409, slug: 'approval-already-decided' },
  NotAnApprover: { status: 403, slug: 'not-an-approver' },
  SelfApproval: { status: 403, slug: 'self-approval' },
  ReasonRequired: { status: 400, slug: 'validation' },
};

function selectApprovals(deps: ServiceDeps) {
  return deps.db
    .select({ approval: approvals, invoice: invoices, customer: customers, caseRow: collectionCases })
    .from(approvals)
    .innerJoin(collectionCases, eq(collectionCases.id, approvals.caseId))
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .innerJoin(customers, eq(customers.id, invoices.customerId));
}
type ApprovalRow = Awaited<ReturnType<typeof selectApprovals>>[number];

function approvalView(row: ApprovalRow) {
  return {
    id: row.approval.id,
    kind: row.approval.kind,
    status: row.approval.status,
    amountMinor: row.approval.amountMinor,
    costMinor: row.approval.costMinor,
    currency: row.approval.currency,
    reason: row.approval.reason,
    requestedBy: row.approval.requestedBy,
    deadlineAt: row.approval.deadlineAt.toISOString(),
    createdAt: row.approval.createdAt.toISOString(),
    decidedBy: row.approval.decidedBy,
    decisionReason: row.approval.decisionReason,
    invoice: { externalId: row.invoice.externalId, number: row.invoice.number, dueDate: row.invoice.dueDate },
    customer: { externalId: row.customer.externalId, name: row.customer.name },
    workflowId: row.caseRow.workflowId,
    amountOutstandingMinor: row.caseRow.amountOutstandingMinor,
  };
}
export type ApprovalView = ReturnType<typeof approvalView>;

export type ApprovalFilter = {
  status: (typeof approvalStatuses)[number];
  kind?: (typeof approvalKinds)[number];
  minAmountMinor?: number;
  /** Only requests whose deadline passed before this instant. */
  deadlineBefore?: Date;
  /** Only requests made at least this many days ago. */
  minAgeDays?: number;
  limit: number;
};

/** Approval requests, largest amounts first, then oldest first. */
export async function listApprovals(deps: ServiceDeps, filter: ApprovalFilter): Promise<ApprovalView[]> {
  const where: SQL[] = [eq(approvals.status, filter.status)];
  if (filter.kind) where.push(eq(approvals.kind, filter.kind));
  if (filter.minAmountMinor !== undefined) where.push(gte(approvals.amountMinor, filter.minAmountMinor));
  if (filter.deadlineBefore) where.push(lt(approvals.deadlineAt, filter.deadlineBefore));
  if (filter.minAgeDays !== undefined) where.push(lte(approvals.createdAt, new Date(Date.now() - filter.minAgeDays * 86_400_000)));
  const rows = await selectApprovals(deps)
    .where(and(...where))
    .orderBy(desc(approvals.amountMinor), asc(approvals.createdAt))
    .limit(filter.limit);
  return rows.map(approvalView);
}

export async function getApproval(deps: ServiceDeps, id: string): Promise<ApprovalView> {
  const [row] = await selectApprovals(deps).where(eq(approvals.id, id));
  if (!row) throw new HttpProblem(404, 'approval-not-found', 'Unknown approval', `No approval ${id}.`);
  return approvalView(row);
}

/**
 * What was tried so far on each case: the contacts with the debtor (they carry the ladder's
 * tone; e-mails to approvers and partners do not), oldest first, keyed by workflow id.
 */
export async function contactsSoFar(deps: ServiceDeps, workflowIds: string[]) {
  if (workflowIds.length === 0) return new Map<string, { channel: string; template: string; status: string; at: Date }[]>();
  const rows = await deps.db
    .select({ workflowId: collectionCases.workflowId, channel: communications.channel, template: communications.template, status: communications.status, at: communications.createdAt })
    .from(communications)
    .innerJoin(collectionCases, eq(collectionCases.id, communications.caseId))
    .where(and(inArray(collectionCases.workflowId, workflowIds), isNotNull(communications.tone)))
    .orderBy(asc(communications.createdAt));
  const byCase = new Map<string, { channel: string; template: string; status: string; at: Date }[]>();
  for (const { workflowId, ...contact } of rows) byCase.set(workflowId, [...(byCase.get(workflowId) ?? []), contact]);
  return byCase;
}

/**
 * Delivers a decision through the workflow's Update, so the caller learns at once whether it
 * was accepted; the workflow's validator refusals come back as 403/409 problems.
 */
export async function decideApproval(deps: ServiceDeps, id: string, input: { decision: 'approve' | 'reject'; reason: string }, caller: Caller) {
  const approval = await getApproval(deps, id);
  try {
    return await deps.temporal.workflow.getHandle(approval.workflowId).executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: approval.id, decision: input.decision, reason: input.reason, decidedBy: { name: caller.name, role: caller.role } }],
    });
  } catch (err) {
    const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type && refusals[cause.type]) {
      const { status, slug } = refusals[cause.type]!;
      throw new HttpProblem(status, slug, 'Decision not accepted', cause.message);
    }
    if (approval.status !== 'pending') {
      throw new HttpProblem(409, 'approval-already-decided', 'Decision not accepted', `This request was already ${approval.status}.`);
    }
    if (err instanceof WorkflowNotFoundError) {
      throw new HttpProblem(
        409,
        'case-workflow-missing',
        'Decision not accepted',
        `The case's workflow is gone from Temporal (lost, or ended without closing the case). Restart it (POST /invoices/${approval.invoice.externalId}/restart), ` +
          'check its timeline and resume it: it asks for this decision again, and the request keeps its id.',
      );
    }
    deps.log?.error({ err }, 'deciding an approval failed');
    throw new HttpProblem(503, 'temporal-unavailable', 'Decision not delivered', 'The case could not be reached; try again.');
  }
}
