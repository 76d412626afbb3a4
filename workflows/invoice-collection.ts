import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  debtorStepDue,
  dueDateBegins,
  isPreDueStepTooLate,
  isStepSuperseded,
  lateStartShiftMs,
  stepDueAt,
  utcStepDue,
  type CarriedState,
  type CollectionInput,
  type CollectionOutcome,
  type CollectionStage,
} from '../domain/collection';
import { nextContactTime } from '../domain/contact-window';
import { formatMoney } from '../domain/money';
import { isGated, referralOffsetAfter, stepApplies, type ApprovalKind, type GatedAction } from '../domain/ladder';
import type { ApprovalRule, PolicyStep } from '../domain/policy';
import {
  caseStatusQuery,
  ceaseCommunicationSignal,
  decideApprovalUpdate,
  invoiceAdjustedSignal,
  openDisputeSignal,
  pauseSignal,
  paymentPlanSignal,
  paymentReceivedSignal,
  proposeSettlementSignal,
  promiseToPaySignal,
  resolveDisputeSignal,
  resumeSignal,
  searchAttributes,
  type AgreedOver,
  type CaseAction,
  type ApprovalDecision,
  type CaseStatus,
  type CollectionResult,
  type DisputeResolved,
  type InvoiceAdjusted,
  type PaymentReceived,
  type PendingApproval,
  type SettlementOffer,
} from './messages';

const DAY_MS = 86_400_000;
const isIsoDate = (value: unknown): value is string => typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value));
const isPositiveInt = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;

