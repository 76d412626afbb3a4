import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, desc, eq, gte, type SQL } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { approvalKinds, approvals, approvalStatuses, collectionCases, customers, invoices } from '../../db/schema';
import { decideApprovalUpdate } from '../../workflows/messages';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { HttpProblem, problemResponses } from '../problem';

const approvalViewSchema = z.object({
  id: z.uuid(),
  kind: z.enum(approvalKinds),
  status: z.enum(approvalStatuses),
  amountMinor: z.number().int(),
  costMinor: z.number().int().describe('Agency commission, legal costs, or the amount a settlement waives'),
  currency: z.string(),
  reason: z.string(),
  requestedBy: z.string(),
  deadlineAt: z.string(),
  createdAt: z.string(),
  decidedBy: z.string().nullable(),
  decisionReason: z.string().nullable(),
  invoice: z.object({ externalId: z.string(), number: z.string(), dueDate: z.string() }),
  customer: z.object({ externalId: z.string(), name: z.string() }),
  workflowId: z.string(),
});

/** Validator refusals from the workflow, as HTTP: a stale or decided request is a 409. */
const refusals: Record<string, { status: number; slug: string }> = {
  NoSuchPendingApproval: { status: 409, slug: 'approval-not-pending' },
  AlreadyDecided: { status: 409, slug: 'approval-already-decided' },
  NotAnApprover: { status: 403, slug: 'not-an-approver' },
  SelfApproval: { status: 403, slug: 'self-approval' },
  ReasonRequired: { status: 400, slug: 'validation' },
};

export const approvalRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    const select = () =>
      db.db
        .select({ approval: approvals, invoice: invoices, customer: customers, workflowId: collectionCases.workflowId })
        .from(approvals)
        .innerJoin(collectionCases, eq(collectionCases.id, approvals.caseId))
        .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
        .innerJoin(customers, eq(customers.id, invoices.customerId));
    const view = (row: Awaited<ReturnType<typeof select>>[number]) => ({
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
      workflowId: row.workflowId,
    });

    app.get(
      '/approvals',
      {
        onRequest: requireRole(db.db, 'admin', 'approver', 'collector', 'viewer'),
        schema: {
          tags: ['approvals'],
          summary: 'Approval requests, pending ones by default, largest amounts first',
          security: [{ apiKey: [] }],
          querystring: z.object({
            status: z.enum(approvalStatuses).default('pending'),
            kind: z.enum(approvalKinds).optional(),
            minAmountMinor: z.coerce.number().int().nonnegative().optional(),
            limit: z.coerce.number().int().min(1).max(200).default(50),
          }),
          response: { 200: z.object({ approvals: z.array(approvalViewSchema) }), ...problemResponses },
        },
      },
      async (request) => {
        const q = request.query;
        const where: SQL[] = [eq(approvals.status, q.status)];
        if (q.kind) where.push(eq(approvals.kind, q.kind));
        if (q.minAmountMinor !== undefined) where.push(gte(approvals.amountMinor, q.minAmountMinor));
        const rows = await select()
          .where(and(...where))
          .orderBy(desc(approvals.amountMinor), asc(approvals.createdAt))
          .limit(q.limit);
        return { approvals: rows.map(view) };
      },
    );

    app.get(
      '/approvals/:id',
      {
        onRequest: requireRole(db.db, 'admin', 'approver', 'collector', 'viewer'),
        schema: {
          tags: ['approvals'],
          summary: 'One approval request with its case context',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          response: { 200: approvalViewSchema, ...problemResponses },
        },
      },
      async (request) => {
        const [row] = await select().where(eq(approvals.id, request.params.id));
        if (!row) throw new HttpProblem(404, 'approval-not-found', 'Unknown approval', `No approval ${request.params.id}.`);
        return view(row);
      },
    );

    app.post(
      '/approvals/:id/decision',
      {
        onRequest: requireRole(db.db, 'admin', 'approver'),
        schema: {
          tags: ['approvals'],
          summary: 'Approve or reject; the answer says at once whether the decision was accepted',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          body: z.object({ decision: z.enum(['approve', 'reject']), reason: z.string().trim().min(3).max(2000) }),
          response: {
            200: z.object({ approvalId: z.string(), decision: z.enum(['approve', 'reject']), recordedAt: z.string() }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const [row] = await select().where(eq(approvals.id, request.params.id));
        if (!row) throw new HttpProblem(404, 'approval-not-found', 'Unknown approval', `No approval ${request.params.id}.`);
        const caller = request.caller!;
        try {
          return await services.temporal.workflow.getHandle(row.workflowId).executeUpdate(decideApprovalUpdate, {
            args: [
              {
                approvalId: row.approval.id,
                decision: request.body.decision,
                reason: request.body.reason,
                decidedBy: { name: caller.name, role: caller.role },
              },
            ],
          });
        } catch (err) {
          const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
          if (cause instanceof ApplicationFailure && cause.type && refusals[cause.type]) {
            const { status, slug } = refusals[cause.type]!;
            throw new HttpProblem(status, slug, 'Decision not accepted', cause.message);
          }
          if (row.approval.status !== 'pending') {
            throw new HttpProblem(409, 'approval-already-decided', 'Decision not accepted', `This request was already ${row.approval.status}.`);
          }
          request.log.error({ err }, 'deciding an approval failed');
          throw new HttpProblem(503, 'temporal-unavailable', 'Decision not delivered', 'The case could not be reached; try again.');
        }
      },
    );
  };
