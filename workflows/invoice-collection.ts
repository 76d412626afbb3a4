import {
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { stepDueAt, type CollectionInput, type CollectionOutcome, type CollectionStage } from '../domain/collection';
import {
  caseStatusQuery,
  paymentReceivedSignal,
  searchAttributes,
  type CaseAction,
  type CaseStatus,
  type CollectionResult,
} from './messages';

const { sendReminder, recordCaseState } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 20 },
});

/**
 * One invoice's collection case: waits for each reminder on a timer that a payment cuts short,
 * sends it through an idempotent activity, and closes as paid when the balance reaches zero.
 */
export async function invoiceCollection(input: CollectionInput): Promise<CollectionResult> {
  const { workflowId } = workflowInfo();
  let stage: CollectionStage = 'Scheduled';
  let outcome: CollectionOutcome | null = null;
  let balance = input.amountOutstandingMinor;
  let nextAction: CaseStatus['nextAction'] = null;
  let stateSeq = 0;
  const appliedPayments = new Set<string>();
  const history: CaseAction[] = [];

  setHandler(paymentReceivedSignal, (payment) => {
    if (appliedPayments.has(payment.paymentId) || payment.currency !== input.currency) return;
    appliedPayments.add(payment.paymentId);
    balance = Math.max(0, balance - payment.amountMinor);
    history.push({ at: new Date().toISOString(), kind: 'payment', detail: `${payment.amountMinor} ${payment.currency} (${payment.paymentId})` });
  });
  setHandler(caseStatusQuery, () => ({
    workflowId,
    stage,
    outcome,
    currency: input.currency,
    amountOutstandingMinor: balance,
    nextAction,
    history,
  }));

  /** Publishes the case's state: search attributes at once, the database row through an activity. */
  async function publish(event: string, data: Record<string, unknown> = {}): Promise<void> {
    upsertSearchAttributes([
      { key: searchAttributes.stage, value: stage },
      { key: searchAttributes.amountOutstanding, value: balance },
      { key: searchAttributes.nextActionAt, value: nextAction ? new Date(nextAction.at) : null },
    ]);
    stateSeq += 1;
    await recordCaseState({
      workflowId,
      seq: stateSeq,
      stage,
      outcome,
      amountOutstandingMinor: balance,
      nextActionAt: nextAction?.at ?? null,
      at: new Date().toISOString(),
      event,
      data,
    });
  }

  upsertSearchAttributes([
    { key: searchAttributes.invoiceId, value: input.invoiceExternalId },
    { key: searchAttributes.customerId, value: input.customerExternalId },
    { key: searchAttributes.currency, value: input.currency },
  ]);

  const isPaid = () => balance === 0;
  const offsets = input.reminderOffsetsDays;
  for (const [index, offsetDays] of offsets.entries()) {
    const dueAt = stepDueAt(input.dueDate, offsetDays);
    const nextOffset = offsets[index + 1];
    if (nextOffset !== undefined && stepDueAt(input.dueDate, nextOffset).getTime() <= Date.now()) {
      // A case that starts late (or a worker that was down) must not fire a burst of
      // reminders at once: of the steps already due, only the latest one goes out.
      history.push({ at: new Date().toISOString(), kind: 'skipped', detail: `reminder ${index + 1}: a later step is already due` });
      continue;
    }
    nextAction = { kind: `reminder ${index + 1}`, at: dueAt.toISOString() };
    stage = 'Scheduled';
    await publish('case.step_scheduled', { step: index + 1, at: nextAction.at });
    const waitMs = dueAt.getTime() - Date.now();
    if (waitMs > 0) await condition(isPaid, waitMs);
    if (isPaid()) break;

    stage = 'Reminding';
    nextAction = null;
    const sent = await sendReminder({
      workflowId,
      invoiceId: input.invoiceId,
      step: index + 1,
      offsetDays,
      amountOutstandingMinor: balance,
      at: new Date().toISOString(),
    });
    history.push({ at: new Date().toISOString(), kind: 'reminder', detail: `reminder ${index + 1} (${sent.communicationId})` });
  }

  if (!isPaid()) {
    stage = 'AwaitingPayment';
    nextAction = null;
    await publish('case.awaiting_payment');
    await condition(isPaid);
  }

  stage = 'Closed';
  outcome = 'paid';
  nextAction = null;
  await publish('case.closed', { outcome });
  return { outcome, amountOutstandingMinor: balance, paymentsApplied: appliedPayments.size };
}
