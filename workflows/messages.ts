/**
 * The collection workflow's public surface: its messages and search attributes. The API
 * imports this module too, so a signal's name and payload are written once.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { CollectionOutcome, CollectionStage } from '../domain/collection';
import type { Currency } from '../domain/money';
import type { ApprovalKind } from '../domain/ladder';
import type { Role } from '../domain/roles';

export type PaymentReceived = {
  /** Our payment row id: the workflow counts each payment once by it. */
  paymentId: string;
  amountMinor: number;
  currency: Currency;
  receivedAt: string;
};

export type CaseAction = { at: string; kind: string; detail: string };

export type CaseStatus = {
  workflowId: string;
  stage: CollectionStage;
  outcome: CollectionOutcome | null;
  currency: Currency;
  amountOutstandingMinor: number;
  /** Paid beyond the balance: owed back to the customer or kept as credit. */
  overpaidMinor: number;
  nextAction: { kind: string; at: string } | null;
  /** Why the case waits for a person (a permanent delivery failure), or null. */
  blockedReason: string | null;
  pausedReason: string | null;
  communicationCeased: boolean;
  pendingApproval: PendingApproval | null;
  dispute: { reason: string; openedAt: string } | null;
  promise: { promisedDate: string; amountMinor: number; checkAt: string } | null;
  paymentPlan: { instalments: { dueDate: string; amountMinor: number }[]; nextInstalment: number } | null;
  settlement: { amountMinor: number; payBy: string; status: 'proposed' | 'agreed' } | null;
  policy: { name: string; version: number };
  history: CaseAction[];
};

/**
 * Every message may carry the sender's own id for it: the same id delivered again (a retried
 * HTTP call, a redelivered webhook) changes nothing, even after the first was fully handled.
 */
export type MessageId = { messageId?: string };

export type OperatorCommand = MessageId & { by: string; reason: string };

export type DisputeOpened = MessageId & { by: string; reason: string };
export type DisputeResolved = MessageId & {
  by: string;
  /** customer_favour: adjust by a credit (or cancel the invoice); business_favour: verify and resume. */
  resolution: 'customer_favour' | 'business_favour';
  note: string;
  /** Credit granted, in minor units (customer_favour). */
  creditMinor?: number;
  /** The invoice is withdrawn altogether (customer_favour). */
  cancelInvoice?: boolean;
};
/**
 * What the sender of an agreement saw: the case's amount outstanding, in minor units. Money (or a
 * credit) the case receives after that, and before the agreement reaches it, counts toward the
 * agreement: it may arrive late (queued while Temporal was away).
 */
export type AgreedOver = { balanceSeenMinor?: number };
export type PromiseToPay = MessageId & AgreedOver & { by: string; promisedDate: string; amountMinor: number };
export type SettlementOffer = MessageId &
  AgreedOver & {
    by: string;
    /** The reduced lump sum, in minor units. */
    amountMinor: number;
    /** The date by which the lump sum must arrive (YYYY-MM-DD). */
    payBy: string;
    waiveFees: boolean;
  };
export type PaymentPlan = MessageId & AgreedOver & { by: string; instalments: { dueDate: string; amountMinor: number }[] };
export type InvoiceAdjusted = {
  /** The credit note's or cancellation's own id upstream: the same adjustment counts once. */
  adjustmentId: string;
  by: string;
  kind: 'cancelled' | 'credited';
  creditMinor?: number;
  reason: string;
};

export type PendingApproval = {
  approvalId: string;
  stepId: string;
  kind: ApprovalKind;
  amountMinor: number;
  /** Agency commission or legal costs, against the amount. */
  costMinor: number;
  deadlineAt: string;
  approverRoles: Role[];
  requestedBy: string;
  escalated: boolean;
};

export type ApprovalDecision = {
  approvalId: string;
  decision: 'approve' | 'reject';
  reason: string;
  /** Who decides: the API key's name and role; the validator checks both. */
  decidedBy: { name: string; role: Role };
};

export type ApprovalOutcome = { approvalId: string; decision: 'approve' | 'reject'; recordedAt: string };

export type CollectionResult = {
  outcome: CollectionOutcome;
  amountOutstandingMinor: number;
  overpaidMinor: number;
  paymentsApplied: number;
};

export const paymentReceivedSignal = defineSignal<[PaymentReceived]>('paymentReceived');
export const caseStatusQuery = defineQuery<CaseStatus>('caseStatus');
/** Operations: stop the ladder's clock (e.g. while a credit note is agreed); resume shifts what is left. */
export const pauseSignal = defineSignal<[OperatorCommand]>('pause');
/** Operations: resume a paused case, or retry the step a blocked case stopped at. */
export const resumeSignal = defineSignal<[OperatorCommand]>('resume');
/** The debtor asked not to be contacted: no more e-mails, letters or calls; only gated actions remain. */
/**
 * An approver's decision on the pending escalation. Its validator rejects, before anything is
 * written to history, a decision on a request that is not pending, from a role the policy
 * does not allow, or by the person who requested it; the caller learns at once.
 */
export const decideApprovalUpdate = defineUpdate<ApprovalOutcome, [ApprovalDecision]>('decideApproval');
/** The debtor disputes the invoice: every contact stops at once until it is resolved. */
export const openDisputeSignal = defineSignal<[DisputeOpened]>('openDispute');
export const resolveDisputeSignal = defineSignal<[DisputeResolved]>('resolveDispute');
/** The debtor promised to pay: contacts pause until the date plus the policy's grace. */
export const promiseToPaySignal = defineSignal<[PromiseToPay]>('promiseToPay');
/**
 * An agreed payment plan: a reminder before each instalment; a missed instalment (after the
 * policy's grace) returns the case to the ladder where it left off; all paid closes it.
 */
export const paymentPlanSignal = defineSignal<[PaymentPlan]>('paymentPlan');
/**
 * A collector proposes a reduced lump-sum settlement: an approver must accept it; once
 * accepted, receiving the sum by the date closes the case as settled.
 */
export const proposeSettlementSignal = defineSignal<[SettlementOffer]>('proposeSettlement');
/** The invoice was cancelled or credited in the accounting system. */
export const invoiceAdjustedSignal = defineSignal<[InvoiceAdjusted]>('invoiceAdjusted');
export const ceaseCommunicationSignal = defineSignal<[OperatorCommand]>('ceaseCommunication');

/**
 * Search attributes that ops filter on in the Temporal UI, e.g. `CollectionStage = "AwaitingPayment"`.
 * The worker registers them on start-up when the server lacks them.
 */
export const searchAttributes = {
  invoiceId: defineSearchAttributeKey('InvoiceId', SearchAttributeType.KEYWORD),
  customerId: defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('CollectionStage', SearchAttributeType.KEYWORD),
  currency: defineSearchAttributeKey('InvoiceCurrency', SearchAttributeType.KEYWORD),
  amountOutstanding: defineSearchAttributeKey('AmountOutstanding', SearchAttributeType.INT),
  nextActionAt: defineSearchAttributeKey('NextActionAt', SearchAttributeType.DATETIME),
  pendingApproval: defineSearchAttributeKey('PendingApproval', SearchAttributeType.BOOL),
} as const;

export const allSearchAttributeKeys = Object.values(searchAttributes);
