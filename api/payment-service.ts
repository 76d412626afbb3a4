import { randomUUID } from 'node:crypto';
import { and, count, desc, eq, inArray, isNotNull, isNull, ne, or, sql } from 'drizzle-orm';
import type { PgInsertValue } from 'drizzle-orm/pg-core';
import { paymentMessage } from '../cases/collection-start';
import { auditEvents, manualPaymentSource, payments, webhookEvents } from '../db/schema';
import type { Database } from '../db/client';
import type { Currency } from '../domain/money';
import { currencySchema } from '../domain/schemas';
import { paymentReceivedSignal } from '../workflows/messages';
import type { Caller } from './auth';
import { deliverToCase, findInvoice, lookupInvoice, registerInvoice, type FoundInvoice, type ServiceDeps } from './invoice-service';
import { claimDue, failedAttempt, leaseEnd, type OutboxClaim } from './outbox';
import { HttpProblem } from './problem';
import type { RecordPayment, RegisterInvoice } from './schemas';

type PaymentRow = typeof payments.$inferSelect;
type WebhookEventRow = typeof webhookEvents.$inferSelect;

/** Money to apply to an invoice, from whichever channel reported it. */
type NewPayment = {
  /** "manual", "stripe" or a webhook source: with providerEventId, the payment's identity. */
  provider: string;
  providerEventId: string;
  amountMinor: number;
  currency: Currency;
  receivedAt: Date;
  recordedBy: string;
};

export type PaymentDelivery = 'applied' | 'case_closed' | 'no_case';

/**
 * Stores a payment once (provider + providerEventId unique) and then delivers it to the case.
 * A repeated delivery finds the stored payment and signals again, which the workflow ignores if
 * it has counted that payment already; so a crash between the two steps loses nothing.
 * `fromEvent` is the outbox row being applied: if it recorded the payment (now or in an
 * earlier attempt), money no open case takes is flagged for reconciliation.
 */
async function applyPayment(deps: ServiceDeps, target: FoundInvoice, input: NewPayment, fromEvent: WebhookEventRow) {
  const { payment, created } = await storePayment(deps.db, target, input, fromEvent.id);
  const delivery = await deliverPayment(deps, target, payment, created || fromEvent.paymentId === payment.id);
  return { payment, created, delivery };
}

type StoredPayment = { payment: PaymentRow; created: boolean };

/** Records the money against the invoice, once per provider and reference (a 409 if that reference names other money). */
async function storePayment(db: Database, target: FoundInvoice, input: NewPayment, fromEvent?: string): Promise<StoredPayment> {
  const { invoice, caseRow } = target;
  return db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(payments)
      .values({ invoiceId: invoice.id, ...input })
      .onConflictDoNothing({ target: [payments.provider, payments.providerEventId] })
      .returning();
    if (inserted) {
      // Which event recorded it, in the same commit: another event for the same money can tell.
      if (fromEvent) await tx.update(webhookEvents).set({ paymentId: inserted.id }).where(eq(webhookEvents.id, fromEvent));
      await tx.insert(auditEvents).values({
        invoiceId: invoice.id,
        caseId: caseRow?.id ?? null,
        actor: input.recordedBy,
        type: 'payment.recorded',
        data: { paymentId: inserted.id, provider: input.provider, reference: input.providerEventId, amountMinor: input.amountMinor, currency: input.currency },
      });
      return { payment: inserted, created: true };
    }
    const [existing] = await tx
      .select()
      .from(payments)
      .where(and(eq(payments.provider, input.provider), eq(payments.providerEventId, input.providerEventId)));
    if (existing!.invoiceId !== invoice.id || existing!.amountMinor !== input.amountMinor) {
      throw new HttpProblem(
        409,
        'payment-conflict',
        'Payment reference already used',
        `Payment reference ${input.providerEventId} is already recorded with a different invoice or amount.`,
      );
    }
    return { payment: existing!, created: false };
  });
}

/**
 * Signals a stored payment to its case (503 if that fails). Money no open case takes is kept;
 * `flag` writes the payment.unapplied audit event that reconciliation looks for.
 */
