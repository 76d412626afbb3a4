import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { approvals, auditEvents, collectionCases, communications, handovers } from '../db/schema';
import { daysOverdue } from '../domain/collection';
import { formatMoney, type Currency } from '../domain/money';
import type { ApprovalKind, GatedAction } from '../domain/policy';
import { loadCase, type ChannelDeps } from './channels';
import { escapeHtml, renderMessage } from './templates';

export type ApprovalDeps = ChannelDeps & {
  approverEmails: string[];
  /** Who takes over an approved referral: the collection agency and the attorney (e-mail). */
  handoverEmails: { agency_referral?: string; legal_action?: string };
};

export type RequestApprovalInput = {
  workflowId: string;
  stepId: string;
  kind: ApprovalKind;
  amountMinor: number;
  costMinor: number;
  reason: string;
  requestedBy: string;
  approverRoles: string[];
  deadlineAt: string;
  /** Workflow time of the request. */
  at: string;
};


/**
 * E-mails the approvers about a request, once per request, purpose and address (recorded as
 * communications of the case, so the timeline shows who was asked and when).
 */
async function notifyApprovers(
  deps: ApprovalDeps,
  addresses: string[],
  request: typeof approvals.$inferSelect,
  purpose: ApproverNotice,
  at: string,
): Promise<void> {
  if (addresses.length === 0) return;
  const c = await loadCase(deps.db, (await workflowIdOf(deps.db, request.caseId))!);
  const message = renderMessage({
    template: 'approval_request',
    tone: purpose === 'request' ? 'firm' : 'final',
    locale: 'en',
    customerName: c.customer.name,
    invoiceNumber: c.invoice.number,
    amountOutstandingMinor: request.amountMinor,
    currency: request.currency as Currency,
    dueDate: c.invoice.dueDate,
    daysOverdue: daysOverdue(c.invoice.dueDate, new Date(at)),
    businessName: deps.business.name,
    action: request.kind,
    reason: request.reason,
    deadline: request.deadlineAt.toISOString(),
  });
  const subject = purpose === 'request' ? message.subject : `${purpose === 'reminder' ? 'Reminder' : 'Escalated'}: ${message.subject}`;
  for (const to of addresses) {
    await sendStaffEmail(deps, {
      caseId: request.caseId,
      idempotencyKey: `${request.requestKey}:${purpose}:${to}`,
      template: 'approval_request',
      to,
      subject,
      text: message.text,
      html: message.html,
      at,
    });
  }
}

/**
 * An e-mail to the business's own people or partners (approvers, agency, attorney), once per
 * idempotency key, recorded as a communication of the case. A refused address must not stop
 * the case: it is recorded as failed, on the timeline. Temporary errors are retried.
 */
async function sendStaffEmail(
  deps: ApprovalDeps,
  mail: { caseId: string; idempotencyKey: string; template: string; to: string; subject: string; text: string; html: string; at: string },
): Promise<void> {
  const [existing] = await deps.db.select().from(communications).where(eq(communications.idempotencyKey, mail.idempotencyKey));
  if (existing?.status === 'sent') return;
  let outcome: { status: 'sent' | 'failed'; providerMessageId: string | null; failureReason: string | null };
  try {
    const { messageId } = await deps.mailer.send({ to: mail.to, subject: mail.subject, text: mail.text, html: mail.html, idempotencyKey: mail.idempotencyKey });
    outcome = { status: 'sent', providerMessageId: messageId, failureReason: null };
  } catch (err) {
    if (!(err instanceof ApplicationFailure && err.nonRetryable)) throw err;
    outcome = { status: 'failed', providerMessageId: null, failureReason: err.message };
  }
  await deps.db
    .insert(communications)
    .values({
      caseId: mail.caseId,
      idempotencyKey: mail.idempotencyKey,
      channel: 'email',
      template: mail.template,
      locale: 'en',
      recipient: mail.to,
      subject: mail.subject,
      body: mail.text,
      createdAt: new Date(mail.at),
      ...outcome,
    })
    .onConflictDoUpdate({ target: communications.idempotencyKey, set: outcome });
}

