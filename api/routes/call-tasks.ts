import { and, asc, eq, sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { auditEvents, callTasks, callTaskStatuses, collectionCases, customers, invoices } from '../../db/schema';
import { daysOverdue } from '../../domain/collection';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { HttpProblem, problemResponses } from '../problem';
import { reasonSchema } from '../schemas';

const callTaskViewSchema = z.object({
  id: z.uuid(),
  status: z.enum(callTaskStatuses),
  dueAt: z.string(),
  template: z.string(),
  brief: z.string().describe('What to say and why'),
  phone: z.string().nullable(),
  invoiceExternalId: z.string(),
  invoiceNumber: z.string(),
  customerExternalId: z.string(),
  customerName: z.string(),
  currency: z.string(),
  amountOutstandingMinor: z.number().int().describe("The case's balance now"),
  daysOverdue: z.number().int(),
  caseStage: z.string(),
  assignedTo: z.string().nullable(),
  outcome: z.string().nullable().describe('What the call achieved, or why the task was withdrawn'),
  completedAt: z.string().nullable(),
});

type Row = { task: typeof callTasks.$inferSelect; caseRow: typeof collectionCases.$inferSelect; invoice: typeof invoices.$inferSelect; customer: typeof customers.$inferSelect };

function callTaskView({ task, caseRow, invoice, customer }: Row, now: Date): z.infer<typeof callTaskViewSchema> {
  return {
    id: task.id,
    status: task.status,
    dueAt: task.dueAt.toISOString(),
    template: task.template,
    brief: task.brief,
    phone: task.phone,
    invoiceExternalId: invoice.externalId,
    invoiceNumber: invoice.number,
    customerExternalId: customer.externalId,
    customerName: customer.name,
    currency: invoice.currency,
    amountOutstandingMinor: caseRow.amountOutstandingMinor,
    daysOverdue: daysOverdue(invoice.dueDate, now),
    caseStage: caseRow.stage,
    assignedTo: task.assignedTo,
    outcome: task.outcome,
    completedAt: task.completedAt?.toISOString() ?? null,
  };
}

/**
 * The collectors' worklist: the phone calls ladder steps asked for, the earliest due first. A
 * task whose case closed, or whose debtor disputes or asked not to be contacted, is withdrawn
 * by the case itself (activities/case-state.ts), so an open task is one to call.
 */
export const callTaskRoutes =
  ({ db }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    const joined = () =>
      db.db
        .select({ task: callTasks, caseRow: collectionCases, invoice: invoices, customer: customers })
        .from(callTasks)
        .innerJoin(collectionCases, eq(collectionCases.id, callTasks.caseId))
        .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
        .innerJoin(customers, eq(customers.id, invoices.customerId));

    app.get(
      '/call-tasks',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'viewer'),
        schema: {
          tags: ['call tasks'],
          summary: 'The call worklist, earliest due first (open tasks by default)',
          security: [{ apiKey: [] }],
          querystring: z.object({
            status: z.enum(callTaskStatuses).default('open'),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            offset: z.coerce.number().int().min(0).default(0),
          }),
          response: {
            200: z.object({ tasks: z.array(callTaskViewSchema), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const q = request.query;
        const [rows, [count]] = await Promise.all([
          joined().where(eq(callTasks.status, q.status)).orderBy(asc(callTasks.dueAt), asc(callTasks.createdAt)).limit(q.limit).offset(q.offset),
          db.db.select({ total: sql<number>`count(*)::int` }).from(callTasks).where(eq(callTasks.status, q.status)),
        ]);
        const now = new Date();
        return { tasks: rows.map((r) => callTaskView(r, now)), total: count?.total ?? 0, limit: q.limit, offset: q.offset };
      },
    );

    app.post(
      '/call-tasks/:id/outcome',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['call tasks'],
          summary: "Record a call's outcome: the task is done, and the outcome goes on the case's timeline",
          description:
            'Sent again with the same outcome, it answers the task as it is. A task done with another outcome, or withdrawn ' +
            'because the case no longer wants the call (paid, disputed, no contact), is a 409 that says so.',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          body: z.object({ outcome: reasonSchema.describe('What the call achieved (spoke to AP, left a voicemail, promised Friday)') }),
          response: { 200: callTaskViewSchema, ...problemResponses },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { outcome } = request.body;
        const caller = request.caller!;
        const now = new Date();
        await db.db.transaction(async (tx) => {
          const [task] = await tx.select().from(callTasks).where(eq(callTasks.id, id)).for('update');
          if (!task) throw new HttpProblem(404, 'call-task-not-found', 'No such call task', `There is no call task ${id}.`);
          if (task.status === 'done' && task.outcome === outcome) return;
          if (task.status !== 'open') {
            throw new HttpProblem(409, 'call-task-closed', `The call task is ${task.status}`, `Call task ${id} is ${task.status}: ${task.outcome ?? 'no outcome recorded'}.`);
          }
          await tx.update(callTasks).set({ status: 'done', outcome, assignedTo: caller.name, completedAt: now }).where(and(eq(callTasks.id, id), eq(callTasks.status, 'open')));
          const [caseRow] = await tx.select({ invoiceId: collectionCases.invoiceId }).from(collectionCases).where(eq(collectionCases.id, task.caseId));
          await tx.insert(auditEvents).values({ caseId: task.caseId, invoiceId: caseRow?.invoiceId ?? null, actor: caller.name, type: 'call_task.done', data: { callTaskId: id, template: task.template, outcome } });
        });
        const [row] = await joined().where(eq(callTasks.id, id));
        return callTaskView(row!, now);
      },
    );
  };
