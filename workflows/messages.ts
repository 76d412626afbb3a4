/**
 * The collection workflow's public surface: its messages and search attributes. The API
 * imports this module too, so a signal's name and payload are written once.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { CollectionOutcome, CollectionStage } from '../domain/collection';
import type { Currency } from '../domain/money';

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
  policy: { name: string; version: number };
  history: CaseAction[];
};

export type OperatorCommand = { by: string; reason: string };

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
} as const;

export const allSearchAttributeKeys = Object.values(searchAttributes);
