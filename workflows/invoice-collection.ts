import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  isPreDueStepTooLate,
  isStepSuperseded,
  lateStartShiftMs,
  stepDueAt,
  type CollectionInput,
  type CollectionOutcome,
  type CollectionStage,
} from '../domain/collection';
import { nextContactTime } from '../domain/contact-window';
import { referralOffsetAfter, stepApplies, type PolicyStep } from '../domain/policy';
import {
  caseStatusQuery,
  ceaseCommunicationSignal,
  pauseSignal,
  paymentReceivedSignal,
  resumeSignal,
  searchAttributes,
  type CaseAction,
  type CaseStatus,
  type CollectionResult,
  type PaymentReceived,
} from './messages';

// A delivery is retried with backoff for about an hour and a half, then the case is blocked
// for a person to look at: never an endless retry. Permanent errors (bad key, bad address)
// are not retried at all.
const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 15 },
});

/** Actions that reach the debtor, so they wait for the contact window and stop on "cease communication". */
const contactActions = new Set<PolicyStep['action']>(['email', 'letter', 'call_task', 'final_notice']);
const timedContact = new Set<PolicyStep['action']>(['email', 'call_task', 'final_notice']);

/**
 * One invoice's collection case. Walks the pinned policy's ladder: waits for each step on a
 * timer that any message interrupts, moves contacts into the debtor's contact window, and runs
 * each step through idempotent activities keyed by workflow id + step id. Every change is
 * published to the search attributes and, through an activity, to the database.
 */
