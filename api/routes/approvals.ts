import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { approvalKinds, approvalStatuses } from '../../db/schema';
import { decideApproval, getApproval, listApprovals } from '../approval-service';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { problemResponses } from '../problem';
import { queryDaysSchema } from '../schemas';

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
  amountOutstandingMinor: z.number().int().describe("The case's balance now"),
});

export const approvalRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
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
            minAgeDays: queryDaysSchema.nonnegative().optional().describe('Only requests made at least this many days ago'),
            limit: z.coerce.number().int().min(1).max(200).default(50),
          }),
          response: { 200: z.object({ approvals: z.array(approvalViewSchema) }), ...problemResponses },
        },
      },
      async (request) => ({ approvals: await listApprovals(services, request.query) }),
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
      async (request) => getApproval(services, request.params.id),
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
      async (request) => decideApproval(services, request.params.id, request.body, request.caller!),
    );
  };