async function deliverPayment(deps: ServiceDeps, target: FoundInvoice, payment: PaymentRow, flag: boolean): Promise<PaymentDelivery> {
  const { invoice, customer, caseRow } = target;
  // A case whose workflow is not running yet (not due, or its start failed) starts now, with
  // this payment in hand.
  let delivery: PaymentDelivery = 'no_case';
  if (caseRow) {
    delivery = await deliverToCase(deps, { invoice, customer, caseRow }, paymentReceivedSignal, paymentMessage(payment), {
      title: 'Payment stored but not yet applied',
      detail: `Payment ${payment.providerEventId} is stored; delivering it to the collection case failed. It is retried automatically (it is counted once).`,
    });
  }
  // A delivery whose answer was lost (a timeout after the server took it) is sent again: if the
  // case closed having counted this payment, it was applied.
  if (delivery === 'case_closed' && caseRow && (await closedCounting(deps.db, caseRow.id, payment.id))) delivery = 'applied';
  if (flag && delivery !== 'applied') {
    // Money for a case that is closed (or never needed one): kept and flagged for reconciliation,
    // once, whoever applies it (a retry after a lost claim, a re-send, a registration).
    await deps.db
      .insert(auditEvents)
      .values({
        invoiceId: invoice.id,
        caseId: caseRow?.id ?? null,
        actor: payment.recordedBy,
        type: 'payment.unapplied',
        data: { paymentId: payment.id, reference: payment.providerEventId, amountMinor: payment.amountMinor, reason: delivery },
        dedupeKey: `payment.unapplied:${payment.id}`,
      })
      .onConflictDoNothing();
  }
  return delivery;
}

/** Whether the case closed with this payment among those its workflow counted. */
async function closedCounting(db: Database, caseId: string, paymentId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: auditEvents.id })
    .from(auditEvents)
    .where(and(eq(auditEvents.caseId, caseId), eq(auditEvents.type, 'case.closed'), sql`${auditEvents.data}->'appliedPayments' @> ${JSON.stringify([paymentId])}::jsonb`))
    .limit(1);
  return Boolean(row);
}

export function paymentView(payment: PaymentRow) {
  return {
    id: payment.id,
    provider: payment.provider,
    providerEventId: payment.providerEventId,
    amountMinor: payment.amountMinor,
    currency: payment.currency,
    receivedAt: payment.receivedAt.toISOString(),
    recordedBy: payment.recordedBy,
  };
}

function currencyMismatch(externalId: string, invoiceCurrency: string, paymentCurrency: string): string {
  return `Invoice ${externalId} is in ${invoiceCurrency}; the payment is in ${paymentCurrency}.`;
}

/**
 * A payment a collector records by hand (a bank transfer seen on the statement). It goes
 * through the webhooks' outbox: the payment and its delivery row (source "manual", the
 * reference as its id, claimed by this request) are written in one transaction, then applied
 * at once. If the case cannot be reached (Temporal away), the row stays `received` and the
 * payment dispatcher delivers it later: the answer says it is queued. Sent again, the row
 * tells what became of it; one still waiting is tried again now.
 */
export async function recordPayment(deps: ServiceDeps, externalId: string, input: RecordPayment, caller: Caller) {
  const target = await findInvoice(deps, externalId);
  if (target.invoice.currency !== input.currency) {
    throw new HttpProblem(422, 'currency-mismatch', 'Payment currency differs from the invoice', currencyMismatch(externalId, target.invoice.currency, input.currency));
  }
  const claimToken = randomUUID();
  const { stored, row } = await deps.db.transaction(async (tx) => {
    const stored = await storePayment(tx, target, {
      provider: manualPaymentSource,
      providerEventId: input.reference,
      amountMinor: input.amountMinor,
      currency: input.currency,
      receivedAt: input.receivedAt ? new Date(input.receivedAt) : new Date(),
      recordedBy: caller.name,
    });
    return { stored, row: await manualDeliveryRow(tx, externalId, stored, claimToken) };
  });
  let settled = row;
  if (row.status === 'received') {
    const [claimed] = row.claimToken === claimToken ? [row] : await reopenEvent(deps.db, row.id, externalId);
    // Not claimed: settled meanwhile by another holder; its outcome stands.
    settled = claimed ? await applyReopened(deps, claimed) : await findWebhookEvent(deps, row.id);
  }
  const delivery: PaymentDelivery | 'queued' =
    settled.status === 'received' ? 'queued' : settled.status === 'applied' ? 'applied' : target.caseRow ? 'case_closed' : 'no_case';
  return { created: stored.created, delivery, deliveryEvent: settled.id, payment: paymentView(stored.payment) };
}

