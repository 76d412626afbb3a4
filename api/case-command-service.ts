import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { SignalDefinition } from '@temporalio/common';
import type { StoredCase } from '../cases/collection-start';
import { and, eq, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import { auditEvents, commandOutbox, invoices } from '../db/schema';
import { positiveMinorUnitsSchema } from '../domain/schemas';
import {
  ceaseCommunicationSignal,
  openDisputeSignal,
  pauseSignal,
  paymentPlanSignal,
  promiseToPaySignal,
  proposeSettlementSignal,
  resolveDisputeSignal,
  resumeSignal,
} from '../workflows/messages';
import type { Caller } from './auth';
import { deliverToCase, findInvoice, type ServiceDeps } from './invoice-service';
import { claimDue, failedAttempt, leaseEnd, type OutboxClaim } from './outbox';
import { startDispatcher, type PaymentDispatcher, type PaymentDispatcherOptions } from './payment-dispatcher';
import { HttpProblem } from './problem';
import { reasonSchema as reason } from './schemas';

/** Collectors' commands on a case: what each is for, and its body. */
const isoDate = z.iso.date();

export const caseCommands = {
  dispute: { summary: 'Open a dispute: every contact stops at once', body: z.object({ reason }) },
  'dispute-resolution': {
    summary: 'Resolve the open dispute, for the debtor (credit or cancel) or against (verify and resume)',
    body: z
      .object({
        resolution: z.enum(['customer_favour', 'business_favour']),
        note: reason,
        creditMinor: positiveMinorUnitsSchema.optional(),
        cancelInvoice: z.boolean().optional(),
      })
      .refine((b) => b.resolution === 'customer_favour' || (b.creditMinor === undefined && !b.cancelInvoice), {
        error: 'a credit or cancellation only goes with resolution customer_favour',
      }),
  },
  promise: { summary: 'Record a promise to pay: contacts pause until the date plus grace', body: z.object({ promisedDate: isoDate, amountMinor: positiveMinorUnitsSchema }) },
  'payment-plan': {
    summary: 'Agree a payment plan: instalments that add up to the amount outstanding',
    body: z.object({
      instalments: z
        .array(z.object({ dueDate: isoDate, amountMinor: positiveMinorUnitsSchema }))
        .min(1)
        .max(60)
        .refine((list) => list.every((item, i) => i === 0 || list[i - 1]!.dueDate < item.dueDate), { error: 'due dates must rise' }),
    }),
  },
  settlement: {
    summary: 'Propose a reduced lump-sum settlement (an approver must accept it)',
    body: z.object({ amountMinor: positiveMinorUnitsSchema, payBy: isoDate, waiveFees: z.boolean().default(false) }),
  },
  'cease-communication': { summary: 'The debtor asked for no contact: no more e-mails, letters or calls', body: z.object({ reason }) },
  pause: { summary: 'Pause the case (operations), with a reason', body: z.object({ reason }) },
  resume: { summary: 'Resume a paused case, or retry the step a blocked case stopped at', body: z.object({ reason }) },
  notes: { summary: 'Add a note to the case timeline', body: z.object({ text: z.string().trim().min(1).max(5000) }) },
} as const;

export type CaseCommandName = keyof typeof caseCommands;
type CommandName = CaseCommandName;

/** The invoice's case, which must be open: commands on a closed case are refused. */
async function openCase(services: ServiceDeps, externalId: string): Promise<StoredCase> {
  const { invoice, customer, caseRow } = await findInvoice(services, externalId);
  if (!caseRow || caseRow.stage === 'Closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `Invoice ${externalId} has no open collection case.`);
  }
  return { invoice, customer, caseRow };
}

/** The signal that carries the command to its case, with its message; notes have none (they only go to the timeline). */
function commandSignal(name: CommandName, base: { messageId: string; by: string }, body: Record<string, unknown>) {
  const message = <Message>(signal: SignalDefinition<[Message]>, value: Message) => ({ signal: signal as SignalDefinition<[unknown]>, value });
  switch (name) {
    case 'dispute':
      return message(openDisputeSignal, { ...base, reason: body.reason as string });
    case 'dispute-resolution': {
      const resolution = body as { resolution: 'customer_favour' | 'business_favour'; note: string; creditMinor?: number; cancelInvoice?: boolean };
      return message(resolveDisputeSignal, { ...base, ...resolution });
    }
    case 'promise':
      return message(promiseToPaySignal, { ...base, promisedDate: body.promisedDate as string, amountMinor: body.amountMinor as number });
    case 'payment-plan':
      return message(paymentPlanSignal, { ...base, instalments: body.instalments as { dueDate: string; amountMinor: number }[] });
    case 'settlement':
      return message(proposeSettlementSignal, {
        ...base,
        amountMinor: body.amountMinor as number,
        payBy: body.payBy as string,
        waiveFees: Boolean(body.waiveFees),
      });
    case 'cease-communication':
      return message(ceaseCommunicationSignal, { ...base, reason: body.reason as string });
    case 'pause':
      return message(pauseSignal, { ...base, reason: body.reason as string });
    case 'resume':
      return message(resumeSignal, { ...base, reason: body.reason as string });
    case 'notes':
      return undefined;
  }
}

/**
 * What the caller is told: `applied` (its case has it), `queued` (stored; Temporal could not be
 * reached, and the command dispatcher delivers it once it can).
 */
export type CommandDelivery = 'applied' | 'queued';

/**
 * Validates a command against the case, stores it, delivers it to the workflow, and records it
 * in the audit trail with who sent it, with a message id: `${name}:${idempotencyKey}` when the
 * caller gives a key, so a retried request changes nothing. A command that cannot reach its case
 * now (Temporal away, or slow to answer) is kept and delivered later: `queued`.
 */
export async function sendCaseCommand(
  services: ServiceDeps,
  input: { externalId: string; name: CommandName; body: Record<string, unknown>; caller: Caller; idempotencyKey?: string },
): Promise<{ messageId: string; delivery: CommandDelivery }> {
  const { externalId, name, body, caller } = input;
  const stored = await openCase(services, externalId);
  const { caseRow, invoice } = stored;
  if (name === 'payment-plan') {
    const total = (body.instalments as { amountMinor: number }[]).reduce((sum, i) => sum + i.amountMinor, 0);
    if (total !== caseRow.amountOutstandingMinor) {
      throw new HttpProblem(
        422,
        'plan-does-not-cover-balance',
        'The instalments do not add up to the amount outstanding',
        `The instalments add up to ${total}; ${caseRow.amountOutstandingMinor} is outstanding.`,
      );
    }
  }
  if (name === 'settlement' && (body.amountMinor as number) >= caseRow.amountOutstandingMinor) {
    throw new HttpProblem(422, 'settlement-not-reduced', 'A settlement must be below the amount outstanding', `${caseRow.amountOutstandingMinor} is outstanding.`);
  }
  const messageId = `${name}:${input.idempotencyKey ?? randomUUID()}`;
  if (name === 'notes') {
    // A note goes to the timeline only: nothing to deliver.
    await services.db.insert(auditEvents).values(commandAudit(caseRow, invoice.id, caller.name, name, body, messageId)).onConflictDoNothing({ target: auditEvents.dedupeKey });
    return { messageId, delivery: 'applied' };
  }

  // Stored first, under this request's claim; sent again with the same key, it is the same row.
  const claimToken = randomUUID();
  const [inserted] = await services.db
    .insert(commandOutbox)
    .values({ caseId: caseRow.id, invoiceId: invoice.id, name, messageId, body, requestedBy: caller.name, claimToken, nextAttemptAt: leaseEnd })
    .onConflictDoNothing({ target: [commandOutbox.caseId, commandOutbox.messageId] })
    .returning({ id: commandOutbox.id });
  let rowId = inserted?.id;
  if (!rowId) {
    const [existing] = await services.db.select().from(commandOutbox).where(and(eq(commandOutbox.caseId, caseRow.id), eq(commandOutbox.messageId, messageId)));
    if (existing!.outcome) return answer(externalId, messageId, existing!.outcome);
    // Sent again before its case had it: delivered now, under this request's claim.
    await services.db.update(commandOutbox).set({ claimToken, nextAttemptAt: leaseEnd }).where(and(eq(commandOutbox.id, existing!.id), isNull(commandOutbox.outcome)));
    rowId = existing!.id;
  }
  let outcome: CommandOutcome | 'behind' | undefined;
  try {
    outcome = await applyClaimedCommand(services, { id: rowId, token: claimToken });
  } catch (err) {
    // Stored, and retried by the command dispatcher (the failure is recorded, or the claim's
    // lease runs out). (Temporal being away is logged where it is found.)
    if (!(err instanceof HttpProblem && err.slug === 'temporal-unavailable')) services.log?.error({ err, messageId }, 'delivering a case command failed; it is queued');
  }
  // Undefined: a repeat of it took it over meanwhile; what that one did stands.
  if (outcome === undefined) outcome = await services.db
    .select({ outcome: commandOutbox.outcome })
    .from(commandOutbox)
    .where(eq(commandOutbox.id, rowId))
    .then(([now]) => now?.outcome ?? undefined)
    .catch(() => undefined);
  return outcome && outcome !== 'behind' ? answer(externalId, messageId, outcome) : { messageId, delivery: 'queued' };
}

type CommandOutcome = (typeof commandOutbox.$inferSelect)['outcome'] & string;

/** The answer for a command whose delivery has ended: applied, or 409 if its case had closed. */
function answer(externalId: string, messageId: string, outcome: CommandOutcome): { messageId: string; delivery: CommandDelivery } {
  if (outcome === 'case_closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `The case of invoice ${externalId} closed before the command arrived; nothing was changed.`);
  }
  return { messageId, delivery: 'applied' };
}

/** The timeline's record of a command, once per case and message id. */
function commandAudit(caseRow: { id: string; workflowId: string }, invoiceId: string, actor: string, name: string, body: Record<string, unknown>, messageId: string) {
  return { caseId: caseRow.id, invoiceId, actor, type: `command.${name}`, data: { ...body, messageId }, dedupeKey: `${caseRow.workflowId}:${messageId}` };
}

/**
 * Delivers commands whose delivery failed (Temporal away) or whose process stopped before it
 * finished: the same scheduling as the payment dispatcher, over this outbox.
 */
export function startCommandDispatcher(deps: ServiceDeps, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  return startDispatcher(
    { what: 'stored case command', apply: (claim) => applyClaimedCommand(deps, claim), claimDue: (limit) => claimDueCommands(deps, limit), log: deps.log },
    // Never woken by a request, so never busy: no event-loop sampling.
    { concurrency: 2, isBusy: () => false, ...options },
  );
}

/** Commands whose delivery is due (a failed attempt's retry time, or an abandoned claim's lease), each claimed. */
export function claimDueCommands(deps: ServiceDeps, limit: number): Promise<OutboxClaim[]> {
  return claimDue(deps.db, commandOutbox, isNotNull(commandOutbox.nextAttemptAt), limit);
}

/**
 * Delivers a claimed command to its case (a case not running yet starts with it), then marks it
 * delivered and puts it on the timeline, under the name of whoever sent it; undefined if the
 * claim was taken over. Commands reach a case in the order they were sent: while an older one of
 * the same case waits, this one waits behind it (`behind`, tried again a second later). A case
 * that closed meanwhile does not get it (`case_closed`, and the timeline says so if the sender
 * was told it was queued). A failure is recorded for a retry (1 s, 2 s … 5 min; at most 10 s
 * apart while Temporal is unreachable), then thrown.
 */
export async function applyClaimedCommand(deps: ServiceDeps, claim: OutboxClaim): Promise<CommandOutcome | 'behind' | undefined> {
  const claimed = and(eq(commandOutbox.id, claim.id), eq(commandOutbox.claimToken, claim.token));
  const [held] = await deps.db.update(commandOutbox).set({ nextAttemptAt: leaseEnd }).where(and(claimed, isNotNull(commandOutbox.nextAttemptAt))).returning();
  if (!held) return undefined;
  const [older] = await deps.db
    .select({ id: commandOutbox.id })
    .from(commandOutbox)
    .where(
      and(
        eq(commandOutbox.caseId, held.caseId),
        isNull(commandOutbox.outcome),
        or(lt(commandOutbox.createdAt, held.createdAt), and(eq(commandOutbox.createdAt, held.createdAt), lt(commandOutbox.id, held.id))),
      ),
    )
    .limit(1);
  if (older) {
    // Not a failed attempt: no count, no backoff.
    await deps.db.update(commandOutbox).set({ claimToken: null, nextAttemptAt: sql`now() + interval '1 second'` }).where(claimed);
    return 'behind';
  }
  try {
    const [{ externalId }] = (await deps.db.select({ externalId: invoices.externalId }).from(invoices).where(eq(invoices.id, held.invoiceId))) as [{ externalId: string }];
    const { invoice, customer, caseRow } = await findInvoice(deps, externalId);
    const name = held.name as CommandName;
    let outcome: CommandOutcome = 'case_closed';
    // A closed case is not signalled again: once Temporal has forgotten the workflow, a signal
    // with start would begin a new one.
    if (caseRow && caseRow.stage !== 'Closed') {
      const { signal, value } = commandSignal(name, { messageId: held.messageId, by: held.requestedBy }, held.body)!;
      const delivered = await deliverToCase(deps, { invoice, customer, caseRow }, signal, value, {
        title: 'Command stored but not yet delivered',
        detail: `The ${name} command on invoice ${externalId} is stored; delivering it to the collection case failed. It is retried automatically (it is applied once).`,
      });
      outcome = delivered === 'applied' ? 'applied' : 'case_closed';
    }
    const now = await deps.clock();
    await deps.db.transaction(async (tx) => {
      const [done] = await tx.update(commandOutbox).set({ deliveredAt: now, outcome, nextAttemptAt: null, claimToken: null, lastError: null }).where(claimed).returning({ id: commandOutbox.id });
      if (!done) return; // taken over meanwhile: its holder records the outcome
      const audit = commandAudit({ id: held.caseId, workflowId: caseRow?.workflowId ?? '' }, held.invoiceId, held.requestedBy, held.name, held.body, held.messageId);
      // A command that never reached its case is on the timeline as such, if the caller was told it was queued.
      if (outcome === 'applied') await tx.insert(auditEvents).values(audit).onConflictDoNothing({ target: auditEvents.dedupeKey });
      else if (held.attempts > 0) await tx.insert(auditEvents).values({ ...audit, type: 'command.not_delivered', data: { command: held.name, messageId: held.messageId, reason: 'the case closed before it arrived' } }).onConflictDoNothing({ target: auditEvents.dedupeKey });
    });
    return outcome;
  } catch (err) {
    await deps.db
      .update(commandOutbox)
      .set(failedAttempt(commandOutbox, err))
      .where(claimed)
      .catch((recordErr) => deps.log?.error({ err: recordErr, commandRowId: claim.id }, 'recording a failed attempt failed; the lease brings the command back'));
    throw err;
  }
}
