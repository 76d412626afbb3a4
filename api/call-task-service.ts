import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { auditEvents, callTasks, callTaskStatuses, collectionCases, customers, invoices } from '../db/schema';
import { daysOverdue } from '../domain/collection';
import type { Caller } from './auth';
import type { ServiceDeps } from './invoice-service';
import { HttpProblem } from './problem';

export const callTaskViewSchema = z.object({
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
export type CallTaskView = z.infer<typeof callTaskViewSchema>;

type Row = { task: typeof callTasks.$inferSelect; caseRow: typeof collectionCases.$inferSelect; invoice: typeof invoices.$inferSelect; customer: typeof customers.$inferSelect };

function callTaskView({ task, caseRow, invoice, customer }: Row, now: Date): CallTaskView {
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

const joined = ({ db }: ServiceDeps) =>
  db
    .select({ task: callTasks, caseRow: collectionCases, invoice: invoices, customer: customers })
    .from(callTasks)
    .innerJoin(collectionCases, eq(collectionCases.id, callTasks.caseId))
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .innerJoin(customers, eq(customers.id, invoices.customerId));

/**
 * The collectors' worklist: the phone calls ladder steps asked for, the earliest due first. A
 * task whose case closed, or whose debtor disputes or asked not to be contacted, is withdrawn
 * by the case itself (activities/case-state.ts), so an open task is one to call.
 */
export async function listCallTasks(deps: ServiceDeps, filter: { status: CallTaskView['status']; limit: number; offset: number }) {
  const [rows, [count]] = await Promise.all([
    joined(deps).where(eq(callTasks.status, filter.status)).orderBy(asc(callTasks.dueAt), asc(callTasks.createdAt)).limit(filter.limit).offset(filter.offset),
    deps.db.select({ total: sql<number>`count(*)::int` }).from(callTasks).where(eq(callTasks.status, filter.status)),
  ]);
  const now = new Date();
  return { tasks: rows.map((r) => callTaskView(r, now)), total: count?.total ?? 0, limit: filter.limit, offset: filter.offset };
}

/**
 * A call's outcome: the task is done under the caller's name, and the outcome goes on the case's
 * timeline. The same outcome again answers the task as it is; a task done with another outcome,
 * or withdrawn, is a 409 that says so.
 */
export async function recordCallOutcome(deps: ServiceDeps, id: string, outcome: string, caller: Caller): Promise<CallTaskView> {
  const now = new Date();
  await deps.db.transaction(async (tx) => {
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
  const [row] = await joined(deps).where(eq(callTasks.id, id));
  return callTaskView(row!, now);
}
