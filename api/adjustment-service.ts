/**
 * Corrections of an invoice from the accounting system: credit notes, cancellation, and
 * changes to the fields a case has not yet acted on (number; due date before the case starts).
 */
import { randomUUID } from 'node:crypto';
import { and, eq, gt, isNotNull, or, sql } from 'drizzle-orm';
import { pinnedPolicy } from '../cases/policies';
import { auditEvents, collectionCases, invoiceAdjustments, invoices, payments } from '../db/schema';
import { collectionStartsAt } from '../domain/collection';
import type { Currency } from '../domain/money';
import { invoiceAdjustedSignal } from '../workflows/messages';
import { adjustmentMessage } from '../cases/collection-start';
import type { Caller } from './auth';
import { caseView, deliverToCase, findInvoice, invoiceView, startIfDue, type ServiceDeps } from './invoice-service';
import { claimDue, failedAttempt, leaseEnd, type OutboxClaim } from './outbox';
import { startDispatcher, type PaymentDispatcher, type PaymentDispatcherOptions } from './payment-dispatcher';
import { HttpProblem } from './problem';

type AdjustmentRow = typeof invoiceAdjustments.$inferSelect;
type Adjustment = Pick<AdjustmentRow, 'adjustmentId' | 'kind' | 'reason'> & { amountMinor?: number; currency?: Currency };

export function adjustmentView(row: AdjustmentRow) {
  return {
    id: row.id,
    adjustmentId: row.adjustmentId,
    kind: row.kind,
    amountMinor: row.amountMinor,
    currency: row.currency,
    reason: row.reason,
    recordedBy: row.recordedBy,
    createdAt: row.createdAt.toISOString(),
  };
}

/** The invoice's case, if the invoice is open and its case not closed; 409 otherwise. */
function openCase<C extends { stage: string }>(invoice: { externalId: string; status: string }, caseRow: C | null): C {
  if (invoice.status !== 'open' || !caseRow || caseRow.stage === 'Closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `Invoice ${invoice.externalId} is ${invoice.status}; it has no open collection case.`);
  }
  return caseRow;
}

/**
 * Records a credit note or cancellation and forwards it to the case. Stored once per
 * adjustment id (and an invoice is cancelled once) before the case hears of it; a repeat
 * finds the stored one: forwarded already, that is the answer; else it is forwarded again
 * (the workflow counts it once).
 * `check` refuses a new adjustment the invoice cannot take, given what is outstanding as far as
 * this API knows (below). A case not running yet starts with it (signal-with-start): the
 * workflow stays the one writer of the balance.
 */
