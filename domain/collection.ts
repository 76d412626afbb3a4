import { localParts, zonedTime } from './contact-window';
import { isGated } from './ladder';
import type { Currency } from './money';
import type { CollectionPolicy } from './policy';

/** The collection workflow of an invoice has an id derived from it, so a second start is a no-op. */
export function collectionWorkflowId(invoiceExternalId: string): string {
  return `collection-${invoiceExternalId}`;
}

/**
 * Where a case stands; also the value of the CollectionStage search attribute. `NotStarted`
 * is the database's alone: the case is stored but its workflow is not running yet (the
 * overdue sweep starts it at its `startsAt`); a running workflow never reports it.
 */
export const collectionStages = [
  'NotStarted',
  'Scheduled',
  'AwaitingApproval',
  'OnHold',
  'HandedOver',
  'Disputed',
  'PromisedToPay',
  'PaymentPlan',
  'SettlementAgreed',
  'AwaitingPayment',
  'Paused',
  'Blocked',
  'Closed',
] as const;
export type CollectionStage = (typeof collectionStages)[number];

export const collectionOutcomes = ['paid', 'settled', 'written_off', 'sold', 'cancelled'] as const;
export type CollectionOutcome = (typeof collectionOutcomes)[number];

/** What the workflow needs to know: a snapshot of the invoice and the policy, pinned when the case starts. */
export type CollectionInput = {
  invoiceId: string;
  invoiceExternalId: string;
  invoiceNumber: string;
  customerExternalId: string;
  /** IANA zone of the debtor: decides the contact windows. */
  customerTimeZone: string;
  currency: Currency;
  amountOutstandingMinor: number;
  /** YYYY-MM-DD */
  dueDate: string;
  policyId: string;
  policy: CollectionPolicy;
  /** Set when the workflow continued as new: where the previous run left off. */
  carried?: CarriedState;
  /**
   * Payments and corrections stored before this workflow started (a start that failed, a
   * delivery that did not arrive): applied first, each once by its id, so a case never starts
   * from an amount it should not chase. Their signals, if they come later, change nothing.
   */
  priorPayments?: { paymentId: string; amountMinor: number; currency: Currency; receivedAt: string }[];
  priorAdjustments?: { adjustmentId: string; by: string; kind: 'cancelled' | 'credited'; creditMinor?: number; reason: string }[];
  /**
   * Set when the case is started again after its workflow was lost or ended without closing
   * it: the new run is paused from its first moment (what the old one knew of disputes,
   * promises and plans is only on the timeline), until a person resumes it.
   */
  pausedAtStart?: { by: string; reason: string };
  /**
   * How many disputes, settlement offers and payment plans earlier runs of this case numbered
   * (a run started again after a loss): this run numbers its own after them, so a new one never
   * takes an earlier one's records (its approval, its dispute row, its sent reminders).
   */
  numbered?: { disputes: number; settlements: number; plans: number };
};

/** A case's state handed from one run to the next by continue-as-new. */
export type CarriedState = {
  /** Index of the policy step to go on with (steps.length: the ladder is done). */
  nextStep: number;
  handedOver: boolean;
  balance: number;
  overpaid: number;
  shiftMs: number;
  stateSeq: number;
  appliedPayments: string[];
  appliedAdjustments: string[];
  /** Ids of messages already handled (the latest 1,000). */
  seenMessages: string[];
  totalPaid: number;
  communicationCeased: boolean;
  pausedReason: string | null;
  /** Whether that pause is the one a start after a loss began with (absent from older runs: false). */
  pausedAfterRestart?: boolean;
  disputeCount: number;
  dispute: {
    no: number;
    reason: string;
    by: string;
    openedAt: string;
    resolved: { by: string; resolution: 'customer_favour' | 'business_favour'; note: string; creditMinor?: number; cancelInvoice?: boolean } | null;
  } | null;
  promise: { promisedDate: string; amountMinor: number; balanceWhenPromised: number; paidBefore: number; checkAt: string; by: string } | null;
  runNextStepNow: boolean;
  paymentPlan: {
    planNo: number;
    instalments: { dueDate: string; amountMinor: number }[];
    balanceWhenAgreed: number;
    paidBefore: number;
    by: string;
  } | null;
  planCount: number;
  settlementCount: number;
  /** The latest entries of the case's history (older ones are in the audit trail). */
  history: { at: string; kind: string; detail: string }[];
};


/** The instant a step falls due: the due date (a calendar date, taken at 00:00 UTC) plus the offset. */
export function stepDueAt(dueDate: string, offsetDays: number): Date {
  const due = Date.parse(`${dueDate}T00:00:00Z`);
  return new Date(due + offsetDays * 86_400_000);
}

/**
 * The instant a step falls due for the debtor: not before its calendar day has begun where they
 * are. West of UTC, 00:00 UTC of "day 1" is still the due date (17:00 the day before in Los
 * Angeles), and a reminder then would call an invoice overdue on the day it is due. East of UTC
 * the day has begun already, so this is stepDueAt.
 */
