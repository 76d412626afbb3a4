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
  history: CaseAction[];
};

export type CollectionResult = {
  outcome: CollectionOutcome;
  amountOutstandingMinor: number;
  overpaidMinor: number;
  paymentsApplied: number;
};

export const paymentReceivedSignal = defineSignal<[PaymentReceived]>('paymentReceived');
export const caseStatusQuery = defineQuery<CaseStatus>('caseStatus');

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