async function workflowIdOf(db: Database, caseId: string): Promise<string | undefined> {
  const [row] = await db.select({ workflowId: collectionCases.workflowId }).from(collectionCases).where(eq(collectionCases.id, caseId));
  return row?.workflowId;
}

async function loadApproval(db: Database, approvalId: string) {
  const [row] = await db.select().from(approvals).where(eq(approvals.id, approvalId));
  if (!row) throw ApplicationFailure.nonRetryable(`no approval ${approvalId}`, 'ApprovalNotFound');
  return row;
}

export type ApproverNotice = 'request' | 'reminder' | 'escalation';

/**
 * Records an approval request, once per workflow + step; the workflow then asks the approvers.
 * A request decided before (by a run of the case that Temporal then lost, the case started
 * again) comes back with its decision, which stands.
 */
export async function requestApproval(deps: ApprovalDeps, input: RequestApprovalInput): Promise<{ approvalId: string; decided?: 'approve' | 'reject' }> {
  const requestKey = `${input.workflowId}:${input.stepId}:approval`;
  const c = await loadCase(deps.db, input.workflowId);
  const request = await deps.db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(approvals)
      .values({
        caseId: c.caseId,
        requestKey,
        stepId: input.stepId,
        kind: input.kind,
        amountMinor: input.amountMinor,
        currency: c.invoice.currency,
        costMinor: input.costMinor,
        reason: input.reason,
        requestedBy: input.requestedBy,
        approverRoles: input.approverRoles,
        deadlineAt: new Date(input.deadlineAt),
        createdAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: approvals.requestKey })
      .returning();
    if (inserted) {
      await tx.insert(auditEvents).values({
        caseId: c.caseId,
        invoiceId: c.invoice.id,
        actor: input.requestedBy,
        type: 'approval.requested',
        data: { approvalId: inserted.id, kind: input.kind, amountMinor: input.amountMinor, costMinor: input.costMinor },
        occurredAt: new Date(input.at),
      });
      return inserted;
    }
    return (await tx.select().from(approvals).where(eq(approvals.requestKey, requestKey)))[0]!;
  });
  if (request.status === 'approved' || request.status === 'rejected') return { approvalId: request.id, decided: request.status === 'approved' ? 'approve' : 'reject' };
  return { approvalId: request.id };
}

/**
 * Tells the approvers about a request; past the deadline reminds them; escalating, tells the
 * fallback approvers as well.
 */
export async function chaseApprovers(
  deps: ApprovalDeps,
  input: { approvalId: string; purpose: ApproverNotice; fallbackApprovers: string[]; at: string },
): Promise<void> {
  const request = await loadApproval(deps.db, input.approvalId);
  if (input.purpose === 'request') {
    await notifyApprovers(deps, deps.approverEmails, request, 'request', input.at);
    return;
  }
  const column = input.purpose === 'reminder' ? { remindedAt: new Date(input.at) } : { escalatedAt: new Date(input.at) };
  await deps.db.update(approvals).set(column).where(eq(approvals.id, request.id));
  await deps.db
    .insert(auditEvents)
    .values({
      caseId: request.caseId,
      actor: 'workflow',
      type: `approval.${input.purpose === 'reminder' ? 'reminded' : 'escalated'}`,
      data: { approvalId: request.id },
      dedupeKey: `${request.requestKey}:${input.purpose}`,
      occurredAt: new Date(input.at),
    })
    .onConflictDoNothing({ target: auditEvents.dedupeKey });
  const to = input.purpose === 'reminder' ? deps.approverEmails : [...deps.approverEmails, ...input.fallbackApprovers];
  await notifyApprovers(deps, [...new Set(to)], request, input.purpose, input.at);
}

/** Writes the decision the workflow accepted; repeating it changes nothing. */
export async function recordApprovalDecision(
  deps: { db: Database },
  input: { approvalId: string; decision: 'approve' | 'reject'; reason: string; decidedBy: string; at: string },
): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(approvals)
      .set({
        status: input.decision === 'approve' ? 'approved' : 'rejected',
        decidedBy: input.decidedBy,
        decidedAt: new Date(input.at),
        decisionReason: input.reason,
      })
      .where(and(eq(approvals.id, input.approvalId), eq(approvals.status, 'pending')))
      .returning();
    if (!updated) return;
    await tx.insert(auditEvents).values({
      caseId: updated.caseId,
      actor: input.decidedBy,
      type: input.decision === 'approve' ? 'approval.approved' : 'approval.rejected',
      data: { approvalId: updated.id, kind: updated.kind, reason: input.reason },
      occurredAt: new Date(input.at),
    });
  });
}