async function recordAdjustment(
  deps: ServiceDeps,
  externalId: string,
  adjustment: Adjustment,
  caller: Caller,
  check: (invoice: typeof invoices.$inferSelect, outstandingMinor: number) => void,
) {
  const { invoice, caseRow } = await findInvoice(deps, externalId);
  const claimToken = randomUUID();
  const { row, created } = await deps.db.transaction(async (tx) => {
    // The invoice row is locked: adjustments of one invoice are recorded one after another.
    const [locked] = await tx.select().from(invoices).where(eq(invoices.id, invoice.id)).for('update');
    const sameId = eq(invoiceAdjustments.adjustmentId, adjustment.adjustmentId);
    const [existing] = await tx
      .select()
      .from(invoiceAdjustments)
      .where(
        and(
          eq(invoiceAdjustments.invoiceId, invoice.id),
          adjustment.kind === 'cancellation' ? or(sameId, eq(invoiceAdjustments.kind, 'cancellation')) : sameId,
        ),
      );
    if (existing) {
      if (existing.kind !== adjustment.kind || existing.amountMinor !== (adjustment.amountMinor ?? null) || existing.currency !== (adjustment.currency ?? null)) {
        throw new HttpProblem(409, 'adjustment-conflict', 'Adjustment id already used', `Adjustment ${adjustment.adjustmentId} of invoice ${externalId} is already recorded with other details.`);
      }
      // Sent again before its case had it: forwarded now, under this request's claim.
      if (!existing.forwardedAt) await tx.update(invoiceAdjustments).set({ claimToken, nextAttemptAt: leaseEnd }).where(eq(invoiceAdjustments.id, existing.id));
      return { row: existing, created: false };
    }
    const open = openCase(locked!, caseRow);
    check(locked!, await outstandingAsRecorded(tx, locked!, open.openingAmountMinor));
    const [inserted] = await tx
      .insert(invoiceAdjustments)
      .values({ invoiceId: invoice.id, ...adjustment, recordedBy: caller.name, claimToken, nextAttemptAt: leaseEnd })
      .returning();
    await tx
      .update(invoices)
      .set(
        adjustment.kind === 'cancellation'
          ? { status: 'cancelled', updatedAt: new Date() }
          : { amountCreditedMinor: sql`${invoices.amountCreditedMinor} + ${adjustment.amountMinor}`, updatedAt: new Date() },
      )
      .where(eq(invoices.id, invoice.id));
    await tx.insert(auditEvents).values({
      invoiceId: invoice.id,
      caseId: caseRow?.id ?? null,
      actor: caller.name,
      type: adjustment.kind === 'cancellation' ? 'invoice.cancelled' : 'invoice.credited',
      data: { adjustmentId: adjustment.adjustmentId, amountMinor: adjustment.amountMinor, currency: adjustment.currency, reason: adjustment.reason },
    });
    return { row: inserted!, created: true };
  });

  if (row.forwardedAt) return { created, delivery: 'applied' as const, adjustment: adjustmentView(row) };
  let delivery: AdjustmentDelivery | undefined;
  try {
    delivery = await applyClaimedAdjustment(deps, { id: row.id, token: claimToken });
  } catch (err) {
    // Stored, and retried by the adjustment dispatcher (the failure is recorded, or the claim's
    // lease runs out): whatever failed, the caller must not send it again as if it were lost.
    // (Temporal being away is logged where it is found.)
    if (!(err instanceof HttpProblem && err.slug === 'temporal-unavailable')) deps.log?.error({ err, adjustmentId: row.adjustmentId }, 'forwarding an adjustment failed; it is queued');
  }
  // Undefined: a repeat of it took it over meanwhile; what that one did stands.
  delivery ??= await deps.db
    .select({ forwardedAt: invoiceAdjustments.forwardedAt })
    .from(invoiceAdjustments)
    .where(eq(invoiceAdjustments.id, row.id))
    .then(([now]) => (now?.forwardedAt ? 'applied' : undefined))
    .catch(() => undefined);
  return { created, delivery: delivery ?? ('queued' as const), adjustment: adjustmentView(row) };
}

export type AdjustmentDelivery = 'applied' | 'case_closed';

/**
 * Forwards the adjustments whose forwarding failed (Temporal away) or whose process stopped
 * before it finished: the same scheduling as the payment dispatcher, over this outbox.
 */
export function startAdjustmentDispatcher(deps: ServiceDeps, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  return startDispatcher(
    { what: 'stored adjustment', apply: (claim) => applyClaimedAdjustment(deps, claim), claimDue: (limit) => claimDueAdjustments(deps, limit), log: deps.log },
    // Never woken by a request, so never busy: no event-loop sampling.
    { concurrency: 2, isBusy: () => false, ...options },
  );
}

/** Adjustments whose forwarding is due (a failed attempt's retry time, or an abandoned claim's lease), each claimed. */
export function claimDueAdjustments(deps: ServiceDeps, limit: number): Promise<OutboxClaim[]> {
  return claimDue(deps.db, invoiceAdjustments, isNotNull(invoiceAdjustments.nextAttemptAt), limit);
}