/**
 * Writes a manual payment's delivery row, claimed by `claimToken`; or reads the one written
 * before. The row records the payment (and so may flag it for reconciliation) only if the
 * payment is new: one recorded before manual payments had rows was delivered then.
 */
async function manualDeliveryRow(db: Database, externalId: string, { payment, created }: StoredPayment, claimToken: string): Promise<WebhookEventRow> {
  const [inserted] = await insertWebhookEvents(db, [
    {
      source: manualPaymentSource,
      eventId: payment.providerEventId,
      type: 'payment.recorded',
      invoiceExternalId: externalId,
      moneyId: payment.providerEventId,
      amountMinor: payment.amountMinor,
      currency: payment.currency,
      paidAt: payment.receivedAt,
      paymentId: created ? payment.id : null,
      payload: paymentView(payment),
      claimToken,
      nextAttemptAt: leaseEnd,
    },
  ]);
  return inserted ?? storedEventByKey(db, manualPaymentSource, payment.providerEventId);
}

/** The stored event with this source and event id (one exists: it was just found to conflict). */
async function storedEventByKey(db: Database, source: string, eventId: string): Promise<WebhookEventRow> {
  const [row] = await db
    .select()
    .from(webhookEvents)
    .where(and(eq(webhookEvents.source, source), eq(webhookEvents.eventId, eventId)));
  return row!;
}

/** A processor's event, verified and read into what Arrears needs from it. */
export type IncomingEvent = {
  source: string;
  eventId: string;
  type: string;
  payload: unknown;
  /** The money it reports, or why it reports none we apply (ignored), or why it is not a valid event. */
  money:
    | { moneyId: string; invoiceExternalId: string | null; amountMinor: number; currency: string; receivedAt: Date }
    | { ignored: string }
    | { invalid: string };
};

export function webhookEventView(row: WebhookEventRow) {
  return {
    id: row.id,
    source: row.source,
    eventId: row.eventId,
    type: row.type,
    status: row.status,
    invoiceExternalId: row.invoiceExternalId,
    amountMinor: row.amountMinor,
    currency: row.currency,
    paymentId: row.paymentId,
    detail: row.detail,
    receivedAt: row.receivedAt.toISOString(),
    processedAt: row.processedAt?.toISOString() ?? null,
    attempts: row.attempts,
    lastError: row.lastError,
  };
}

async function findWebhookEvent(deps: ServiceDeps, id: string): Promise<WebhookEventRow> {
  const [stored] = await deps.db.select().from(webhookEvents).where(eq(webhookEvents.id, id));
  if (!stored) throw new HttpProblem(404, 'webhook-event-not-found', 'Unknown webhook event', `No webhook event with id ${id}.`);
  return stored;
}

export async function getWebhookEvent(deps: ServiceDeps, id: string) {
  return webhookEventView(await findWebhookEvent(deps, id));
}

// As drizzle's insert takes it: a column may be given as SQL (the lease's end is now() + 30 s).
type NewWebhookEvent = PgInsertValue<typeof webhookEvents>;

/** A received event's row, with the claim token that tells it apart in a batch. */
export type NewWebhookEventRow = NewWebhookEvent & { claimToken: string };

/**
 * Inserts received events in one statement, each once per source and event id. For each row,
 * in order: the row as stored, or undefined if its source and event id were stored before (or
 * earlier in the same rows). Rows are told apart by their claim tokens, which are unique.
 */
export async function insertWebhookEvents(db: Database, rows: NewWebhookEventRow[]): Promise<(WebhookEventRow | undefined)[]> {
  // In key order: two statements inserting the same keys in opposite orders could deadlock.
  const ordered = [...rows].sort((a, b) => compareKeys(a, b));
  const inserted = await db
    .insert(webhookEvents)
    .values(ordered)
    .onConflictDoNothing({ target: [webhookEvents.source, webhookEvents.eventId] })
    .returning();
  const byToken = new Map(inserted.map((row) => [row.claimToken, row]));
  return rows.map((row) => byToken.get(row.claimToken));
}