export function stepDueForDebtor(dueDate: string, offsetDays: number, timeZone: string): Date {
  const utc = stepDueAt(dueDate, offsetDays);
  const local = localDayBegins(utc, timeZone);
  return local > utc ? local : utc;
}

/**
 * When the due date has come, for the rule that drops a pre-due heads-up: as soon as it has
 * begun where the debtor is or in UTC, whichever is first. A heads-up after that would reach
 * someone on or after the day it announces.
 */
export function dueDateBegins(dueDate: string, timeZone: string): Date {
  const utc = stepDueAt(dueDate, 0);
  const local = localDayBegins(utc, timeZone);
  return local < utc ? local : utc;
}

/** The instant the calendar day of `utcMidnight` (a 00:00 UTC) begins in `timeZone`. */
function localDayBegins(utcMidnight: Date, timeZone: string): Date {
  const [year, month, day] = [utcMidnight.getUTCFullYear(), utcMidnight.getUTCMonth() + 1, utcMidnight.getUTCDate()];
  const local = zonedTime(year, month, day, 0, 0, timeZone);
  // Where summer time begins at midnight (Santiago, Havana, the Azores) that day has no 00:00: it begins at 01:00.
  return localParts(local, timeZone).day === day ? local : zonedTime(year, month, day, 1, 0, timeZone);
}

/** When a policy step `offsetDays` from the due date falls due: in UTC days, or the debtor's. */
export type StepDue = (offsetDays: number) => Date;
export const utcStepDue =
  (dueDate: string): StepDue =>
  (offsetDays) =>
    stepDueAt(dueDate, offsetDays);
export const debtorStepDue =
  (dueDate: string, timeZone: string): StepDue =>
  (offsetDays) =>
    stepDueForDebtor(dueDate, offsetDays, timeZone);

/** Whole days from the due date to `now` (0 on the due date, negative before it). */
export function daysOverdue(dueDate: string, now: Date): number {
  return Math.floor((now.getTime() - Date.parse(`${dueDate}T00:00:00Z`)) / 86_400_000);
}

/**
 * Whether policy step `index` is superseded at `now`: a later contact step (one with a larger
 * offset) is already due. A case that wakes after its worker was down runs only the latest
 * due step, never a burst of reminders at once. Gated steps are never superseded.
 */
export function isStepSuperseded(policy: CollectionPolicy, dueAt: StepDue, index: number, now: Date, shiftMs = 0): boolean {
  const step = policy.steps[index]!;
  if (isGated(step.action)) return false;
  return policy.steps.some(
    (later, j) =>
      j > index &&
      !isGated(later.action) &&
      later.offsetDays > step.offsetDays &&
      dueAt(later.offsetDays).getTime() + shiftMs <= now.getTime(),
  );
}

/**
 * For a case that starts late: how far to push the timeline so that it resumes at the latest
 * contact step already due (that step runs now, the later ones keep their spacing), instead
 * of firing every missed step at once, or an escalation with no reminder before it.
 *
 * Only overdue steps move the ladder: a heads-up sent late (or dropped) leaves "day 1" on day 1.
 * `preDueStepsShift` is the old rule, kept for runs started with it: a late heads-up moved
 * every reminder after it by its lateness.
 */
export function lateStartShiftMs(policy: CollectionPolicy, dueAt: StepDue, now: Date, preDueStepsShift = false): number {
  const due = policy.steps
    .filter((s) => !isGated(s.action) && (s.offsetDays >= 0 || (preDueStepsShift && !isPreDueStepTooLate(s.offsetDays, dueAt(0), now))))
    .map((s) => dueAt(s.offsetDays).getTime())
    .filter((t) => t <= now.getTime());
  return due.length ? now.getTime() - Math.max(...due) : 0;
}

/** A heads-up before the due date makes no sense once the due date has come: it is dropped. */
export function isPreDueStepTooLate(offsetDays: number, dueDateCame: Date, now: Date): boolean {
  return offsetDays < 0 && now.getTime() >= dueDateCame.getTime();
}

/**
 * How long before its policy's earliest step a case's workflow starts. The overdue sweep
 * runs at most every 12 hours (SWEEP_INTERVAL_MINUTES), so with a day's lead every case is
 * running before its first step falls due, and the workflow's own timer (moved into the
 * contact window) decides the exact minute, not the sweep.
 */
export const START_LEAD_MS = 86_400_000;

/**
 * When an invoice's collection case starts: START_LEAD_MS before the earliest step of the
 * policy it follows (with the default policy, the heads-up three days before the due date).
 * Derived from the policy, so a policy without a pre-due step starts its cases later.
 */
export function collectionStartsAt(policy: CollectionPolicy, dueDate: string): Date {
  const earliest = Math.min(...policy.steps.map((step) => step.offsetDays));
  return new Date(stepDueAt(dueDate, earliest).getTime() - START_LEAD_MS);
}
