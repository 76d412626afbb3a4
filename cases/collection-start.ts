/**
 * How a collection case's workflow is started and messaged: one piece of code for the API
 * (registration, payments, credit notes, cancellations) and the overdue sweep's activity.
 */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy, type SignalDefinition } from '@temporalio/common';
import { z } from 'zod';
import type { Database } from '../db/client';
import { approvals, auditEvents, collectionCases, commandOutbox, disputes, invoiceAdjustments, payments, type customers, type invoices } from '../db/schema';
import { collectionWorkflowId, type CollectionInput } from '../domain/collection';
import type { Currency } from '../domain/money';
import { searchAttributes, type InvoiceAdjusted, type PaymentReceived } from '../workflows/messages';
import { pinnedPolicy } from './policies';

/** What starting or messaging a case needs: the database, a Temporal client, the workers' task queue. */
export type CaseStartDeps = { db: Database; temporal: Client; taskQueue: string };

/** A stored case with the invoice and customer its workflow input is made of. */
export type StoredCase = {
  invoice: typeof invoices.$inferSelect;
  customer: Pick<typeof customers.$inferSelect, 'externalId' | 'timeZone'>;
  caseRow: typeof collectionCases.$inferSelect;
};

/** The workflow's input: the stored invoice, the balance its case opened with, and its pinned policy. */
async function collectionInput(db: Database, { invoice, customer, caseRow }: StoredCase): Promise<CollectionInput> {
  const policy = await pinnedPolicy(db, caseRow.policyId);
  return {
    invoiceId: invoice.id,
    invoiceExternalId: invoice.externalId,
    invoiceNumber: invoice.number,
    customerExternalId: customer.externalId,
    customerTimeZone: customer.timeZone,
    currency: invoice.currency as Currency,
    // With every stored payment and correction applied again below, by id.
    amountOutstandingMinor: caseRow.openingAmountMinor,
    dueDate: invoice.dueDate,
    policyId: policy.id,
    policy: policy.definition,
    ...(await storedMoney(db, invoice.id, caseRow.id, ranBefore(caseRow))),
    ...(ranBefore(caseRow) ? await numberedBefore(db, caseRow.id) : {}),
  };
}

/** Whether a run of this case has written its state: only then can it have left disputes, offers and plans behind. */
const ranBefore = (caseRow: StoredCase['caseRow']) => caseRow.stateSeq > 0;

/**
 * What earlier runs of the case numbered (none for a first start): disputes and settlement
 * offers by their rows, payment plans by their timeline events.
 */
async function numberedBefore(db: Database, caseId: string): Promise<Pick<CollectionInput, 'numbered'>> {
  const count = sql<string>`count(*)`;
  const [[d], [s], [held], [sent]] = await Promise.all([
    db.select({ n: count }).from(disputes).where(eq(disputes.caseId, caseId)),
    db.select({ n: count }).from(approvals).where(and(eq(approvals.caseId, caseId), eq(approvals.kind, 'settlement'))),
    db.select({ n: count }).from(auditEvents).where(and(eq(auditEvents.caseId, caseId), eq(auditEvents.type, 'case.payment_plan'))),
    // A plan replaced before it was ever held leaves no event: the plans sent count it. More is
    // harmless (a number skipped); fewer would reuse a plan's sent reminders.
    db.select({ n: count }).from(commandOutbox).where(and(eq(commandOutbox.caseId, caseId), eq(commandOutbox.name, 'payment-plan'))),
  ]);
  const numbered = { disputes: Number(d?.n ?? 0), settlements: Number(s?.n ?? 0), plans: Math.max(Number(held?.n ?? 0), Number(sent?.n ?? 0)) };
  return numbered.disputes + numbered.settlements + numbered.plans > 0 ? { numbered } : {};
}

/**
 * Payments and corrections already stored for the invoice. The workflow applies them first,
 * once each by id, so a case that starts late (from the sweep, or with a later message) does
 * not chase money that was paid or credited while it was not running. A dispute an earlier run
 * resolved with a credit counts as a credit note.
 */
