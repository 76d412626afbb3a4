import { ApplicationFailure } from '@temporalio/common';
import { and, eq, gt, inArray, isNotNull, isNull, ne, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import type { deliveredCommandNames } from '../db/schema';
import { auditEvents, callTasks, collectionCases, commandOutbox, communications, customers, invoiceAdjustments, invoices, letters, manualPaymentSource, payments, webhookEvents } from '../db/schema';
import { daysOverdue } from '../domain/collection';
import { nextContactTime } from '../domain/contact-window';
import type { Currency } from '../domain/money';
import type { ContactWindow, Tone } from '../domain/policy';
import { formatPostalAddress, renderLetterPdf } from './letter-pdf';
import type { Mailer } from './mailer';
import { renderMessage } from './templates';

export type ChannelDeps = {
  db: Database;
  mailer: Mailer;
  business: { name: string; address: string[]; paymentInstructions: string };
  /** What time it is, for the debtor's contact window: the wall clock, or a test server's skipped time. */
  clock?: () => Promise<Date>;
};

/** What every step activity is given by the workflow. */
export type StepInput = {
  workflowId: string;
  /** With the workflow id, the idempotency key of what the step does. */
  stepId: string;
  template: string;
  tone: Tone;
  amountOutstandingMinor: number;
  /** All money the case had counted when the step ran (minor units): payments recorded since are taken off what the message states. */
  paidMinor?: number;
  /** Workflow time when the step ran (ISO instant): dates in the text and the records. */
  at: string;
  /** For a final notice: the date the account will be referred. */
  referralDate?: string;
  /** For a dispute verification: what the review found. */
  reason?: string;
  /** For a payment plan reminder: the instalment that falls due. */
  instalment?: { dueDate: string; amountMinor: number };
  /**
   * For a contact: the debtor's zone and the case's contact window, which every attempt keeps to.
   * Absent from steps scheduled by workflow code that did not give it (they are not held).
   */
  contactWindow?: { timeZone: string; window: ContactWindow };
};

type Db = Database | Parameters<Parameters<Database['transaction']>[0]>[0];

/** The case, invoice and customer behind a workflow. */
export async function loadCase(db: Db, workflowId: string) {
  const [row] = await db
    .select({ caseId: collectionCases.id, invoice: invoices, customer: customers })
    .from(collectionCases)
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .innerJoin(customers, eq(customers.id, invoices.customerId))
    .where(eq(collectionCases.workflowId, workflowId));
  if (!row) throw ApplicationFailure.nonRetryable(`no collection case for workflow ${workflowId}`, 'CaseNotFound');
  return row;
}

/**
 * Case commands that stop a step in flight (the workflow's runStepUnlessStopped): a dispute stops
 * any step, a request to cease contact only those that contact the debtor (not a credit hold).
 */
const stepStoppingCommands = { contact: ['dispute', 'cease-communication'], other: ['dispute'] } satisfies Record<string, (typeof deliveredCommandNames)[number][]>;

/**
 * A contact that must wait for money (or a cancellation) the case is about to hear of: retried
 * every 10 s. The workflow knows the type: it cancels the step when the case ends, and a step
 * it blocked is tried again when a payment arrives.
 */
function paymentInFlight(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'PaymentInFlight', message, nextRetryDelay: '10 seconds' });
}

/**
 * Keeps an attempt to contact the debtor inside their contact window. The workflow waits for the
 * window before a contact, but an attempt can still fall outside it: a retry after SendGrid
 * failed, an attempt that waited in a backlog or for SendGrid's rate limit. Such an attempt
 * contacts nobody and is retried when the window next opens (one attempt of the step's retries).
 */
async function holdOutsideContactWindow(deps: ChannelDeps, input: StepInput): Promise<void> {
  if (!input.contactWindow) return;
  const { timeZone, window } = input.contactWindow;
  const now = deps.clock ? await deps.clock() : new Date();
  const opensAt = nextContactTime(now, timeZone, window);
  if (opensAt.getTime() <= now.getTime()) return;
  throw ApplicationFailure.create({
    type: 'OutsideContactWindow',
    message: `outside the debtor's contact window (${window.start}–${window.end} ${timeZone}): the contact is made when it opens, at ${opensAt.toISOString()}`,
    nextRetryDelay: opensAt.getTime() - now.getTime(),
  });
}