function compareKeys(a: { source: unknown; eventId: unknown }, b: { source: unknown; eventId: unknown }): number {
  const key = (row: { source: unknown; eventId: unknown }) => `${String(row.source)}\u0001${String(row.eventId)}`;
  const [x, y] = [key(a), key(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Takes in a verified webhook event and stores it, once (one row per source and event id).
 * Nothing else happens before the processor gets its answer: a stored event with money is
 * `received`, claimed by this process, and its payment dispatcher (payment-dispatcher.ts)
 * applies it right after. The 200 means "stored, and will be applied"; a duplicate of any
 * stored event changes nothing. `claim` is set when there is something to apply.
 * `insert` writes the row (the webhook routes group concurrent deliveries into one statement).
 */
export async function ingestPaymentEvent(
  deps: ServiceDeps,
  event: IncomingEvent,
  insert: (row: NewWebhookEventRow) => Promise<WebhookEventRow | undefined> = async (row) => (await insertWebhookEvents(deps.db, [row]))[0],
) {
  const money = 'moneyId' in event.money ? event.money : null;
  const claimToken = randomUUID();
  const values = {
    type: event.type,
    invoiceExternalId: money?.invoiceExternalId ?? null,
    moneyId: money?.moneyId ?? null,
    amountMinor: money?.amountMinor ?? null,
    currency: money?.currency ?? null,
    paidAt: money?.receivedAt ?? null,
    // Nothing to apply: the outcome is known at once.
    ...('ignored' in event.money ? { status: 'ignored' as const, detail: event.money.ignored, processedAt: new Date() } : {}),
    ...('invalid' in event.money ? { status: 'invalid' as const, detail: event.money.invalid, processedAt: new Date() } : {}),
    payload: event.payload as object,
    claimToken,
    nextAttemptAt: leaseEnd,
  };
  const inserted = await insert({ source: event.source, eventId: event.eventId, ...values });
  let stored = inserted ?? (await storedEventByKey(deps.db, event.source, event.eventId));
  let fresh = Boolean(inserted);
  // The sender fixed an event we refused as invalid and sent it again under its id: read it anew.
  if (!inserted && stored.status === 'invalid' && !('invalid' in event.money)) {
    const [reread] = await deps.db
      .update(webhookEvents)
      .set({ status: 'received', detail: null, processedAt: null, ...values })
      .where(and(eq(webhookEvents.id, stored.id), eq(webhookEvents.status, 'invalid')))
      .returning();
    if (reread) [stored, fresh] = [reread, true];
  }
  const claim = fresh && stored.status === 'received' ? { id: stored.id, token: claimToken } : undefined;
  return { duplicate: !fresh, claim, event: webhookEventView(stored) };
}

/** A claim on a received event: its holder applies it and records the outcome; no one else does. */
export type EventClaim = OutboxClaim;

/**
 * Claims received events for a dispatcher: those whose retry time (or an abandoned claim's
 * lease) has come, oldest first. Each gets a claim of its own.
 */
export function claimDueEvents(deps: ServiceDeps, limit: number): Promise<EventClaim[]> {
  return claimDue(deps.db, webhookEvents, eq(webhookEvents.status, 'received'), limit);
}

/**
 * Applies a claimed event. The claim is renewed first (a claim that waited in a queue past its
 * lease, and was taken over meanwhile, is dropped). A failure is recorded on the event, which
 * is retried after 1 s, 2 s, 4 s … 5 min (… 10 s while Temporal is unreachable), and then
 * thrown.
 */
export async function applyClaimedEvent(deps: ServiceDeps, claim: EventClaim): Promise<WebhookEventRow | undefined> {
  const [held] = await deps.db
    .update(webhookEvents)
    .set({ nextAttemptAt: leaseEnd })
    .where(and(eq(webhookEvents.id, claim.id), eq(webhookEvents.status, 'received'), eq(webhookEvents.claimToken, claim.token)))
    .returning();
  if (!held) return undefined;
  try {
    return await settleEvent(deps, held);
  } catch (err) {
    await deps.db
      .update(webhookEvents)
      .set(failedAttempt(webhookEvents, err))
      .where(and(eq(webhookEvents.id, claim.id), eq(webhookEvents.claimToken, claim.token)))
      .catch((recordErr) => deps.log?.error({ err: recordErr, webhookEventId: claim.id }, 'recording a failed attempt failed; the lease brings the event back'));
    throw err;
  }
}

/** Matches a stored event to its invoice and applies the money, or records why it cannot. */
async function settleEvent(deps: ServiceDeps, stored: WebhookEventRow): Promise<WebhookEventRow> {
  const actor = `webhook:${stored.source}`;
  if (!stored.moneyId || stored.amountMinor === null || !stored.currency) {
    return markEvent(deps, stored, { status: 'ignored', detail: stored.detail ?? 'The event carries no payment.' });
  }
  if (!stored.invoiceExternalId) {
    return markEvent(deps, stored, { status: 'unmatched', detail: 'The event names no invoice (see the README: metadata arrears_invoice_id).' });
  }
  const target = await lookupInvoice(deps, stored.invoiceExternalId);
  if (!target) return markEvent(deps, stored, { status: 'unmatched', detail: `No invoice with external id ${stored.invoiceExternalId}.` });
  const currency = currencySchema.safeParse(stored.currency);
  if (!currency.success || target.invoice.currency !== stored.currency) {
    return markEvent(deps, stored, { status: 'unmatched', detail: currencyMismatch(stored.invoiceExternalId, target.invoice.currency, stored.currency) });
  }
  try {
    const { payment, created, delivery } = await applyPayment(
      deps,
      target,
      {
        provider: stored.source,
        providerEventId: stored.moneyId,
        amountMinor: stored.amountMinor,
        currency: currency.data,
        receivedAt: stored.paidAt ?? stored.receivedAt,
        recordedBy: actor,
      },
      stored,
    );
    if (!created) {
      // Another event recorded this same money (a Stripe invoice and its charge): that one
      // carries the outcome; this one must not also ask for a refund.
      const [recorder] = await deps.db
        .select({ eventId: webhookEvents.eventId })
        .from(webhookEvents)
        .where(and(eq(webhookEvents.paymentId, payment.id), ne(webhookEvents.id, stored.id)))
        .limit(1);
      if (recorder) {
        return markEvent(deps, stored, { status: 'duplicate', detail: `The same money as event ${recorder.eventId}; counted once, there.` });
      }
    }
    if (delivery !== 'applied') {
      const why = delivery === 'case_closed' ? 'its collection case was already closed' : 'it has no collection case';
      return markEvent(deps, stored, { status: 'unapplied', detail: `Recorded against invoice ${stored.invoiceExternalId}, but ${why}: refund or allocate it.`, paymentId: payment.id });
    }
    return markEvent(deps, stored, { status: 'applied', detail: null, paymentId: payment.id });
  } catch (err) {
    if (err instanceof HttpProblem && err.slug === 'payment-conflict') {
      return markEvent(deps, stored, { status: 'unmatched', detail: err.detail });
    }
    throw err;
  }
}

/** Records how an event was handled, by the holder of its claim only: a stale outcome never overwrites a newer one. */
async function markEvent(
  deps: ServiceDeps,
  stored: WebhookEventRow,
  outcome: { status: Exclude<WebhookEventRow['status'], 'received'>; detail: string | null; paymentId?: string },
): Promise<WebhookEventRow> {
  const [updated] = await deps.db
    .update(webhookEvents)
    .set({ ...outcome, processedAt: new Date() })
    .where(and(eq(webhookEvents.id, stored.id), eq(webhookEvents.status, 'received'), stored.claimToken ? eq(webhookEvents.claimToken, stored.claimToken) : isNull(webhookEvents.claimToken)))
    .returning();
  return updated ?? (await deps.db.select().from(webhookEvents).where(eq(webhookEvents.id, stored.id)))[0]!;
}

export async function listWebhookEvents(
  deps: ServiceDeps,
  filter: { status?: WebhookEventRow['status']; source?: string; limit: number; offset: number },
) {
  const where = and(
    filter.status ? eq(webhookEvents.status, filter.status) : undefined,
    filter.source ? eq(webhookEvents.source, filter.source) : undefined,
  );
  const [rows, [total]] = await Promise.all([
    deps.db.select().from(webhookEvents).where(where).orderBy(desc(webhookEvents.receivedAt)).limit(filter.limit).offset(filter.offset),
    deps.db.select({ n: count() }).from(webhookEvents).where(where),
  ]);
  return { total: total!.n, events: rows.map(webhookEventView) };
}

/**
 * Makes an unmatched event ready to be applied to `invoiceExternalId`, claimed by the caller;
 * or takes over one still being applied for that same invoice (its holder may have looked for
 * the invoice before it existed; its outcome is then dropped). An event on its way elsewhere
 * is left alone.
 */
function reopenEvent(db: ServiceDeps['db'], id: string, invoiceExternalId: string) {
  return db
    .update(webhookEvents)
    .set({ status: 'received', invoiceExternalId, detail: null, claimToken: randomUUID(), nextAttemptAt: leaseEnd })
    .where(
      and(
        eq(webhookEvents.id, id),
        or(eq(webhookEvents.status, 'unmatched'), and(eq(webhookEvents.status, 'received'), eq(webhookEvents.invoiceExternalId, invoiceExternalId))),
      ),
    )
    .returning();
}

/** Applies a reopened event now; if that fails, it stays received and the dispatcher retries it. */
async function applyReopened(deps: ServiceDeps, reopened: WebhookEventRow): Promise<WebhookEventRow> {
  try {
    return (await applyClaimedEvent(deps, { id: reopened.id, token: reopened.claimToken! })) ?? (await findWebhookEvent(deps, reopened.id));
  } catch (err) {
    deps.log?.error({ err, webhookEventId: reopened.id }, 'applying a stored payment failed; the dispatcher retries it');
    return findWebhookEvent(deps, reopened.id);
  }
}

/**
 * Money that arrived before its invoice was registered (kept as unmatched under that invoice's
 * id) is applied as soon as the invoice exists.
 */
export async function applyWaitingPayments(deps: ServiceDeps, invoiceExternalId: string): Promise<number> {
  const waiting = await deps.db
    .select({ id: webhookEvents.id })
    .from(webhookEvents)
    .where(
      and(
        eq(webhookEvents.invoiceExternalId, invoiceExternalId),
        inArray(webhookEvents.status, ['unmatched', 'received']),
        isNotNull(webhookEvents.moneyId),
      ),
    );
  let applied = 0;
  for (const { id } of waiting) {
    const [reopened] = await reopenEvent(deps.db, id, invoiceExternalId);
    if (reopened && (await applyReopened(deps, reopened)).status === 'applied') applied++;
  }
  return applied;
}

/**
 * Reconciliation: a person names the invoice an unmatched event pays, and it is applied as if
 * it had named that invoice itself. The match is audited when it is made; if applying fails
 * then, the event stays received and the dispatcher finishes it.
 */
export async function matchWebhookEvent(deps: ServiceDeps, id: string, invoiceExternalId: string, caller: Caller) {
  const stored = await findWebhookEvent(deps, id);
  // `received`: a match (or delivery) still being applied; matching again takes it over.
  if ((stored.status !== 'unmatched' && stored.status !== 'received') || !stored.moneyId) {
    throw new HttpProblem(409, 'webhook-event-not-unmatched', 'Event is not waiting for a match', `Event ${id} is ${stored.status}; only unmatched payments can be matched.`);
  }
  const target = await findInvoice(deps, invoiceExternalId);
  if (target.invoice.currency !== stored.currency) {
    throw new HttpProblem(422, 'currency-mismatch', 'Payment currency differs from the invoice', currencyMismatch(invoiceExternalId, target.invoice.currency, stored.currency ?? '?'));
  }
  const reopened = await deps.db.transaction(async (tx) => {
    const [row] = await reopenEvent(tx, stored.id, invoiceExternalId);
    if (!row) return undefined;
    await tx.insert(auditEvents).values({
      invoiceId: target.invoice.id,
      caseId: target.caseRow?.id ?? null,
      actor: caller.name,
      type: 'webhook_event.matched',
      data: { webhookEventId: id, source: stored.source, eventId: stored.eventId, previousStatus: stored.status },
    });
    return row;
  });
  if (!reopened) throw new HttpProblem(409, 'webhook-event-not-unmatched', 'Event is not waiting for a match', `Event ${id} was matched by someone else just now.`);
  return webhookEventView(await applyReopened(deps, reopened));
}

/**
 * Registers an invoice (see registerInvoice) and applies any money that arrived for it before:
 * every way of registering goes through here. On every registration, not only the first: one
 * whose workflow start failed is retried by registering again.
 */
export async function registerInvoiceWithWaitingPayments(deps: ServiceDeps, input: RegisterInvoice, caller: Caller) {
  let result;
  try {
    result = await registerInvoice(deps, input, caller);
  } catch (err) {
    // 503: the invoice is stored but its workflow did not start. Its waiting money is recorded
    // against it all the same (the case starts with it, whenever it starts).
    if (err instanceof HttpProblem && err.status === 503) await applyWaitingPayments(deps, input.externalId).catch(() => undefined);
    throw err;
  }
  await applyWaitingPayments(deps, result.invoice.externalId);
  return result;
}
