import { z } from 'zod';
import type { Currency } from './money';

/** The collection workflow of an invoice has an id derived from it, so a second start is a no-op. */
export function collectionWorkflowId(invoiceExternalId: string): string {
  return `collection-${invoiceExternalId}`;
}

export const externalIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'letters, digits and . _ : / - only, starting with a letter or digit');

/** Where a case stands; also the value of the CollectionStage search attribute. */
export const collectionStages = ['Scheduled', 'AwaitingPayment', 'Closed'] as const;
export type CollectionStage = (typeof collectionStages)[number];

export const collectionOutcomes = ['paid', 'cancelled'] as const;
export type CollectionOutcome = (typeof collectionOutcomes)[number];

/** What the workflow needs to know about the invoice: a snapshot taken when the case starts. */
export type CollectionInput = {
  invoiceId: string;
  invoiceExternalId: string;
  invoiceNumber: string;
  customerExternalId: string;
  currency: Currency;
  amountOutstandingMinor: number;
  /** YYYY-MM-DD */
  dueDate: string;
  /** Days after the due date on which a reminder goes out (negative: before it). */
  reminderOffsetsDays: number[];
};

/**
 * The first slice's ladder: a courtesy reminder on day 1, a second on day 7, a firmer one on
 * day 30 (domain.md's timeline). The full policy with letters, calls and approvals replaces it.
 */
export const defaultReminderOffsetsDays = [1, 7, 30];

/** The instant a step falls due: the due date (a calendar date, taken at 00:00 UTC) plus the offset. */
export function stepDueAt(dueDate: string, offsetDays: number): Date {
  const due = Date.parse(`${dueDate}T00:00:00Z`);
  return new Date(due + offsetDays * 86_400_000);
}

/** Whole days from the due date to `now` (0 on the due date, negative before it). */
export function daysOverdue(dueDate: string, now: Date): number {
  return Math.floor((now.getTime() - Date.parse(`${dueDate}T00:00:00Z`)) / 86_400_000);
}

/**
 * Whether ladder step `index` is superseded at `now`: a later step is already due. A case that
 * starts late, or wakes after its worker was down, runs only the latest due step, never a
 * burst of reminders sent at once.
 */
export function isStepSuperseded(offsetsDays: number[], dueDate: string, index: number, now: Date): boolean {
  const next = offsetsDays[index + 1];
  return next !== undefined && stepDueAt(dueDate, next).getTime() <= now.getTime();
}