/**
 * What the debtor still owes as a contact goes out: the balance the case gave the step, less
 * money recorded against the invoice that the case had not counted then (a payment it has not
 * heard of yet, or heard of after the step began: a step's retries keep their first input), and
 * less credit notes that reached the case after the step began. The message states that amount,
 * never one the debtor has already paid or been credited.
 *
 * While a payment, credit note, cancellation, dispute or request to cease contact for the invoice
 * is stored and not yet applied (a processor's webhook or a collector's command taken while
 * Temporal was away, say), or when nothing is owed any more, no
 * contact is made: the step fails for a retry, and the workflow cancels it the moment the case
 * is paid or ends. One still not applied after the step's retries blocks the case with this
 * reason, for operations, instead of chasing a customer who paid.
 */
async function amountStillOwed(db: Db, c: Awaited<ReturnType<typeof loadCase>>, input: StepInput, step: keyof typeof stepStoppingCommands = 'contact'): Promise<number> {
  if (c.invoice.status === 'cancelled') {
    // Only a cancellation the case has not heard of yet: the case ends (and stops this step) when it does.
    throw paymentInFlight(
      `invoice ${c.invoice.number} is cancelled, and its case has not heard of it yet: the debtor is not contacted; the case closes when the cancellation reaches it (the API forwards it automatically)`,
    );
  }
  // A dispute (or, for a contact, a request to cease contact) stops the step the moment its case
  // has it; sent while Temporal was away, it waits in the API's outbox, and the step waits for it.
  // One delivered after the step began holds it too: the case has it and is cancelling this step,
  // but an attempt that starts meanwhile must not contact the debtor first.
  const [stopping] = await db
    .select({ name: commandOutbox.name, requestedBy: commandOutbox.requestedBy, delivered: isNotNull(commandOutbox.outcome) })
    .from(commandOutbox)
    .where(
      and(
        eq(commandOutbox.caseId, c.caseId),
        inArray(commandOutbox.name, stepStoppingCommands[step]),
        or(isNull(commandOutbox.outcome), and(eq(commandOutbox.outcome, 'applied'), gt(commandOutbox.deliveredAt, sql`${input.at}::timestamptz`))),
      ),
    )
    .limit(1);
  if (stopping) {
    const what = `a ${stopping.name} command for invoice ${c.invoice.number} (sent by ${stopping.requestedBy})`;
    throw paymentInFlight(
      stopping.delivered
        ? `${what} reached the case after this step began: the case stops the step, and the debtor is not contacted`
        : `${what} is stored and not yet delivered to the case: the debtor is not contacted until it is (the API delivers it automatically)`,
    );
  }
  // `forwarded_at` is when the forwarding that reached the case began, so one after the step
  // began reached the case after the step's balance was taken.
  const [credits] = (await db
    .select({
      pending: sql<string | null>`max(${invoiceAdjustments.adjustmentId}) filter (where ${invoiceAdjustments.nextAttemptAt} is not null)`,
      sinceStep: sql<string>`coalesce(sum(${invoiceAdjustments.amountMinor}) filter (where ${invoiceAdjustments.forwardedAt} > ${input.at}::timestamptz), 0)`,
    })
    .from(invoiceAdjustments)
    .where(eq(invoiceAdjustments.invoiceId, c.invoice.id))) as [{ pending: string | null; sinceStep: string }];
  if (credits.pending) {
    throw paymentInFlight(
      `credit note ${credits.pending} for invoice ${c.invoice.number} is stored and not yet forwarded to the case: the debtor is not contacted until it is (the API forwards it automatically)`,
    );
  }
  const [stored] = await db
    .select({ source: webhookEvents.source, eventId: webhookEvents.eventId, amountMinor: webhookEvents.amountMinor, currency: webhookEvents.currency })
    .from(webhookEvents)
    .where(
      and(
        eq(webhookEvents.invoiceExternalId, c.invoice.externalId),
        eq(webhookEvents.status, 'received'),
        isNotNull(webhookEvents.moneyId),
        gt(webhookEvents.amountMinor, 0),
      ),
    )
    .limit(1);
  if (stored) {
    throw paymentInFlight(
      `a payment for invoice ${c.invoice.number} (${stored.source === manualPaymentSource ? 'recorded by hand, reference' : `${stored.source} event`} ${stored.eventId}, ${stored.amountMinor} ${stored.currency} in minor units) is stored and not yet applied to the case: the debtor is not contacted until it is`,
    );
  }
  const credited = Number(credits.sinceStep);
  // Steps scheduled by workflow code from before `paidMinor` state what the case gave them, less credits.
  if (input.paidMinor === undefined) return owedOrHeld(c, input.amountOutstandingMinor - credited, `${credited} in minor units credited since this step began`);
  const [{ recorded }] = (await db
    .select({ recorded: sql<string>`coalesce(sum(${payments.amountMinor}), 0)` })
    .from(payments)
    .where(eq(payments.invoiceId, c.invoice.id))) as [{ recorded: string }];
  const uncounted = Math.max(0, Number(recorded) - input.paidMinor);
  return owedOrHeld(
    c,
    input.amountOutstandingMinor - uncounted - credited,
    `${recorded} in minor units recorded, of which the case had counted ${input.paidMinor} when this step began${credited ? `, and ${credited} credited since` : ''}`,
  );
}