async function storedMoney(db: Database, invoiceId: string, caseId: string, ranBefore: boolean): Promise<Pick<CollectionInput, 'priorPayments' | 'priorAdjustments'>> {
  const [paid, adjusted, credited] = await Promise.all([
    db.select().from(payments).where(eq(payments.invoiceId, invoiceId)).orderBy(asc(payments.receivedAt)),
    db.select().from(invoiceAdjustments).where(eq(invoiceAdjustments.invoiceId, invoiceId)).orderBy(asc(invoiceAdjustments.createdAt)),
    // Only an earlier run resolves disputes: a first start (the hot path of registration) skips the query.
    ranBefore
      ? db
          .select()
          .from(disputes)
          .where(and(eq(disputes.caseId, caseId), eq(disputes.resolution, 'customer_favour'), gt(disputes.creditMinor, 0)))
          .orderBy(asc(disputes.resolvedAt))
      : [],
  ]);
  const disputeCredits = credited.map((d) => ({
    adjustmentId: `dispute:${d.disputeKey}`,
    by: d.resolvedBy ?? d.openedBy,
    kind: 'credited' as const,
    creditMinor: d.creditMinor!,
    reason: d.resolutionNote ?? 'dispute resolved in the debtor favour',
  }));
  return { priorPayments: paid.map(paymentMessage), priorAdjustments: [...adjusted.map(adjustmentMessage), ...disputeCredits] };
}

/** A stored payment as the case hears of it (signal or prior payment). */
export function paymentMessage(row: typeof payments.$inferSelect): PaymentReceived {
  return { paymentId: row.id, amountMinor: row.amountMinor, currency: row.currency as Currency, receivedAt: row.receivedAt.toISOString() };
}

/** A stored credit note or cancellation as the case hears of it (signal or prior adjustment). */
export function adjustmentMessage(row: typeof invoiceAdjustments.$inferSelect): InvoiceAdjusted {
  return {
    adjustmentId: row.adjustmentId,
    by: row.recordedBy,
    kind: row.kind === 'cancellation' ? 'cancelled' : 'credited',
    ...(row.amountMinor !== null ? { creditMinor: row.amountMinor } : {}),
    reason: row.reason,
  };
}

/**
 * The id derived from the invoice. A workflow that completed closed its case, which is never
 * started again; one that ended otherwise (terminated from the Temporal UI, failed, timed out)
 * left its case open, and a start begins a new run for it.
 */
async function startOptions(deps: CaseStartDeps, stored: StoredCase, pausedAtStart?: CollectionInput['pausedAtStart'], memo?: RestartMemo) {
  const input = { ...(await collectionInput(deps.db, stored)), ...(pausedAtStart ? { pausedAtStart } : {}) };
  return {
    ...(memo ? { memo } : {}),
    workflowId: collectionWorkflowId(input.invoiceExternalId),
    taskQueue: deps.taskQueue,
    args: [input] as [CollectionInput],
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    typedSearchAttributes: [
      { key: searchAttributes.invoiceId, value: input.invoiceExternalId },
      { key: searchAttributes.customerId, value: input.customerExternalId },
      { key: searchAttributes.currency, value: input.currency },
      { key: searchAttributes.stage, value: 'Scheduled' },
      { key: searchAttributes.amountOutstanding, value: input.amountOutstandingMinor },
    ],
  };
}

/**
 * Records that the case's workflow runs, so the sweep looks no further at it. Only while the
 * workflow has reported nothing: from its first report on, the row is the workflow's to write.
 */
async function markStarted(db: Database, caseId: string, at: Date): Promise<void> {
  await db
    .update(collectionCases)
    // Checked now: a case that just started does not go ahead of older ones in the sweep's check.
    .set({ stage: 'Scheduled', startedAt: at, updatedAt: at, workflowCheckedAt: at })
    .where(and(eq(collectionCases.id, caseId), eq(collectionCases.stage, 'NotStarted'), eq(collectionCases.stateSeq, 0)));
}

/**
 * Starts a case's workflow: at registration when its start time has come, else from the
 * overdue sweep. Idempotent: a second start of the same workflow id is refused, and that
 * answer means the case runs (or ran) already.
 */