/**
 * Forwards a claimed adjustment to its case (a case not running yet starts with it) and marks
 * it forwarded; undefined if the claim was taken over. A failure is recorded for a retry
 * (1 s, 2 s … 5 min; at most 10 s apart while Temporal is unreachable), then thrown.
 */
export async function applyClaimedAdjustment(deps: ServiceDeps, claim: OutboxClaim): Promise<AdjustmentDelivery | undefined> {
  const claimed = and(eq(invoiceAdjustments.id, claim.id), eq(invoiceAdjustments.claimToken, claim.token));
  const [held] = await deps.db.update(invoiceAdjustments).set({ nextAttemptAt: leaseEnd }).where(and(claimed, isNotNull(invoiceAdjustments.nextAttemptAt))).returning();
  if (!held) return undefined;
  // When the forwarding began: a contact step that began after it has the credit in its balance.
  const attemptedAt = await deps.clock();
  try {
    const [{ externalId }] = (await deps.db.select({ externalId: invoices.externalId }).from(invoices).where(eq(invoices.id, held.invoiceId))) as [{ externalId: string }];
    const { invoice, customer, caseRow } = await findInvoice(deps, externalId);
    let delivery: AdjustmentDelivery = 'case_closed';
    // A closed case is not signalled again: once Temporal has forgotten the workflow, a signal
    // with start would begin a new one.
    if (caseRow && caseRow.stage !== 'Closed') {
      delivery = await deliverToCase(deps, { invoice, customer, caseRow }, invoiceAdjustedSignal, adjustmentMessage(held), {
        title: 'Adjustment stored but not yet applied',
        detail: `Adjustment ${held.adjustmentId} of invoice ${externalId} is stored; forwarding it to the collection case failed. It is retried automatically (it is applied once).`,
      });
    }
    await deps.db.update(invoiceAdjustments).set({ forwardedAt: attemptedAt, nextAttemptAt: null, claimToken: null, lastError: null }).where(claimed);
    return delivery;
  } catch (err) {
    await deps.db
      .update(invoiceAdjustments)
      .set(failedAttempt(invoiceAdjustments, err))
      .where(claimed)
      .catch((recordErr) => deps.log?.error({ err: recordErr, adjustmentRowId: claim.id }, 'recording a failed attempt failed; the lease brings the adjustment back'));
    throw err;
  }
}

export type CreditNote = { adjustmentId: string; amountMinor: number; currency: Currency; reason: string };

/**
 * What an invoice still owes by what this API has recorded: its opening amount less every credit
 * note and payment recorded against it, or the balance its case last reported if that is lower.
 * The case's report lags (a credit or payment it has yet to apply), so two credit notes sent one
 * after the other, or during an outage, are checked against each other, not both against the
 * balance before them.
 */
async function outstandingAsRecorded(tx: Pick<ServiceDeps['db'], 'select'>, invoice: typeof invoices.$inferSelect, openingAmountMinor: number): Promise<number> {
  const [recorded] = await tx
    .select({ paidMinor: sql<string>`coalesce(sum(${payments.amountMinor}), 0)` })
    .from(payments)
    .where(eq(payments.invoiceId, invoice.id));
  return Math.max(0, Math.min(invoice.amountOutstandingMinor, openingAmountMinor - invoice.amountCreditedMinor - Number(recorded?.paidMinor ?? 0)));
}

/**
 * A credit note lowers what is owed: at most the amount outstanding, in the invoice's
 * currency. (The workflow caps a credit at its balance as well, and a credit that clears the
 * balance closes the case as cancelled.)
 */