export async function invoiceCollection(input: CollectionInput): Promise<CollectionResult> {
  const { workflowId } = workflowInfo();
  const { policy } = input;
  let stage: CollectionStage = 'Scheduled';
  let outcome: CollectionOutcome | null = null;
  let balance = input.amountOutstandingMinor;
  let overpaid = 0;
  let nextAction: CaseStatus['nextAction'] = null;
  let blockedReason: string | null = null;
  let pausedReason: string | null = null;
  let resumeRequested = false;
  let communicationCeased = false;
  /** Added to every remaining step's time: a late start or a pause moves the rest of the ladder. */
  let shiftMs = lateStartShiftMs(policy, input.dueDate, new Date());
  let stateSeq = 0;
  const appliedPayments = new Set<string>();
  const unpublished: string[] = [];
  const history: CaseAction[] = [];
  const now = () => new Date().toISOString();
  const note = (kind: string, detail: string) => history.push({ at: now(), kind, detail });

  setHandler(paymentReceivedSignal, (payment: PaymentReceived) => {
    // Each payment counts once, by its id; the API refuses other currencies before signalling.
    if (appliedPayments.has(payment.paymentId) || payment.currency !== input.currency) return;
    appliedPayments.add(payment.paymentId);
    const applied = Math.min(balance, payment.amountMinor);
    balance -= applied;
    overpaid += payment.amountMinor - applied;
    unpublished.push('case.payment_applied');
    note('payment', `${payment.amountMinor} ${payment.currency} (${payment.paymentId})`);
  });
  setHandler(pauseSignal, ({ by, reason }) => {
    if (pausedReason !== null) return;
    pausedReason = `${reason} (${by})`;
    note('paused', pausedReason);
  });
  setHandler(resumeSignal, ({ by, reason }) => {
    resumeRequested = true;
    note('resumed', `${reason} (${by})`);
  });
  setHandler(ceaseCommunicationSignal, ({ by, reason }) => {
    if (communicationCeased) return;
    communicationCeased = true;
    unpublished.push('case.communication_ceased');
    note('communication_ceased', `${reason} (${by})`);
  });
  setHandler(caseStatusQuery, () => ({
    workflowId,
    stage,
    outcome,
    currency: input.currency,
    amountOutstandingMinor: balance,
    overpaidMinor: overpaid,
    nextAction,
    blockedReason,
    pausedReason,
    communicationCeased,
    policy: { name: policy.name, version: policy.version },
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
    await acts.recordCaseState({
      workflowId,
      seq: stateSeq,
      stage,
      outcome,
      amountOutstandingMinor: balance,
      nextActionAt: nextAction?.at ?? null,
      blockedReason,
      at: now(),
      event,
      data,
    });
  }

  const isPaid = () => balance === 0;

  /** Holds the clock while paused; on resume the rest of the ladder moves by the time paused. */
  async function holdWhilePaused(): Promise<void> {
    if (pausedReason === null) return;
    const pausedAt = Date.now();
    const previous = stage;
    stage = 'Paused';
    resumeRequested = false;
    await publish('case.paused', { reason: pausedReason });
    await condition(() => isPaid() || resumeRequested);
    pausedReason = null;
    resumeRequested = false;
    shiftMs += Date.now() - pausedAt;
    stage = previous;
    await publish('case.resumed', { shiftedByMs: Date.now() - pausedAt });
  }

  /**
   * Sleeps until `target()` (forever if null), or until the invoice is paid; publishes each
   * change as it lands and holds while paused, so the database and search attributes never lag.
   */
  async function waitUntil(target: () => Date | null): Promise<void> {
    for (;;) {
      await holdWhilePaused();
      if (isPaid()) return;
      const until = target();
      const remainingMs = until ? until.getTime() - Date.now() : undefined;
      if (remainingMs !== undefined && remainingMs <= 0) return;
      const wake = () => isPaid() || unpublished.length > 0 || pausedReason !== null;
      // condition(fn) without a timeout resolves to undefined, not true: keep the two apart.
      const woken = remainingMs === undefined ? (await condition(wake), true) : await condition(wake, remainingMs);
      for (const event of new Set(unpublished.splice(0))) if (!isPaid()) await publish(event);
      if (!woken) return;
    }
  }

  /** When a step is due: its offset plus any shift, moved into the debtor's contact window. */
  function stepTime(step: PolicyStep): Date {
    const at = new Date(Math.max(stepDueAt(input.dueDate, step.offsetDays).getTime() + shiftMs, Date.now()));
    return timedContact.has(step.action) ? nextContactTime(at, input.customerTimeZone, policy.contactWindow) : at;
  }

  async function runStep(step: PolicyStep, index: number): Promise<void> {
    const base = { workflowId, stepId: step.id, template: step.template, tone: step.tone, amountOutstandingMinor: balance, at: now() };
    switch (step.action) {
      case 'email':
        await acts.sendEmail(base);
        break;
      case 'letter':
        await acts.sendLetter({ ...base, certified: step.certified ?? false });
        break;
      case 'final_notice': {
        const referralOffset = referralOffsetAfter(policy, index);
        const referralDate =
          referralOffset === undefined
            ? undefined
            : new Date(stepDueAt(input.dueDate, referralOffset).getTime() + shiftMs).toISOString().slice(0, 10);
        await acts.sendEmail({ ...base, referralDate });
        await acts.sendLetter({ ...base, certified: step.certified ?? true, referralDate });
        break;
      }
      case 'call_task':
        await acts.createCallTask(base);
        break;
      case 'credit_hold':
        await acts.placeCreditHold(base);
        break;
      default:
        // Gated actions (agency, legal, write-off, debt sale) need an approval workflow that is
        // not built yet: record that the step was reached and hold it for a person.
        await acts.recordCaseEvent({ workflowId, type: 'case.escalation_due', data: { stepId: step.id, action: step.action } });
        throw ApplicationFailure.nonRetryable(`${step.action} needs an approval, which this version cannot request yet`, 'ApprovalUnavailable');
    }
  }

  /** Runs a step; a permanent failure blocks the case until operations resume it (then retries) or it is paid. */
  async function runStepOrBlock(step: PolicyStep, index: number): Promise<void> {
    for (;;) {
      try {
        await runStep(step, index);
        note(step.action, step.id);
        return;
      } catch (err) {
        const failure = err instanceof ActivityFailure ? err.cause : err;
        if (!(failure instanceof ApplicationFailure) && !(err instanceof ActivityFailure)) throw err;
        blockedReason = `${step.id}: ${(failure as Error).message}`;
        const previous = stage;
        stage = 'Blocked';
        nextAction = null;
        resumeRequested = false;
        note('blocked', blockedReason);
        await publish('case.blocked', { stepId: step.id, reason: blockedReason });
        await condition(() => isPaid() || resumeRequested);
        resumeRequested = false;
        blockedReason = null;
        stage = previous;
        if (isPaid()) return;
        await publish('case.unblocked', { stepId: step.id });
      }
    }
  }

  await publish('case.started', { policy: `${policy.name} v${policy.version}`, shiftMs });
  for (const [index, step] of policy.steps.entries()) {
    if (isPaid()) break;
    const superseded = () => isStepSuperseded(policy, input.dueDate, index, new Date(), shiftMs);
    if (!stepApplies(step, balance) || superseded()) continue;
    if (isPreDueStepTooLate(step.offsetDays, input.dueDate, new Date())) continue;

    stage = 'Scheduled';
    nextAction = { kind: step.id, at: stepTime(step).toISOString() };
    await publish('case.step_scheduled', { stepId: step.id, action: step.action, at: nextAction.at });
    await waitUntil(() => stepTime(step));
    if (isPaid()) break;
    // Checked again after the wait: a payment may have changed the branch, the worker may
    // have been down past later steps, or the debtor may have asked for no more contact.
    if (!stepApplies(step, balance) || superseded()) continue;
    if (communicationCeased && contactActions.has(step.action)) {
      note('skipped', `${step.id}: communication ceased`);
      continue;
    }
    await runStepOrBlock(step, index);
  }

  if (!isPaid()) {
    stage = 'AwaitingPayment';
    nextAction = null;
    await publish('case.awaiting_payment');
    await waitUntil(() => null);
  }

  stage = 'Closed';
  outcome = 'paid';
  nextAction = null;
  await publish('case.closed', { outcome, overpaidMinor: overpaid });
  return { outcome, amountOutstandingMinor: balance, overpaidMinor: overpaid, paymentsApplied: appliedPayments.size };
}
