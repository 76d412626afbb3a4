import { eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { auditEvents, collectionCases, communications, customers, invoices } from '../db/schema';
import { daysOverdue } from '../domain/collection';
import { formatMoney, type Currency } from '../domain/money';

export type SendReminderInput = {
  workflowId: string;
  invoiceId: string;
  /** 1-based position in the ladder; with the workflow id, the idempotency key. */
  step: number;
  offsetDays: number;
  amountOutstandingMinor: number;
  /** Workflow time when the step ran (ISO instant): the "days overdue" in the text. */
  at: string;
};

export type SendReminderResult = { communicationId: string; created: boolean };

export type ReminderDeps = { db: Database };

/**
 * Records the reminder for a ladder step and its audit event in one transaction. Keyed by
 * workflow id + step: a retried activity or a restarted worker finds the row and changes nothing.
 */
export async function sendReminder(deps: ReminderDeps, input: SendReminderInput): Promise<SendReminderResult> {
  const idempotencyKey = `${input.workflowId}:reminder:${input.step}`;
  return deps.db.transaction(async (tx) => {
    const [existing] = await tx
      .select({ id: communications.id })
      .from(communications)
      .where(eq(communications.idempotencyKey, idempotencyKey));
    if (existing) return { communicationId: existing.id, created: false };

    const [row] = await tx
      .select({ invoice: invoices, customer: customers, caseId: collectionCases.id })
      .from(collectionCases)
      .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
      .innerJoin(customers, eq(customers.id, invoices.customerId))
      .where(eq(collectionCases.workflowId, input.workflowId));
    if (!row) throw new Error(`no collection case for workflow ${input.workflowId}`);

    const { invoice, customer } = row;
    const amount = formatMoney(input.amountOutstandingMinor, invoice.currency as Currency, customer.locale);
    const overdueDays = daysOverdue(invoice.dueDate, new Date(input.at));
    const subject = `Reminder: invoice ${invoice.number} (${amount}) is overdue`;
    const body =
      `Dear ${customer.name},\n\n` +
      `our records show that invoice ${invoice.number}, due on ${invoice.dueDate}, ` +
      `has ${amount} outstanding (${overdueDays} days overdue). ` +
      `If you have already paid, thank you, and please ignore this message. ` +
      `Otherwise we would be grateful for your payment at your earliest convenience.\n`;

    const [created] = await tx
      .insert(communications)
      .values({
        caseId: row.caseId,
        idempotencyKey,
        channel: 'email',
        template: `reminder-${input.step}`,
        locale: customer.locale,
        recipient: customer.email,
        subject,
        body,
        status: 'recorded',
        createdAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: communications.idempotencyKey })
      .returning({ id: communications.id });
    if (!created) throw new Error(`reminder ${idempotencyKey} was recorded concurrently; retrying reads it`);

    await tx
      .insert(auditEvents)
      .values({
        caseId: row.caseId,
        invoiceId: invoice.id,
        actor: 'workflow',
        type: 'communication.recorded',
        data: { communicationId: created.id, channel: 'email', step: input.step, offsetDays: input.offsetDays },
        dedupeKey: idempotencyKey,
        occurredAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: auditEvents.dedupeKey });
    return { communicationId: created.id, created: true };
  });
}