export async function startCollection(deps: CaseStartDeps, stored: StoredCase, at: Date): Promise<'started' | 'already_started'> {
  let result: 'started' | 'already_started' = 'started';
  try {
    await deps.temporal.workflow.start('invoiceCollection', await startOptions(deps, stored));
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    result = 'already_started';
  }
  await markStarted(deps.db, stored.caseRow.id, at);
  return result;
}

/**
 * How long a message's delivery may wait for Temporal. While the server is down the client
 * retries for about 18 s before it gives up; a collector recording a payment should hear
 * "queued" (the outbox delivers it later, and the workflow counts it once) well before that.
 */
const deliveryDeadlineMs = 5_000;

function bounded<T>(deps: CaseStartDeps, call: () => Promise<T>): Promise<T> {
  return deps.temporal.connection.withDeadline(Date.now() + deliveryDeadlineMs, call);
}

/**
 * Delivers a message (payment, credit note, cancellation) with signal-with-start: a case whose
 * workflow is not running yet (its start time has not come, or its start failed) starts now
 * with the message in hand, so the workflow stays the one writer of the balance; so does one
 * whose workflow Temporal lost or that ended without closing the case (see startOptions).
 * 'case_closed' when the workflow completed: a closed case is never started again.
 */
export async function signalCollection<Message>(
  deps: CaseStartDeps,
  stored: StoredCase,
  signal: SignalDefinition<[Message]>,
  message: Message,
  at: Date,
): Promise<'delivered' | 'case_closed'> {
  // A closed case stays closed, also once Temporal's retention has deleted its workflow.
  if (stored.caseRow.stage === 'Closed') return 'case_closed';
  // Most cases run already: a plain signal needs neither the policy nor the workflow input.
  if (stored.caseRow.stage !== 'NotStarted') {
    try {
      await bounded(deps, () => deps.temporal.workflow.getHandle(stored.caseRow.workflowId).signal(signal, message));
      return 'delivered';
    } catch (err) {
      // Not running (its start failed, or it has ended): signal-with-start sorts out which.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
  // A case that ran before and is not running now lost its workflow, or it ended without closing
  // the case: its new run starts paused, as an operator's restart does (restartCollection).
  // Its pause is on the timeline as the workflow's own (case.paused, by arrears).
  const pause = stored.caseRow.stage === 'NotStarted' ? undefined : { by: 'arrears', reason: `started again by a ${signal.name} message after its workflow was lost or ended; check the timeline, then resume` };
  try {
    const signalArgs: [Message] = [message];
    const options = { ...(await startOptions(deps, stored, pause, pause && { restartedBy: pause.by })), signal, signalArgs };
    await bounded(deps, () => deps.temporal.workflow.signalWithStart('invoiceCollection', options));
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return 'case_closed';
  }
  await markStarted(deps.db, stored.caseRow.id, at);
  return 'delivered';
}

/**
 * Starts a case's workflow again after Temporal lost it or it ended without closing the case
 * (terminated from the Temporal UI, failed, timed out): a new run from the invoice's opening
 * balance and every stored payment and correction, paused from its first moment, because what
 * the lost run knew of disputes, promises and plans is only in the audit trail, for a person to
 * read before resuming. Refused (WorkflowExecutionAlreadyStartedError) while a run is open and
 * for one that completed. Returns the new run's id.
 */
export async function restartCollection(deps: CaseStartDeps, stored: StoredCase, restart: Required<RestartMemo>): Promise<string> {
  const pausedAtStart = {
    by: restart.restartedBy,
    reason: `restarted after its workflow was ${restart.previously}: ${restart.restartReason}; check the timeline, then resume`,
  };
  const handle = await deps.temporal.workflow.start('invoiceCollection', await startOptions(deps, stored, pausedAtStart, restart));
  return handle.firstExecutionRunId;
}

/**
 * The memo of a run started again, paused, after a loss, shown in the Temporal UI: who started
 * it, and for an operator's restart why and what had become of the old run, which a restart sent
 * again after its answer was lost puts on the timeline (restartCase).
 */
export const restartMemoSchema = z.object({ restartedBy: z.string(), restartReason: z.string().optional(), previously: z.string().optional() });
export type RestartMemo = z.infer<typeof restartMemoSchema>;
