import { condition, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { isStepSuperseded, stepDueAt, type CollectionInput, type CollectionOutcome, type CollectionStage } from '../domain/collection';
import {
  caseStatusQuery,
  paymentReceivedSignal,
  searchAttributes,
  type CaseAction,
  type CaseStatus,
  type CollectionResult,
  type PaymentReceived,
} from './messages';

const { sendReminder, recordCaseState } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 20 },
});

/**
 * One invoice's collection case: waits for each reminder on a timer that a payment cuts short,
 * sends it through an idempotent activity, and closes as paid when the balance reaches zero.
 * Every change (step scheduled, payment applied, closed) is published to the search attributes
 * and, through an activity, to the database.
 */
export async function invoiceCollection(input: CollectionInput): Promise<CollectionResult> {
  const { workflowId } = workflowInfo();
  let stage: CollectionStage = 'Scheduled';
  let outcome: CollectionOutcome | null = null;
  let balance = input.amountOutstandingMinor;
  let overpaid = 0;
  let nextAction: CaseStatus['nextAction'] = null;
  let stateSeq = 0;
  const appliedPayments = new Set<string>();
  const unpublishedPayments: PaymentReceived[] = [];
  const history: CaseAction[] = [];
  const now = () => new Date().toISOString();

  setHandler(paymentReceivedSignal, (payment) => {
    // Each payment counts once, by its id; the API refuses other currencies before signalling.
    if (appliedPayments.has(payment.paymentId) || payment.currency !== input.currency) return;
    appliedPayments.add(payment.paymentId);
    const applied = Math.min(balance, payment.amountMinor);
    balance -= applied;
    overpaid += payment.amountMinor - applied;
    unpublishedPayments.push(payment);
    history.push({ at: now(), kind: 'payment', detail: `${payment.amountMinor} ${payment.currency} (${payment.paymentId})` });
  });
  setHandler(caseStatusQuery, () => ({
    workflowId,
    stage,
    outcome,
    currency: input.currency,
    amountOutstandingMinor: balance,
    overpaidMinor: overpaid,
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
      at: now(),
      event,
      data,
    });
  }

  const isPaid = () => balance === 0;

  /**
   * Sleeps until `until` (forever if null) or until the invoice is paid, publishing each
   * payment as it lands so the database and the search attributes never lag behind.
   */
  async function waitUntil(until: Date | null): Promise<void> {
    for (;;) {
      const remainingMs = until ? until.getTime() - Date.now() : undefined;
      if (remainingMs !== undefined && remainingMs <= 0) return;
      const wake = () => isPaid() || unpublishedPayments.length > 0;
      // condition(fn) without a timeout resolves to undefined, not true: keep the two apart.
      const woken = remainingMs === undefined ? (await condition(wake), true) : await condition(wake, remainingMs);
      if (unpublishedPayments.length > 0 && !isPaid()) {
        const payments = unpublishedPayments.splice(0);
        await publish('case.payment_applied', { paymentIds: payments.map((p) => p.paymentId) });
      }
      if (isPaid() || !woken) return;
    }
  }

  const offsets = input.reminderOffsetsDays;
  const superseded = (index: number) => isStepSuperseded(offsets, input.dueDate, index, new Date());

  for (const [index, offsetDays] of offsets.entries()) {
    if (superseded(index)) continue;
    const dueAt = stepDueAt(input.dueDate, offsetDays);
    nextAction = { kind: `reminder ${index + 1}`, at: dueAt.toISOString() };
    await publish('case.step_scheduled', { step: index + 1, at: nextAction.at });
    await waitUntil(dueAt);
    if (isPaid()) break;
    // Checked again after the wait: the worker may have been down past later steps.
    if (superseded(index)) {
      history.push({ at: now(), kind: 'skipped', detail: `reminder ${index + 1}: a later step is already due` });
      continue;
    }
    const sent = await sendReminder({
      workflowId,
      invoiceId: input.invoiceId,
      step: index + 1,
      offsetDays,
      amountOutstandingMinor: balance,
      at: now(),
    });
    history.push({ at: now(), kind: 'reminder', detail: `reminder ${index + 1} (${sent.communicationId})` });
  }

  if (!isPaid()) {
    stage = 'AwaitingPayment';
    nextAction = null;
    await publish('case.awaiting_payment');
    await waitUntil(null);
  }

  stage = 'Closed';
  outcome = 'paid';
  nextAction = null;
  await publish('case.closed', { outcome, overpaidMinor: overpaid });
  return { outcome, amountOutstandingMinor: balance, overpaidMinor: overpaid, paymentsApplied: appliedPayments.size };
}