/** The amount, if any is owed; else the contact waits for the case to hear why not (and close). */
function owedOrHeld(c: Awaited<ReturnType<typeof loadCase>>, owed: number, why: string): number {
  if (owed > 0) return owed;
  throw paymentInFlight(
    `nothing is owed on invoice ${c.invoice.number} (${why}): the debtor is not contacted, and the case closes when it hears of it; if it does not within minutes, send the payment again (same reference: it is counted once)`,
  );
}

function render(deps: ChannelDeps, input: StepInput, c: Awaited<ReturnType<typeof loadCase>>, template = input.template) {
  return renderMessage({
    template,
    tone: input.tone,
    locale: c.customer.locale,
    customerName: c.customer.name,
    invoiceNumber: c.invoice.number,
    amountOutstandingMinor: input.amountOutstandingMinor,
    currency: c.invoice.currency as Currency,
    dueDate: c.invoice.dueDate,
    daysOverdue: daysOverdue(c.invoice.dueDate, new Date(input.at)),
    paymentInstructions: deps.business.paymentInstructions,
    businessName: deps.business.name,
    ...(input.referralDate ? { referralDate: input.referralDate } : {}),
    ...(input.reason ? { reason: input.reason } : {}),
    ...(input.instalment ? { instalmentDueDate: input.instalment.dueDate, instalmentAmountMinor: input.instalment.amountMinor } : {}),
  });
}

const key = (input: Pick<StepInput, 'workflowId' | 'stepId'>, channel: string) => `${input.workflowId}:${input.stepId}:${channel}`;

/** What deliverEmail reports, and what markEmailSent records. */
export type EmailDelivery = { communicationId: string; sent: boolean; messageId: string | null };

/**
 * Sends a step's e-mail through SendGrid, without marking it sent: the workflow records
 * that with markEmailSent, a bookkeeping activity that retries until the database answers.
 * SendGrid's 202 thus ends this activity, and its result is in the workflow's history even
 * when the database is away at that moment, so a database outage never sends it twice.
 * The communication row (keyed by workflow id + step) is written before the send; a retry
 * after a recorded send does nothing. A worker that dies between SendGrid's 202 and reporting
 * this activity complete is the one at-least-once window: the retry sends again.
 * A permanent refusal marks the row failed and fails the step for the workflow to block on.
 */
export async function deliverEmail(deps: ChannelDeps, input: StepInput): Promise<EmailDelivery> {
  const idempotencyKey = key(input, 'email');
  const c = await loadCase(deps.db, input.workflowId);
  const [existing] = await deps.db.select().from(communications).where(eq(communications.idempotencyKey, idempotencyKey));
  if (existing?.status === 'sent') return { communicationId: existing.id, sent: false, messageId: existing.providerMessageId };
  await holdOutsideContactWindow(deps, input);
  const owed = await amountStillOwed(deps.db, c, input);
  if (!c.customer.email) {
    throw ApplicationFailure.nonRetryable(`customer ${c.customer.externalId} has no e-mail address`, 'EmailRejected');
  }
  const message = render(deps, { ...input, amountOutstandingMinor: owed }, c);
  let row = existing;
  if (!row) {
    [row] = await deps.db
      .insert(communications)
      .values({
        caseId: c.caseId,
        idempotencyKey,
        channel: 'email',
        template: input.template,
        tone: input.tone,
        locale: c.customer.locale,
        recipient: c.customer.email,
        subject: message.subject,
        body: message.text,
        status: 'queued',
        createdAt: new Date(input.at),
      })
      .onConflictDoUpdate({ target: communications.idempotencyKey, set: { status: sql`${communications.status}` } })
      .returning();
  } else if (row.subject !== message.subject || row.body !== message.text) {
    // A retry may state less than the attempt before it (a part payment meanwhile): the row keeps what is sent.
    const [updated] = await deps.db
      .update(communications)
      .set({ subject: message.subject, body: message.text })
      .where(and(eq(communications.id, row.id), ne(communications.status, 'sent')))
      .returning();
    row = updated ?? row;
  }

  try {
    const { messageId } = await deps.mailer.send({
      to: c.customer.email,
      subject: message.subject,
      text: message.text,
      html: message.html,
      idempotencyKey,
      // After a wait for SendGrid's rate limit: still inside the window, still owed, and the
      // same amount (else written again).
      stillDue: async () => {
        await holdOutsideContactWindow(deps, input);
        const owedNow = await amountStillOwed(deps.db, c, input);
        if (owedNow !== owed) throw paymentInFlight(`the balance of invoice ${c.invoice.number} changed from ${owed} to ${owedNow} while this e-mail waited its turn: it is written again`);
      },
    });
    const delivery = { communicationId: row!.id, sent: true, messageId };
    await recordSentMeanwhile(deps, c, input, delivery);
    return delivery;
  } catch (err) {
    if (err instanceof ApplicationFailure && err.nonRetryable) {
      await deps.db
        .update(communications)
        .set({ status: 'failed', failureReason: err.message })
        .where(eq(communications.id, row!.id));
    }
    throw err;
  }
}