/**
 * Carries out an approved escalation: the agency placement, legal case, write-off ledger
 * entry or debt sale record. One per approval.
 */
export async function executeHandover(
  deps: ApprovalDeps,
  input: { approvalId: string; amountMinor: number; at: string },
): Promise<{ handoverId: string }> {
  const result = await recordHandover(deps, input);
  await noticeToTakeover(deps, input);
  return result;
}

/**
 * Tells the agency or attorney, once per handover, what they take over: debtor, invoice,
 * amount, and the case history so far is theirs to ask for. A refused address is noted, not fatal.
 */
async function noticeToTakeover(deps: ApprovalDeps, input: { approvalId: string; amountMinor: number; at: string }): Promise<void> {
  const request = await loadApproval(deps.db, input.approvalId);
  const to = deps.handoverEmails[request.kind as 'agency_referral' | 'legal_action'];
  if (!to) return;
  const idempotencyKey = `${request.requestKey}:handover-notice`;
  const c = await loadCase(deps.db, (await workflowIdOf(deps.db, request.caseId))!);
  const amount = formatMoney(input.amountMinor, request.currency as Currency, 'en-GB');
  const subject = `${request.kind === 'agency_referral' ? 'New placement' : 'New legal case'}: ${c.customer.name}, invoice ${c.invoice.number}, ${amount}`;
  const address = c.customer.postalAddress
    ? [c.customer.postalAddress.line1, c.customer.postalAddress.postalCode, c.customer.postalAddress.city, c.customer.postalAddress.country].join(', ')
    : 'no postal address on file';
  const text = [
    `${deps.business.name} hands over the following account (approved by ${request.decidedBy}).`,
    `Debtor: ${c.customer.name} (${c.customer.externalId}), ${c.customer.email ?? 'no e-mail'}, ${c.customer.phone ?? 'no phone'}, ${address}.`,
    `Invoice ${c.invoice.number}, issued ${c.invoice.issueDate}, due ${c.invoice.dueDate}; outstanding ${amount}.`,
    `Reason: ${request.reason}`,
  ].join('\n\n');
  await sendStaffEmail(deps, {
    caseId: request.caseId,
    idempotencyKey,
    template: `${request.kind}_handover`,
    to,
    subject,
    text,
    html: `<pre>${escapeHtml(text)}</pre>`,
    at: input.at,
  });
}

async function recordHandover(deps: { db: Database }, input: { approvalId: string; amountMinor: number; at: string }): Promise<{ handoverId: string }> {
  const request = await loadApproval(deps.db, input.approvalId);
  if (request.kind === 'settlement') throw ApplicationFailure.nonRetryable('a settlement is not a handover', 'NotAHandover');
  if (request.status !== 'approved') {
    throw ApplicationFailure.nonRetryable(`approval ${request.id} is ${request.status}, not approved`, 'NotApproved');
  }
  return deps.db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(handovers)
      .values({
        caseId: request.caseId,
        approvalId: request.id,
        kind: request.kind as GatedAction,
        amountMinor: input.amountMinor,
        currency: request.currency,
        details: { approvedBy: request.decidedBy, reason: request.reason },
        createdAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: handovers.approvalId })
      .returning({ id: handovers.id });
    if (!inserted) {
      const [existing] = await tx.select({ id: handovers.id }).from(handovers).where(eq(handovers.approvalId, request.id));
      return { handoverId: existing!.id };
    }
    await tx.insert(auditEvents).values({
      caseId: request.caseId,
      actor: 'workflow',
      type: `handover.${request.kind}`,
      data: { handoverId: inserted.id, approvalId: request.id, amountMinor: input.amountMinor },
      occurredAt: new Date(input.at),
    });
    return { handoverId: inserted.id };
  });
}