// A delivery is retried with backoff for about an hour and a half of sending time (a wait for
// the debtor's contact window is one attempt), then the case is blocked for a person to look
// at: never an endless retry. Permanent errors (bad key, bad address) are not retried at all.
const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 15 },
});
// Bookkeeping (the database copy, approvals, disputes, handovers) must never fail a case: a
// database outage only delays it, so these retry until they succeed.
const books = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});
// The database copy of the case's state is one short transaction: as a local activity it runs
// inside the workflow task that asks for it, so the server records a marker instead of
// scheduling, dispatching and completing an activity task and then one more workflow task.
// Same retries as `books` (past a minute's backoff the SDK waits on a server timer).
const localBooks = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
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
  /**
   * The fixes of the December 2026 review, decided once, when the run starts: a contact waiting
   * for the debtor's window dropped if contact stops meanwhile, money paid after a settlement
   * offer counted toward it, a held case taking commands, a credit clearing what payments left
   * closing as paid, a person's retry waiting for the window, a step's day beginning at the
   * debtor's midnight. Runs started before keep the old behaviour to the end. Asked first deep
   * in the flow, right after a local activity, a patch's marker did not replay (the core found
   * it with no command), so it is asked here, before anything else.
   */
  const reviewFixes = patched('collections-review-2026-12');
  // The debtor's calendar decides the contact window's days (not 24-hour jumps), which steps a
  // late case finds already due (not UTC days; only overdue steps move the ladder), and when the
  // due date has come for a heads-up (also where its window opens only then). Runs started
  // before keep the old rules until they continue as new (their shift carried over).
  const debtorCalendar = patched('debtor-calendar-days');
  const contactDays = debtorCalendar ? 'local-days' : 'fixed-24h';
  // When each step falls due; runs started before the review fixes take the day at 00:00 UTC.
  const stepDue = reviewFixes ? debtorStepDue(input.dueDate, input.customerTimeZone) : utcStepDue(input.dueDate);
  const ruleDue = debtorCalendar ? stepDue : utcStepDue(input.dueDate);
  const dueDateCame = debtorCalendar ? dueDateBegins(input.dueDate, input.customerTimeZone) : ruleDue(0);
  const { workflowId } = workflowInfo();
  const { policy } = input;
  let stage: CollectionStage = 'Scheduled';
  let outcome: CollectionOutcome | null = null;
  const carried = input.carried;
  let balance = carried?.balance ?? input.amountOutstandingMinor;
  let overpaid = carried?.overpaid ?? 0;
  let nextAction: CaseStatus['nextAction'] = null;
  let blockedReason: string | null = null;
  const startPause = input.pausedAtStart;
  // A continued run takes its predecessor's pause (or none), never the first run's start pause again.
  let pausedReason: string | null = carried ? (carried.pausedReason ?? null) : startPause ? `${startPause.reason} (${startPause.by})` : null;
  /** The pause is the one a start after a loss began with: the stuck list shows it until resumed. */
  let pausedAfterRestart = carried ? (carried.pausedAfterRestart ?? false) : startPause !== undefined;
  let resumeRequested = false;
  let communicationCeased = carried?.communicationCeased ?? false;
  let pendingApproval: PendingApproval | null = null;
  /** Set when an approver's update is accepted (before it is recorded), so a second one is refused. */
  let deciding = false;
  let decision: ApprovalDecision | null = null;
  /** A dispute stays until the main loop has handled it, even if it was resolved in the meantime. */
  let dispute: { no: number; reason: string; by: string; openedAt: string; resolved: DisputeResolved | null; handled: boolean } | null =
    carried?.dispute ? { ...carried.dispute, handled: false } : null;
  let disputeCount = carried?.disputeCount ?? input.numbered?.disputes ?? 0;
  let promise: CarriedState['promise'] = carried?.promise ?? null;
  /** After a broken promise the next step runs at once: one step firmer. */
  let runNextStepNow = carried?.runNextStepNow ?? false;
  let plan: CarriedState['paymentPlan'] = carried?.paymentPlan ?? null;
  let planCount = carried?.planCount ?? input.numbered?.plans ?? 0;
  let settlementCount = carried?.settlementCount ?? input.numbered?.settlements ?? 0;
  /**
   * A settlement offer being decided or agreed; handled once, where the ladder waits. `paidBefore`
   * is the money counted before it, so what the debtor pays once it is made counts toward it.
   */
  let settlement: { offer: SettlementOffer; status: 'proposed' | 'agreed'; handling: boolean; paidBefore: number } | null = null;
  /** Index of the plan's next unpaid instalment, for the status query. */
  let planNext = 0;
  /** Set when the case ends other than by payment: written off, sold, cancelled. */
  let endedAs: CollectionOutcome | null = null;
  /** Added to every remaining step's time: a late start or a pause moves the rest of the ladder. */
  let shiftMs = carried?.shiftMs ?? lateStartShiftMs(policy, ruleDue, new Date(), !debtorCalendar);
  // Carried across runs: the database only accepts a higher sequence number.
  let stateSeq = carried?.stateSeq ?? 0;
  const appliedPayments = new Set<string>(carried?.appliedPayments ?? []);
  /** All money received, in minor units: promises, plans and settlements are kept by money, not credits. */
  let totalPaid = carried?.totalPaid ?? 0;
  // Runs continued by code older than the carried total start it from 0: their contacts state
  // what the case gives them, not less the money recorded since (activities/channels.ts).
  const totalPaidKnown = carried === undefined || carried.totalPaid !== undefined;
  const paidSoFar = () => (totalPaidKnown ? totalPaid : undefined);
  const appliedAdjustments = new Set<string>(carried?.appliedAdjustments ?? []);
  const seenMessages = new Set<string>(carried?.seenMessages ?? []);
  /** False for a message id seen before: the repeat changes nothing. */
  const firstTime = (messageId: string | undefined) => {
    if (messageId === undefined) return true;
    if (seenMessages.has(messageId)) return false;
    seenMessages.add(messageId);
    return true;
  };
  const unpublished: string[] = [];
  const history: CaseAction[] = [...(carried?.history ?? [])];
  const now = () => new Date().toISOString();
  const note = (kind: string, detail: string) => history.push({ at: now(), kind, detail });
  // A message with a bad payload is noted and ignored: it must never fail the workflow task.
  const ignored = (message: string, why: string) => {
    note('ignored', `${message}: ${why}`);
  };

  const receivePayment = (payment: PaymentReceived) => {
    // Each payment counts once, by its id; the API refuses other currencies before signalling.
    if (appliedPayments.has(payment.paymentId) || payment.currency !== input.currency || !isPositiveInt(payment.amountMinor)) return;
    appliedPayments.add(payment.paymentId);
    totalPaid += payment.amountMinor;
    const applied = Math.min(balance, payment.amountMinor);
    balance -= applied;
    overpaid += payment.amountMinor - applied;
    unpublished.push('case.payment_applied');
    note('payment', `${payment.amountMinor} ${payment.currency} (${payment.paymentId})`);
  };
  setHandler(paymentReceivedSignal, receivePayment);
  setHandler(pauseSignal, ({ messageId, by, reason }) => {
    if (!firstTime(messageId)) return;
    if (pausedReason !== null) return;
    pausedReason = `${reason} (${by})`;
    note('paused', pausedReason);
  });
  setHandler(resumeSignal, ({ messageId, by, reason }) => {
    if (!firstTime(messageId)) return;
    // Resuming a paused case lifts the pause; otherwise it retries a blocked step or lifts a hold.
    if (pausedReason !== null) {
      pausedReason = null;
      pausedAfterRestart = false;
    } else resumeRequested = true;
    note('resumed', `${reason} (${by})`);
  });
  setHandler(openDisputeSignal, ({ messageId, by, reason }) => {
    if (!firstTime(messageId)) return;
    if (dispute && !dispute.handled) return; // one dispute at a time; a repeat changes nothing
    disputeCount += 1;
    dispute = { no: disputeCount, reason, by, openedAt: now(), resolved: null, handled: false };
    note('dispute_opened', `${reason} (${by})`);
  });
  setHandler(resolveDisputeSignal, (resolution) => {
    if (!firstTime(resolution.messageId)) return;
    if (!dispute || dispute.resolved) return;
    dispute.resolved = resolution;
    note('dispute_resolved', `${resolution.resolution}: ${resolution.note} (${resolution.by})`);
  });
  /**
   * The money counted before an agreement (promise or plan): what the case received (money, or a
   * credit) since its sender saw the balance counts toward it. An agreement queued while Temporal
   * was away can arrive after the debtor has paid part of it; without this, the plan or promise
   * would ask for that part again. Above totalPaid when the case has yet to count money the sender
   * had seen: a run started afresh receives the command before it applies the stored payments
   * (signal with start).
   */
  const paidBeforeAgreement = ({ balanceSeenMinor }: AgreedOver) =>
    isPositiveInt(balanceSeenMinor) && patched('agreement-counts-money-since-seen') ? totalPaid - (balanceSeenMinor - balance) : totalPaid;
  setHandler(promiseToPaySignal, ({ messageId, by, promisedDate, amountMinor, balanceSeenMinor }) => {
    if (!firstTime(messageId)) return;
    if (!isIsoDate(promisedDate) || !isPositiveInt(amountMinor)) return ignored('promiseToPay', 'invalid date or amount');
    if (promise && promise.promisedDate === promisedDate && promise.amountMinor === amountMinor) return; // a repeat
    const paidBefore = paidBeforeAgreement({ balanceSeenMinor });
    const checkAt = new Date(Date.parse(`${promisedDate}T23:59:59Z`) + policy.promiseGraceDays * DAY_MS).toISOString();
    promise = { promisedDate, amountMinor, balanceWhenPromised: balance, paidBefore, checkAt, by };
    note('promise', `${amountMinor} by ${promisedDate} (${by})`);
  });
  setHandler(paymentPlanSignal, ({ messageId, by, instalments, balanceSeenMinor }) => {
    if (!firstTime(messageId)) return;
    if (instalments.length === 0 || !instalments.every((i) => isIsoDate(i.dueDate) && isPositiveInt(i.amountMinor))) {
      return ignored('paymentPlan', 'invalid instalments');
    }
    if (plan && JSON.stringify(plan.instalments) === JSON.stringify(instalments)) return; // a repeat
    planCount += 1;
    plan = { planNo: planCount, instalments, balanceWhenAgreed: balance, paidBefore: paidBeforeAgreement({ balanceSeenMinor }), by };
    promise = null; // the plan replaces any promise
    note('payment_plan', `${instalments.length} instalments (${by})`);
  });
  setHandler(proposeSettlementSignal, (offer) => {
    if (!firstTime(offer.messageId)) return;
    if (!isIsoDate(offer.payBy) || !isPositiveInt(offer.amountMinor) || offer.amountMinor >= balance) {
      return ignored('proposeSettlement', 'invalid date, or an amount not below the balance');
    }
    if (settlement) return;
    settlement = { offer, status: 'proposed', handling: false, paidBefore: paidBeforeAgreement(offer) };
    note('settlement_proposed', `${offer.amountMinor} by ${offer.payBy} (${offer.by})`);
  });
  const adjustInvoice = ({ adjustmentId, by, kind, creditMinor, reason }: InvoiceAdjusted) => {
    if (appliedAdjustments.has(adjustmentId)) return;
    if (kind === 'credited' && !isPositiveInt(creditMinor ?? 0)) return ignored('invoiceAdjusted', 'invalid credit');
    appliedAdjustments.add(adjustmentId);
    if (kind === 'cancelled') endedAs = 'cancelled';
    else applyCredit(creditMinor ?? 0);
    unpublished.push('case.invoice_adjusted');
    note('invoice_adjusted', `${kind}${creditMinor ? ` ${creditMinor}` : ''}: ${reason} (${by})`);
  };
  setHandler(invoiceAdjustedSignal, adjustInvoice);
  if (!carried) {
    for (const payment of input.priorPayments ?? []) receivePayment(payment);
    for (const adjustment of input.priorAdjustments ?? []) adjustInvoice(adjustment);
  }
  setHandler(ceaseCommunicationSignal, ({ messageId, by, reason }) => {
    if (!firstTime(messageId)) return;
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
    pendingApproval,
    dispute: dispute && !dispute.handled && !dispute.resolved ? { reason: dispute.reason, openedAt: dispute.openedAt } : null,
    promise: promise ? { promisedDate: promise.promisedDate, amountMinor: promise.amountMinor, checkAt: promise.checkAt } : null,
    paymentPlan: plan ? { instalments: plan.instalments, nextInstalment: planNext } : null,
    settlement: settlement ? { amountMinor: settlement.offer.amountMinor, payBy: settlement.offer.payBy, status: settlement.status } : null,
    policy: { name: policy.name, version: policy.version },
    history,
  }));

  setHandler(
    decideApprovalUpdate,
    async (d) => {
      deciding = true;
      const recordedAt = now();
      try {
        await books.recordApprovalDecision({
          approvalId: d.approvalId,
          decision: d.decision,
          reason: d.reason,
          decidedBy: d.decidedBy.name,
          at: recordedAt,
        });
      } catch (err) {
        deciding = false;
        throw err;
      }
      decision = d;
      note(d.decision === 'approve' ? 'approved' : 'rejected', `${pendingApproval?.kind}: ${d.reason} (${d.decidedBy.name})`);
      return { approvalId: d.approvalId, decision: d.decision, recordedAt };
    },
    {
      // Runs before the update is written to history: a refused decision leaves no trace.
      validator: (d) => {
        if (!pendingApproval || pendingApproval.approvalId !== d.approvalId) {
          throw ApplicationFailure.create({ type: 'NoSuchPendingApproval', message: `approval ${d.approvalId} is not pending on this case` });
        }
        if (deciding || decision) {
          throw ApplicationFailure.create({ type: 'AlreadyDecided', message: `approval ${d.approvalId} has already been decided` });
        }
        if (!pendingApproval.approverRoles.includes(d.decidedBy.role)) {
          throw ApplicationFailure.create({
            type: 'NotAnApprover',
            message: `the ${d.decidedBy.role} role may not decide ${pendingApproval.kind}; it needs one of: ${pendingApproval.approverRoles.join(', ')}`,
          });
        }
        if (d.decidedBy.name === pendingApproval.requestedBy) {
          throw ApplicationFailure.create({ type: 'SelfApproval', message: 'nobody may decide a request they made' });
        }
        if (!d.reason.trim()) throw ApplicationFailure.create({ type: 'ReasonRequired', message: 'a decision needs a reason' });
      },
    },
  );

  /** Publishes the case's state: search attributes at once, the database row through an activity. */
  async function publish(event: string, data: Record<string, unknown> = {}): Promise<void> {
    upsertSearchAttributes([
      { key: searchAttributes.stage, value: stage },
      { key: searchAttributes.amountOutstanding, value: balance },
      { key: searchAttributes.nextActionAt, value: nextAction ? new Date(nextAction.at) : null },
      { key: searchAttributes.pendingApproval, value: pendingApproval !== null },
    ]);
    stateSeq += 1;
    // Cases whose history recorded this step as an activity task replay it as one.
    const record = patched('case-state-local-activity') ? localBooks.recordCaseState : books.recordCaseState;
    await record({
      workflowId,
      seq: stateSeq,
      stage,
      outcome,
      amountOutstandingMinor: balance,
      nextActionAt: nextAction?.at ?? null,
      blockedReason,
      pausedReason: stage === 'Paused' ? pausedReason : null,
      // Also before the pause takes hold (a dispute first, or the first writes of the run).
      pausedAfterRestart: stage !== 'Closed' && pausedAfterRestart,
      at: now(),
      event,
      data,
      runStartedAt: workflowInfo().runStartTime.toISOString(),
    });
  }

  /** The case is over: paid, or ended otherwise (cancelled, written off, sold). */
  const isPaid = () => balance === 0 || endedAs !== null;

  /**
   * A credit note lowers what is owed. One that clears it ends the case as cancelled if nothing
   * was paid, and as paid if money settled the rest (runs started before the review fixes close
   * as cancelled).
   */
  function applyCredit(creditMinor: number): void {
    balance -= Math.min(balance, creditMinor);
    if (balance === 0 && (totalPaid === 0 || !reviewFixes)) endedAs = 'cancelled';
  }

  /**
   * Holds the ladder for whatever stops contact right now (a dispute, an operator's pause, a
   * promise to pay); each moves the rest of the ladder by the time it held.
   */
  async function holdWhilePaused(): Promise<void> {
    for (;;) {
      if (isPaid()) return;
      if (dispute && !dispute.handled) await holdForDispute();
      else if (pausedReason !== null) await holdForPause();
      else if (settlement && !settlement.handling && pendingApproval === null) await holdForSettlement();
      else if (plan) await holdForPlan();
      else if (promise) await holdForPromise();
      else return;
    }
  }

  async function holdForDispute(): Promise<void> {
    const d = dispute!;
    const heldAt = Date.now();
    const previous = stage;
    stage = 'Disputed';
    await books.openDispute({ workflowId, disputeNo: d.no, reason: d.reason, by: d.by, at: now() });
    await publish('case.disputed', { reason: d.reason });
    await waitFor(() => isPaid() || d.resolved !== null);
    d.handled = true;
    const r = d.resolved;
    if (!r) {
      stage = previous;
      return; // paid while disputed
    }
    if (r.resolution === 'customer_favour') {
      if (r.cancelInvoice) endedAs = 'cancelled';
      else applyCredit(r.creditMinor ?? 0);
    } else if (!communicationCeased) {
      const verification = () => ({
        workflowId,
        stepId: `dispute-${d.no}-verification`,
        template: 'dispute_verification',
        tone: 'firm' as const,
        amountOutstandingMinor: balance,
        paidMinor: paidSoFar(),
        at: now(),
        reason: r.note,
      });
      if (reviewFixes) {
        await contactInWindowUnless(() => isPaid() || communicationCeased || (dispute !== d && dispute !== null && !dispute.handled), verification);
      } else {
        await waitForContactWindow();
        await tryContact(verification());
      }
    }
    // The ladder moves by the whole time contact was stopped, verification included.
    shiftMs += Date.now() - heldAt;
    stage = previous;
    await books.resolveDispute({
      workflowId,
      disputeNo: d.no,
      resolution: r.resolution,
      note: r.note,
      creditMinor: r.resolution === 'customer_favour' && !r.cancelInvoice ? (r.creditMinor ?? 0) : 0,
      by: r.by,
      at: now(),
    });
    await publish('case.dispute_resolved', { resolution: r.resolution, shiftedByMs: Date.now() - heldAt });
  }

  /**
   * A settlement offer: an approver must accept it (nobody approves their own offer); then
   * the case waits for the lump sum until the pay-by date plus grace. Received: the case
   * closes as settled. Rejected or not paid: the ladder goes on, shifted by the time held.
   */
  async function holdForSettlement(): Promise<void> {
    const s = settlement!;
    s.handling = true;
    settlementCount += 1;
    const heldAt = Date.now();
    const previous = stage;
    const savedNext = nextAction;
    const d = await askApproval({
      stepId: `settlement-${settlementCount}`,
      kind: 'settlement',
      rule: policy.settlementApproval,
      requestedBy: s.offer.by,
      amountMinor: s.offer.amountMinor,
      reason: `Settle ${formatMoney(balance, input.currency)} for ${formatMoney(s.offer.amountMinor, input.currency)} paid by ${s.offer.payBy}${s.offer.waiveFees ? ', fees waived' : ''}.`,
    });
    if (d?.decision === 'approve') {
      s.status = 'agreed';
      stage = 'SettlementAgreed';
      // The debtor may pay as soon as the offer is made, before an approver gets to it: that
      // money counts. Runs started before the review fixes count from approval.
      const paidBefore = reviewFixes ? s.paidBefore : totalPaid;
      const received = () => totalPaid - paidBefore >= s.offer.amountMinor;
      const checkAt = Date.parse(`${s.offer.payBy}T00:00:00Z`) + (policy.promiseGraceDays + 1) * DAY_MS;
      nextAction = { kind: 'settlement payment', at: new Date(checkAt).toISOString() };
      await publish('settlement.agreed', { amountMinor: s.offer.amountMinor, payBy: s.offer.payBy });
      await sleepUntilOr(checkAt, () => isPaid() || received());
      if (!isPaid() && received()) {
        note('settled', `${s.offer.amountMinor} received; ${balance} waived`);
        endedAs = 'settled';
      } else if (!isPaid()) {
        note('settlement_lapsed', `${s.offer.amountMinor} not received by ${s.offer.payBy}`);
        await publish('settlement.lapsed');
      }
    }
    settlement = null;
    shiftMs += Date.now() - heldAt;
    stage = previous;
    nextAction = savedNext;
  }

  /** Waits until the debtor may be contacted (their business hours), unless the case ends (or `stop()` holds) first. */
  async function waitForContactWindow(stop: () => boolean = isPaid): Promise<void> {
    await sleepUntilOr(contactTime(new Date()).getTime(), stop);
  }

  /**
   * Waits for the debtor's contact window, then contacts them, unless `stop()` holds first (a
   * request to cease contact, a new dispute, the invoice paid): the wait may be a weekend long.
   * `args` is read when the contact goes, so it states the balance then.
   */
  async function contactInWindowUnless(stop: () => boolean, args: () => Parameters<typeof sendEmail>[0]): Promise<void> {
    await waitForContactWindow(stop);
    if (stop()) note('cancelled', args().stepId);
    else await tryContact(args(), stop);
  }

  /** Waits (without a deadline) until `stop()`, publishing changes as they land meanwhile. */
  async function waitFor(stop: () => boolean): Promise<void> {
    for (;;) {
      if (stop()) return;
      await condition(() => stop() || unpublished.length > 0);
      for (const event of new Set(unpublished.splice(0))) if (!isPaid()) await publish(event);
    }
  }

  /**
   * Sends an e-mail, then marks it sent as bookkeeping, which retries until the database
   * answers (even if the step is cancelled meanwhile: the e-mail is out). Once SendGrid has
   * accepted it, the send is done in the history, so a database outage never sends it twice.
   * Cases that passed a send before this patch replay the one activity that did both.
   * The mark is a local activity (one short statement, like the state write after it), so
   * the server records a marker instead of one more activity task and workflow task; cases
   * that marked a send as an activity task replay it as one.
   */
  async function sendEmail(stepArgs: Parameters<Activities['deliverEmail']>[0]): Promise<void> {
    // Every attempt keeps to the debtor's window (activities/channels.ts). Only the activity's
    // input grows, no command changes, so runs already under way take it without a patch.
    const args = { ...stepArgs, contactWindow: { timeZone: input.customerTimeZone, window: policy.contactWindow } };
    if (!patched('email-marked-sent-apart')) {
      await acts.sendEmail(args);
      return;
    }
    const delivery = await acts.deliverEmail(args);
    if (!delivery.sent) return;
    const { workflowId: id, stepId, template, at } = args;
    const mark = patched('email-mark-local-activity') ? localBooks.markEmailSent : books.markEmailSent;
    await CancellationScope.nonCancellable(() => mark({ workflowId: id, stepId, template, at, ...delivery }));
  }

  /**
   * Runs `fn` in a scope that is cancelled the moment `stop()` holds: its activities, retrying
   * or waiting to retry, end at once. An attempt already under way may still complete, and
   * records what it did itself (activities/channels.ts). Returns false when stopped.
   */
  async function unlessStopped(stop: () => boolean, fn: () => Promise<unknown>): Promise<boolean> {
    const scope = new CancellationScope();
    let finished = false;
    void condition(() => finished || stop()).then(() => {
      if (!finished) scope.cancel();
    });
    try {
      await scope.run(fn);
      return true;
    } catch (err) {
      if (isCancellation(err) && stop()) return false;
      throw err;
    } finally {
      finished = true;
    }
  }

  /**
   * A contact that is not a ladder step (a plan reminder, a dispute verification, a handover
   * notice): if it fails for good, the case notes it and goes on rather than failing. A
   * payment in full (or `stop()`) while it is being retried cancels it. Cases that passed a
   * contact before this patch replay it uncancelled.
   */
  async function tryContact(args: Parameters<typeof sendEmail>[0], stop: () => boolean = isPaid): Promise<void> {
    try {
      if (!patched('contact-cancelled-on-payment')) await sendEmail(args);
      else if (stop() || !(await unlessStopped(stop, () => sendEmail(args)))) note('cancelled', args.stepId);
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      note('contact_failed', (err.cause ?? err).message);
      await books.recordCaseEvent({ workflowId, type: 'contact.failed', data: { reason: (err.cause ?? err).message } });
    }
  }

  /** Sleeps until `untilMs` or until `stop()`, publishing payments as they land meanwhile. */
  async function sleepUntilOr(untilMs: number, stop: () => boolean): Promise<void> {
    for (;;) {
      const remaining = untilMs - Date.now();
      if (stop() || remaining <= 0) return;
      await condition(() => stop() || unpublished.length > 0, remaining);
      for (const event of new Set(unpublished.splice(0))) if (!isPaid()) await publish(event);
    }
  }

  /**
   * Follows a payment plan: a reminder a few days before each instalment, then its due date
   * plus the policy's grace for the money. A missed instalment returns the case to the ladder
   * where it left off (shifted by the time in the plan); all paid closes it.
   */
  async function holdForPlan(): Promise<void> {
    const p = plan!;
    const heldAt = Date.now();
    const previous = stage;
    const savedNext = nextAction;
    stage = 'PaymentPlan';
    await publish('case.payment_plan', { instalments: p.instalments.length });
    let dueSoFar = 0;
    let missed = false;
    for (const [i, instalment] of p.instalments.entries()) {
      planNext = i;
      dueSoFar += instalment.amountMinor;
      const met = () => totalPaid - p.paidBefore >= dueSoFar;
      const dueAt = Date.parse(`${instalment.dueDate}T00:00:00Z`);
      const remindAt = contactTime(new Date(Math.max(dueAt - 3 * DAY_MS, Date.now())));
      const interrupted = () => isPaid() || plan !== p || (dispute !== null && !dispute.handled) || met();
      nextAction = { kind: `instalment ${i + 1} reminder`, at: remindAt.toISOString() };
      await publish('plan.instalment_scheduled', { instalment: i + 1, dueDate: instalment.dueDate });
      await sleepUntilOr(remindAt.getTime(), interrupted);
      if (plan !== p || isPaid() || (dispute && !dispute.handled)) break;
      if (!met() && !communicationCeased) {
        // Not sent once the instalment is met, the plan replaced or a dispute opened meanwhile.
        const reminder = {
          workflowId,
          stepId: `plan-${p.planNo}-instalment-${i + 1}`,
          template: 'payment_plan_reminder',
          tone: 'friendly' as const,
          amountOutstandingMinor: balance,
          paidMinor: paidSoFar(),
          at: now(),
          instalment,
        };
        await tryContact(reminder, interrupted);
      }
      const checkAt = dueAt + (policy.promiseGraceDays + 1) * DAY_MS;
      nextAction = { kind: `instalment ${i + 1} check`, at: new Date(checkAt).toISOString() };
      await sleepUntilOr(checkAt, interrupted);
      if (plan !== p || isPaid() || (dispute && !dispute.handled)) break;
      if (!met()) {
        missed = true;
        note('plan_broken', `instalment ${i + 1} of ${instalment.amountMinor} due ${instalment.dueDate}`);
        break;
      }
    }
    if (plan !== p || (dispute && !dispute.handled && !isPaid())) {
      // Replaced by a newer plan, or a dispute takes over (the plan starts again after it).
      shiftMs += Date.now() - heldAt;
      stage = previous;
      nextAction = savedNext;
      return;
    }
    plan = null;
    shiftMs += Date.now() - heldAt;
    stage = previous;
    nextAction = savedNext;
    if (isPaid()) return;
    await publish(missed ? 'plan.broken' : 'plan.completed');
  }

  async function holdForPromise(): Promise<void> {
    const p = promise!;
    const heldAt = Date.now();
    const previous = stage;
    // Kept means money received (or, before the promise arrived, what lowered the balance its
    // sender saw: paidBeforeAgreement), not a balance lowered by a credit note while it runs.
    const kept = () => totalPaid - p.paidBefore >= p.amountMinor;
    stage = 'PromisedToPay';
    const savedNext = nextAction;
    nextAction = { kind: 'promise check', at: p.checkAt };
    await publish('case.promise_to_pay', { promisedDate: p.promisedDate, amountMinor: p.amountMinor });
    await sleepUntilOr(Date.parse(p.checkAt), () => isPaid() || kept() || promise !== p || (dispute !== null && !dispute.handled));
    if (promise !== p || (dispute && !dispute.handled && !kept() && !isPaid())) {
      // Replaced by a newer promise, or a dispute takes over (the promise waits for it).
      shiftMs += Date.now() - heldAt;
      stage = previous;
      nextAction = savedNext;
      return;
    }
    promise = null;
    shiftMs += Date.now() - heldAt;
    stage = previous;
    nextAction = savedNext;
    if (isPaid()) return;
    if (kept()) {
      await publish('promise.kept');
    } else {
      runNextStepNow = true;
      note('promise_broken', `${p.amountMinor} by ${p.promisedDate}`);
      await publish('promise.broken');
    }
  }

  /** Holds the clock while paused; on resume the rest of the ladder moves by the time paused. */
  async function holdForPause(): Promise<void> {
    const pausedAt = Date.now();
    const previous = stage;
    stage = 'Paused';
    await publish('case.paused', { reason: pausedReason });
    await waitFor(() => isPaid() || pausedReason === null);
    pausedReason = null;
    pausedAfterRestart = false;
    shiftMs += Date.now() - pausedAt;
    stage = previous;
    await publish('case.resumed', { shiftedByMs: Date.now() - pausedAt });
  }

  /**
   * Sleeps until `target()` (forever if null), or until the invoice is paid; publishes each
   * change as it lands and holds while paused, so the database and search attributes never lag.
   */
  async function waitUntil(target: () => Date | null, done: () => boolean = () => false): Promise<boolean> {
    for (;;) {
      await holdWhilePaused();
      if (isPaid() || done()) return true;
      const until = target();
      const remainingMs = until ? until.getTime() - Date.now() : undefined;
      if (remainingMs !== undefined && remainingMs <= 0) return false;
      const wake = () =>
        isPaid() ||
        done() ||
        unpublished.length > 0 ||
        pausedReason !== null ||
        promise !== null ||
        plan !== null ||
        (settlement !== null && !settlement.handling && pendingApproval === null) ||
        (dispute !== null && !dispute.handled);
      // condition(fn) without a timeout resolves to undefined, not true: keep the two apart.
      const woken = remainingMs === undefined ? (await condition(wake), true) : await condition(wake, remainingMs);
      for (const event of new Set(unpublished.splice(0))) if (!isPaid()) await publish(event);
      if (!woken) return false;
    }
  }

  /** When a step is due: its offset plus any shift, moved into the debtor's contact window. */
  function stepTime(step: PolicyStep): Date {
    const scheduled = runNextStepNow ? Date.now() : stepDue(step.offsetDays).getTime() + shiftMs;
    return runsAt(step, new Date(Math.max(scheduled, Date.now())));
  }

  /** When a step due at `at` runs: a contact at the debtor's next window, anything else then. */
  function runsAt(step: PolicyStep, at: Date): Date {
    return timedContact.has(step.action) ? contactTime(at) : at;
  }

  /** The first moment at or after `at` inside the debtor's contact window. */
  function contactTime(at: Date): Date {
    return nextContactTime(at, input.customerTimeZone, policy.contactWindow, contactDays);
  }

  async function runStep(step: PolicyStep, index: number): Promise<void> {
    const base = { workflowId, stepId: step.id, template: step.template, tone: step.tone, amountOutstandingMinor: balance, paidMinor: paidSoFar(), at: now() };
    switch (step.action) {
      case 'email':
        await sendEmail(base);
        break;
      case 'letter':
        await acts.sendLetter({ ...base, certified: step.certified ?? false });
        break;
      case 'final_notice': {
        // Only an argument of the sends: the commands are the same, so no patch is needed.
        const referralOffset = referralOffsetAfter(policy, index, balance);
        const referralDate =
          referralOffset === undefined
            ? undefined
            : new Date(stepDueAt(input.dueDate, referralOffset).getTime() + shiftMs).toISOString().slice(0, 10);
        await sendEmail({ ...base, referralDate });
        // Re-checked between the two sends: a payment, dispute or cease may have arrived.
        if (isPaid() || (dispute && !dispute.handled) || communicationCeased) break;
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
        throw ApplicationFailure.nonRetryable(`gated step ${step.id} must go through an approval`);
    }
  }

  /** What an escalation costs against what it may recover, for the approver to weigh. */
  function costOf(kind: GatedAction): number {
    if (kind === 'agency_referral') return Math.round((balance * policy.agencyCommissionBps) / 10_000);
    if (kind === 'legal_action') return policy.legalCostsMinor;
    return 0;
  }

  /**
   * Asks a person to approve a gated step and waits for the decision: past the deadline the
   * approvers are reminded, past the escalation time the fallback approvers are told. A
   * payment meanwhile ends the wait. Returns the decision, or null if the invoice got paid.
   */
  async function askApproval(request: {
    stepId: string;
    kind: ApprovalKind;
    rule: ApprovalRule;
    requestedBy: string;
    amountMinor: number;
    reason: string;
  }): Promise<Pick<ApprovalDecision, 'approvalId' | 'decision'> | null> {
    const { stepId, kind, rule, requestedBy, amountMinor, reason } = request;
    const deadline = new Date(Date.now() + rule.deadlineDays * DAY_MS);
    const cost = kind === 'settlement' ? balance - amountMinor : costOf(kind);
    const { approvalId, decided: decidedBefore } = await books.requestApproval({
      workflowId,
      stepId,
      kind,
      amountMinor,
      costMinor: cost,
      reason,
      requestedBy,
      approverRoles: rule.approverRoles,
      deadlineAt: deadline.toISOString(),
      at: now(),
    });
    // A case started again after Temporal lost its workflow passes a gate it passed before: the
    // decision taken then stands (nobody is asked twice, and no request waits for ever).
    if (decidedBefore && patched('approval-decided-before-restart')) {
      note('approval', `${kind} ${decidedBefore === 'approve' ? 'approved' : 'rejected'} before the case was started again (${approvalId})`);
      return isPaid() ? null : { approvalId, decision: decidedBefore };
    }
    decision = null;
    deciding = false;
    pendingApproval = {
      approvalId,
      stepId,
      kind,
      amountMinor,
      costMinor: cost,
      deadlineAt: deadline.toISOString(),
      approverRoles: rule.approverRoles,
      requestedBy,
      escalated: false,
    };
    stage = 'AwaitingApproval';
    nextAction = { kind: `approval deadline (${stepId})`, at: deadline.toISOString() };
    await publish('approval.requested', { approvalId, kind });
    // Approvers are told only once the request is pending here, so a quick decision is never
    // refused. (Before this patch the request activity told them itself: running cases that
    // already passed this point replay without the extra activity.)
    if (patched('notify-approvers-once-pending')) {
      await books.chaseApprovers({ approvalId, purpose: 'request', fallbackApprovers: rule.fallbackApprovers, at: now() });
    }

    const decided = () => decision !== null;
    if (!(await waitUntil(() => deadline, decided))) {
      await books.chaseApprovers({ approvalId, purpose: 'reminder', fallbackApprovers: rule.fallbackApprovers, at: now() });
      const escalateAt = new Date(deadline.getTime() + rule.escalateAfterDays * DAY_MS);
      nextAction = { kind: `approval escalation (${stepId})`, at: escalateAt.toISOString() };
      await publish('approval.reminded', { approvalId });
      if (!(await waitUntil(() => escalateAt, decided))) {
        await books.chaseApprovers({ approvalId, purpose: 'escalation', fallbackApprovers: rule.fallbackApprovers, at: now() });
        pendingApproval = { ...pendingApproval, escalated: true };
        nextAction = null;
        await publish('approval.escalated', { approvalId });
        await waitUntil(() => null, decided);
      }
    }
    const result = decision as ApprovalDecision | null;
    pendingApproval = null;
    decision = null;
    deciding = false;
    stage = 'Scheduled';
    nextAction = null;
    if (isPaid()) return null;
    await publish(result!.decision === 'approve' ? 'approval.approved' : 'approval.rejected', { approvalId, kind });
    return result;
  }

  /**
   * A gated step: approval, then the action. Returns the outcome when the case ends
   * (written off, sold), 'handed_over' when an agency or court now collects, or null when the
   * ladder goes on.
   */
  async function escalate(step: PolicyStep): Promise<CollectionOutcome | 'handed_over' | null> {
    const kind = step.action as GatedAction;
    const contactsSoFar = history.filter((h) => contactActions.has(h.kind as PolicyStep['action'])).length;
    const daysLate = Math.floor((Date.now() - stepDueAt(input.dueDate, 0).getTime()) / DAY_MS);
    const d = await askApproval({
      stepId: step.id,
      kind,
      rule: step.approval!,
      requestedBy: `policy ${policy.name} v${policy.version}`,
      amountMinor: balance,
      reason: `Step ${step.id}: ${formatMoney(balance, input.currency)} outstanding ${daysLate} days after the due date, after ${contactsSoFar} contacts.`,
    });
    if (!d) return null; // paid while waiting
    if (d.decision === 'reject') {
      const onReject = step.approval!.onReject;
      if (onReject === 'continue_in_house') return null;
      if (onReject === 'write_off') {
        return escalate({ ...step, id: `${step.id}-write-off`, action: 'write_off', template: 'write_off', approval: { ...step.approval!, onReject: 'hold' } });
      }
      stage = 'OnHold';
      resumeRequested = false;
      await publish('case.on_hold', { stepId: step.id });
      // A case on hold still takes disputes, settlements, plans and promises (each held in
      // turn, then back on hold). Runs started before the review fixes only wait.
      if (reviewFixes) await waitUntil(() => null, () => resumeRequested);
      else await waitFor(() => isPaid() || resumeRequested);
      resumeRequested = false;
      stage = 'Scheduled';
      return null;
    }
    if (!stepApplies(step, balance)) {
      // A credit or payment during the approval took the amount out of this step's range.
      note('skipped', `${step.id}: approved, but ${balance} is now outside its amount range`);
      return null;
    }
    await books.executeHandover({ approvalId: d.approvalId, amountMinor: balance, at: now() });
    if (kind === 'write_off') return 'written_off';
    if (kind === 'sell_debt') return 'sold';
    if (!communicationCeased) {
      const notice = () => ({
        workflowId,
        stepId: `${step.id}-notice`,
        template: step.template,
        tone: step.tone,
        amountOutstandingMinor: balance,
        paidMinor: paidSoFar(),
        at: now(),
      });
      // Cases that passed this point before the patches sent the notice at once, or after the
      // window whatever came meanwhile; replay keeps that.
      if (!patched('handover-notice-in-contact-window')) await tryContact(notice());
      else if (reviewFixes) await contactInWindowUnless(() => isPaid() || communicationCeased || (dispute !== null && !dispute.handled), notice);
      else {
        await waitForContactWindow();
        await tryContact(notice());
      }
    }
    return 'handed_over';
  }

  /**
   * Runs a step, but stops its activities (an e-mail SendGrid keeps throttling, say) the moment
   * the invoice is paid, disputed or contact is ceased: no retry goes out after that. An attempt
   * already talking to SendGrid may still complete. Returns false when stopped.
   */
  function runStepUnlessStopped(step: PolicyStep, index: number): Promise<boolean> {
    return unlessStopped(() => stepStopped(step), () => runStep(step, index));
  }

  /** Whether the case no longer wants this step: paid, disputed, or (for a contact) contact ceased. */
  function stepStopped(step: PolicyStep): boolean {
    return isPaid() || (dispute !== null && !dispute.handled) || (communicationCeased && contactActions.has(step.action));
  }

  /** Runs a step; a permanent failure blocks the case until operations resume it (then retries) or it is paid. */
  async function runStepOrBlock(step: PolicyStep, index: number): Promise<void> {
    for (;;) {
      try {
        const done = await runStepUnlessStopped(step, index);
        note(done ? step.action : 'cancelled', step.id);
        return;
      } catch (err) {
        const failure = err instanceof ActivityFailure ? err.cause : err;
        if (!(failure instanceof ApplicationFailure) && !(err instanceof ActivityFailure)) throw err;
        // Blocked waiting for a payment or a credit note to reach the case (activities/channels.ts):
        // any that arrives tries the step again, with the balance it leaves.
        const paidWhenBlocked = totalPaid;
        const correctionsWhenBlocked = appliedAdjustments.size;
        const retryOnPayment = failure instanceof ApplicationFailure && failure.type === 'PaymentInFlight' && patched('blocked-step-retried-on-payment');
        const retryOnCorrection = retryOnPayment && patched('blocked-step-retried-on-correction');
        const moneyArrived = () =>
          (retryOnPayment && totalPaid !== paidWhenBlocked) || (retryOnCorrection && appliedAdjustments.size !== correctionsWhenBlocked);
        // Or blocked waiting for a dispute or a request to cease contact (queued by the API while
        // Temporal was away): its arrival stops the step, without waiting for a person.
        const stopOnCommand = retryOnPayment && patched('blocked-step-stopped-by-command');
        const stoppedByCommand = () => stopOnCommand && stepStopped(step);
        if (stoppedByCommand()) {
          // It arrived with the step's last failure: nothing to wait for.
          note('cancelled', step.id);
          return;
        }
        blockedReason = `${step.id}: ${(failure as Error).message}`;
        const previous = stage;
        stage = 'Blocked';
        nextAction = null;
        resumeRequested = false;
        note('blocked', blockedReason);
        await publish('case.blocked', { stepId: step.id, reason: blockedReason });
        await waitFor(() => isPaid() || resumeRequested || moneyArrived() || stoppedByCommand());
        const resumed = resumeRequested;
        resumeRequested = false;
        blockedReason = null;
        stage = previous;
        if (isPaid()) return;
        await publish('case.unblocked', { stepId: step.id });
        if (stoppedByCommand()) {
          note('cancelled', step.id);
          return;
        }
        // Woken by money (a backlog delivered at 3 a.m., say), or by a person in another time
        // zone: a contact waits for the debtor's window, as the step did in the first place.
        // Runs started before the review fixes do not wait here when a person resumes them:
        // their e-mails wait in the activity (activities/channels.ts), their call tasks not.
        if (timedContact.has(step.action) && ((retryOnPayment && !resumed) || (resumed && reviewFixes))) {
          await waitForContactWindow();
          if (isPaid()) return;
        }
      }
    }
  }

  /**
   * Hands the case to a fresh run when the history grows long (the server suggests it), so no
   * history grows without bound. Only at points where nothing is in flight: between steps.
   */
  const continueAsNewSuggested = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength > policy.continueAsNewAfterEvents;
  };
  async function continueAsNewFrom(nextStep: number): Promise<never> {
    await condition(allHandlersFinished);
    return continueAsNew<typeof invoiceCollection>({
      ...input,
      carried: {
        nextStep,
        handedOver,
        balance,
        overpaid,
        shiftMs,
        stateSeq,
        appliedPayments: [...appliedPayments],
        totalPaid,
        appliedAdjustments: [...appliedAdjustments],
        seenMessages: [...seenMessages].slice(-1_000),
        communicationCeased,
        pausedReason,
        pausedAfterRestart,
        disputeCount,
        dispute: dispute && !dispute.handled ? { no: dispute.no, reason: dispute.reason, by: dispute.by, openedAt: dispute.openedAt, resolved: dispute.resolved } : null,
        promise,
        runNextStepNow,
        paymentPlan: plan,
        planCount,
        settlementCount,
        history: history.slice(-50),
      },
    });
  }

  let handedOver = carried?.handedOver ?? false;
  if (!carried) await publish('case.started', { policy: `${policy.name} v${policy.version}`, shiftMs });
  for (const [index, step] of policy.steps.entries()) {
    if (index < (carried?.nextStep ?? 0)) continue;
    if (isPaid()) break;
    const superseded = () => isStepSuperseded(policy, ruleDue, index, new Date(), shiftMs);
    if (!stepApplies(step, balance) || superseded()) continue;
    // A heads-up that would run once the due date has come (its window opens only then) is dropped.
    if (isPreDueStepTooLate(step.offsetDays, dueDateCame, debtorCalendar ? stepTime(step) : new Date())) {
      if (debtorCalendar) note('skipped', `${step.id}: the due date has come`);
      continue;
    }

    stage = 'Scheduled';
    nextAction = { kind: step.id, at: stepTime(step).toISOString() };
    await publish('case.step_scheduled', { stepId: step.id, action: step.action, at: nextAction.at });
    await waitUntil(() => stepTime(step), continueAsNewSuggested);
    if (isPaid()) break;
    if (continueAsNewSuggested() && stepTime(step).getTime() > Date.now()) await continueAsNewFrom(index);
    // Checked again after the wait: a payment may have changed the branch, the worker may
    // have been down past later steps, or the debtor may have asked for no more contact.
    if (!stepApplies(step, balance) || superseded()) continue;
    // A heads-up the contact window (or a hold) carried onto the due date announces nothing.
    if (debtorCalendar && isPreDueStepTooLate(step.offsetDays, dueDateCame, new Date())) {
      note('skipped', `${step.id}: the due date has come`);
      continue;
    }
    if (communicationCeased && contactActions.has(step.action)) {
      note('skipped', `${step.id}: communication ceased`);
      continue;
    }
    if (isGated(step.action)) {
      runNextStepNow = false;
      const result = await escalate(step);
      if (result === 'handed_over') {
        handedOver = true;
        break;
      }
      if (result) {
        endedAs = result;
        break;
      }
      continue;
    }
    await runStepOrBlock(step, index);
    runNextStepNow = false;
  }

  if (!isPaid() && !endedAs) {
    // The ladder is done, or an agency or court collects now: payments still land here.
    stage = handedOver ? 'HandedOver' : 'AwaitingPayment';
    nextAction = null;
    if (!carried || carried.nextStep < policy.steps.length) await publish(handedOver ? 'case.handed_over' : 'case.awaiting_payment');
    await waitUntil(() => null, continueAsNewSuggested);
    if (!isPaid()) await continueAsNewFrom(policy.steps.length);
  }

  stage = 'Closed';
  outcome = endedAs ?? 'paid';
  nextAction = null;
  // Which payments it counted: a delivery answered too late, sent again to the closed case, is
  // then known as applied rather than flagged as money for a closed case.
  await publish('case.closed', { outcome, overpaidMinor: overpaid, appliedPayments: [...appliedPayments] });
  // Let an approver's update that is still being recorded finish before the workflow ends.
  await condition(allHandlersFinished);
  return { outcome, amountOutstandingMinor: balance, overpaidMinor: overpaid, paymentsApplied: appliedPayments.size };
}