/**
 * Marks the e-mail sent from the attempt itself, as well as by the workflow's markEmailSent
 * (which retries until the database answers): a step stopped by a payment while this attempt
 * was under way drops the attempt's result, yet the e-mail went out, and the record must say
 * so. Best effort and brief: it must neither fail nor hold past its timeout an attempt whose
 * e-mail SendGrid has accepted (a retry would send it again).
 */
async function recordSentMeanwhile(deps: ChannelDeps, c: Awaited<ReturnType<typeof loadCase>>, input: StepInput, delivery: EmailDelivery): Promise<void> {
  const marked = writeEmailSent(deps.db, c, { ...input, ...delivery }).catch(() => undefined);
  await Promise.race([marked, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
}

type SentEmail = Pick<StepInput, 'workflowId' | 'stepId' | 'template' | 'at'> & { communicationId: string; messageId: string | null };

/** Marks a delivered e-mail sent, with its audit event; a repeat changes nothing. */
export async function markEmailSent(deps: { db: Database }, input: SentEmail): Promise<void> {
  await writeEmailSent(deps.db, await loadCase(deps.db, input.workflowId), input);
}

async function writeEmailSent(db: Database, c: Awaited<ReturnType<typeof loadCase>>, input: SentEmail): Promise<void> {
  await db.transaction(async (tx) => {
    await tx
      .update(communications)
      .set({ status: 'sent', providerMessageId: input.messageId, failureReason: null })
      .where(eq(communications.id, input.communicationId));
    await tx
      .insert(auditEvents)
      .values({
        caseId: c.caseId,
        invoiceId: c.invoice.id,
        actor: 'workflow',
        type: 'communication.sent',
        data: { communicationId: input.communicationId, channel: 'email', stepId: input.stepId, template: input.template, messageId: input.messageId },
        dedupeKey: key(input, 'email'),
        occurredAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: auditEvents.dedupeKey });
  });
}

/**
 * Both steps in one activity: what workflows started before deliverEmail existed still call.
 * Here a database outage right after SendGrid's 202 fails the activity, and its retry sends again.
 */
export async function sendEmail(deps: ChannelDeps, input: StepInput): Promise<{ communicationId: string; sent: boolean }> {
  const delivery = await deliverEmail(deps, input);
  if (delivery.sent) await markEmailSent(deps, { ...input, ...delivery });
  return { communicationId: delivery.communicationId, sent: delivery.sent };
}

/** Renders a step's letter to PDF and queues it for print and mail, once per workflow + step. */
export async function sendLetter(
  deps: ChannelDeps,
  input: StepInput & { certified: boolean },
): Promise<{ communicationId: string; created: boolean }> {
  const idempotencyKey = key(input, 'letter');
  return deps.db.transaction(async (tx) => {
    const [existing] = await tx.select().from(communications).where(eq(communications.idempotencyKey, idempotencyKey));
    if (existing) return { communicationId: existing.id, created: false };
    const c = await loadCase(tx, input.workflowId);
    const owed = await amountStillOwed(tx, c, input);
    if (!c.customer.postalAddress) {
      throw ApplicationFailure.nonRetryable(`customer ${c.customer.externalId} has no postal address`, 'LetterUndeliverable');
    }
    const message = render(deps, { ...input, amountOutstandingMinor: owed }, c);
    const pdf = await renderLetterPdf({
      businessName: deps.business.name,
      businessAddress: deps.business.address,
      recipientName: c.customer.name,
      recipientAddress: c.customer.postalAddress,
      date: input.at.slice(0, 10),
      locale: c.customer.locale,
      subject: message.subject,
      body: message.text,
      invoiceNumber: c.invoice.number,
      amountOutstandingMinor: owed,
      currency: c.invoice.currency as Currency,
      dueDate: c.invoice.dueDate,
      certified: input.certified,
    });
    const [comm] = await tx
      .insert(communications)
      .values({
        caseId: c.caseId,
        idempotencyKey,
        channel: 'letter',
        template: input.template,
        tone: input.tone,
        locale: c.customer.locale,
        recipient: formatPostalAddress(c.customer.name, c.customer.postalAddress),
        subject: message.subject,
        body: message.text,
        status: 'queued',
        createdAt: new Date(input.at),
      })
      .returning();
    await tx.insert(letters).values({
      communicationId: comm!.id,
      pdf,
      address: formatPostalAddress(c.customer.name, c.customer.postalAddress),
      certified: input.certified ? 'yes' : 'no',
    });
    await tx.insert(auditEvents).values({
      caseId: c.caseId,
      invoiceId: c.invoice.id,
      actor: 'workflow',
      type: 'letter.queued',
      data: { communicationId: comm!.id, stepId: input.stepId, template: input.template, certified: input.certified },
      dedupeKey: idempotencyKey,
      occurredAt: new Date(input.at),
    });
    return { communicationId: comm!.id, created: true };
  });
}

/** Puts a call on the collectors' worklist, once per workflow + step. */
export async function createCallTask(deps: ChannelDeps, input: StepInput): Promise<{ taskId: string; created: boolean }> {
  const idempotencyKey = key(input, 'call');
  return deps.db.transaction(async (tx) => {
    const [existing] = await tx.select({ id: callTasks.id }).from(callTasks).where(eq(callTasks.idempotencyKey, idempotencyKey));
    if (existing) return { taskId: existing.id, created: false };
    const c = await loadCase(tx, input.workflowId);
    const message = render(deps, { ...input, amountOutstandingMinor: await amountStillOwed(tx, c, input) }, c, 'reminder_letter');
    const [task] = await tx
      .insert(callTasks)
      .values({
        caseId: c.caseId,
        idempotencyKey,
        template: input.template,
        brief: `Call ${c.customer.name} about invoice ${c.invoice.number}. Talking points:\n${message.text}`,
        phone: c.customer.phone,
        dueAt: new Date(input.at),
      })
      .returning({ id: callTasks.id });
    await tx.insert(auditEvents).values({
      caseId: c.caseId,
      invoiceId: c.invoice.id,
      actor: 'workflow',
      type: 'call_task.created',
      data: { taskId: task!.id, stepId: input.stepId },
      dedupeKey: idempotencyKey,
      occurredAt: new Date(input.at),
    });
    return { taskId: task!.id, created: true };
  });
}

/** Flags the customer: no more credit until the account is settled. Idempotent. */
export async function placeCreditHold(deps: ChannelDeps, input: StepInput): Promise<void> {
  const idempotencyKey = key(input, 'credit-hold');
  await deps.db.transaction(async (tx) => {
    const c = await loadCase(tx, input.workflowId);
    // No hold for a customer whose invoice is paid or withdrawn, as far as the case has yet heard.
    await amountStillOwed(tx, c, input, 'other');
    await tx
      .update(customers)
      .set({ creditHoldSince: new Date(input.at) })
      .where(and(eq(customers.id, c.customer.id), isNull(customers.creditHoldSince)));
    await tx
      .insert(auditEvents)
      .values({
        caseId: c.caseId,
        invoiceId: c.invoice.id,
        actor: 'workflow',
        type: 'customer.credit_hold',
        data: { customerExternalId: c.customer.externalId, stepId: input.stepId },
        dedupeKey: idempotencyKey,
        occurredAt: new Date(input.at),
      })
      .onConflictDoNothing({ target: auditEvents.dedupeKey });
  });
}

/** Appends one audit event for the case, once per workflow + type + step. */
export async function recordCaseEvent(
  deps: { db: Database },
  input: { workflowId: string; type: string; data: Record<string, unknown> & { stepId?: string } },
): Promise<void> {
  const c = await loadCase(deps.db, input.workflowId);
  await deps.db
    .insert(auditEvents)
    .values({
      caseId: c.caseId,
      invoiceId: c.invoice.id,
      actor: 'workflow',
      type: input.type,
      data: input.data,
      dedupeKey: `${input.workflowId}:${input.type}:${input.data.stepId ?? ''}`,
    })
    .onConflictDoNothing({ target: auditEvents.dedupeKey });
}