export function creditInvoice(deps: ServiceDeps, externalId: string, note: CreditNote, caller: Caller) {
  return recordAdjustment(deps, externalId, { kind: 'credit_note', ...note }, caller, (invoice, outstandingMinor) => {
    if (invoice.currency !== note.currency) {
      throw new HttpProblem(422, 'currency-mismatch', 'Credit note currency differs from the invoice', `Invoice ${externalId} is in ${invoice.currency}; the credit note is in ${note.currency}.`);
    }
    if (note.amountMinor > outstandingMinor) {
      throw new HttpProblem(
        422,
        'credit-exceeds-outstanding',
        'Credit note above the amount outstanding',
        `Invoice ${externalId} has ${outstandingMinor} outstanding, counting the credit notes and payments recorded; the credit note is for ${note.amountMinor}.`,
      );
    }
  });
}

/** The invoice is withdrawn: its status becomes cancelled and its case closes as cancelled. */
export function cancelInvoice(deps: ServiceDeps, externalId: string, cancellation: { adjustmentId: string; reason: string }, caller: Caller) {
  return recordAdjustment(deps, externalId, { kind: 'cancellation', ...cancellation }, caller, () => {});
}

export type InvoiceUpdate = { number?: string; dueDate?: string };

/**
 * Changes an open invoice's number (letters and e-mails read it from the invoice at once) or,
 * until its case starts, its due date; the case's start time moves with it. A running case is
 * never moved: its timeline, reminders already sent and the dates they named all follow the
 * due date it started with, so that is a 409 that says to cancel and register anew.
 */
export async function updateInvoice(deps: ServiceDeps, externalId: string, update: InvoiceUpdate, caller: Caller) {
  const { invoice, customer, caseRow: found } = await findInvoice(deps, externalId);
  const caseRow = openCase(invoice, found);
  const changed = (['number', 'dueDate'] as const).filter((field) => update[field] !== undefined && update[field] !== invoice[field]);
  if (changed.length === 0) return { invoice: invoiceView(invoice, customer.externalId), case: caseView(deps, caseRow) };
  const { dueDate } = update;
  if (dueDate !== undefined && dueDate < invoice.issueDate) {
    throw new HttpProblem(422, 'due-before-issue', 'Due date before the issue date', `Invoice ${externalId} was issued on ${invoice.issueDate}.`);
  }

  const now = await deps.clock();
  const policy = await pinnedPolicy(deps.db, caseRow.policyId);
  const [updated] = await deps.db.transaction(async (tx) => {
    if (dueDate !== undefined && changed.includes('dueDate')) {
      // Only while the case has not started and its start time has not come, so the sweep
      // cannot be starting it on the old due date meanwhile.
      const [moved] = await tx
        .update(collectionCases)
        .set({ startsAt: collectionStartsAt(policy.definition, dueDate), updatedAt: now })
        .where(and(eq(collectionCases.id, caseRow.id), eq(collectionCases.stage, 'NotStarted'), gt(collectionCases.startsAt, now)))
        .returning({ id: collectionCases.id });
      if (!moved) {
        throw new HttpProblem(
          409,
          'case-started',
          'The collection case has started',
          `The collection case of invoice ${externalId} has started (or is starting) and follows due date ${invoice.dueDate}; a running case's timeline is not moved. ` +
            `Cancel the invoice (POST /invoices/${externalId}/cancellation) and register the corrected one under a new externalId.`,
        );
      }
    }
    await tx.insert(auditEvents).values({
      invoiceId: invoice.id,
      caseId: caseRow.id,
      actor: caller.name,
      type: 'invoice.updated',
      data: { changed: Object.fromEntries(changed.map((field) => [field, { from: invoice[field], to: update[field] }])) },
    });
    const values = Object.fromEntries(changed.map((field) => [field, update[field]]));
    return tx.update(invoices).set({ ...values, updatedAt: now }).where(eq(invoices.id, invoice.id)).returning();
  });
  // An earlier due date may have brought the case's start time to now.
  const [moved] = await deps.db.select().from(collectionCases).where(eq(collectionCases.id, caseRow.id));
  const current = await startIfDue(deps, { invoice: updated!, customer, caseRow: moved });
  return { invoice: invoiceView(updated!, customer.externalId), case: current ? caseView(deps, current) : null };
}
