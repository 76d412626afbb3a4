import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { SignalDefinition } from '@temporalio/common';
import type { StoredCase } from '../cases/collection-start';
import { and, eq, isNotNull, isNull, not, sql } from 'drizzle-orm';
import type { caseCommandOutcomes, deliveredCommandNames } from '../db/schema';
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
import { canonicalJson, deliverToCase, findInvoice, type FoundInvoice, type ServiceDeps } from './invoice-service';
import { claimDue, failedAttempt, leaseEnd, noLiveClaim, type OutboxClaim } from './outbox';
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
  // Every command but a note goes to the workflow, and is stored under its name (db/schema/case-commands.ts).
} as const satisfies Record<DeliveredCommandName | 'notes', { summary: string; body: z.ZodType }>;

export type CaseCommandName = keyof typeof caseCommands;
type DeliveredCommandName = (typeof deliveredCommandNames)[number];

type CommandRow = typeof commandOutbox.$inferSelect;
type CommandOutcome = (typeof caseCommandOutcomes)[number];

/** The invoice's case, which must be open: commands on a closed case are refused. */
function openCase({ invoice, customer, caseRow }: FoundInvoice): StoredCase {
  if (!caseRow || caseRow.stage === 'Closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `Invoice ${invoice.externalId} has no open collection case.`);
  }
  return { invoice, customer, caseRow };
}

/** The signal that carries the command to its case, with its message. */
function commandSignal(name: DeliveredCommandName, base: { messageId: string; by: string }, body: Record<string, unknown>, balanceSeenMinor: number | null) {
  // An agreement counts the money its case receives after the sender saw this balance (AgreedOver).
  const agreed = balanceSeenMinor === null ? {} : { balanceSeenMinor };
  const message = <Message>(signal: SignalDefinition<[Message]>, value: Message) => ({ signal: signal as SignalDefinition<[unknown]>, value });
  switch (name) {
    case 'dispute':
      return message(openDisputeSignal, { ...base, reason: body.reason as string });
    case 'dispute-resolution': {
      const resolution = body as { resolution: 'customer_favour' | 'business_favour'; note: string; creditMinor?: number; cancelInvoice?: boolean };
      return message(resolveDisputeSignal, { ...base, ...resolution });
    }
    case 'promise':
      return message(promiseToPaySignal, { ...base, ...agreed, promisedDate: body.promisedDate as string, amountMinor: body.amountMinor as number });
    case 'payment-plan':
      return message(paymentPlanSignal, { ...base, ...agreed, instalments: body.instalments as { dueDate: string; amountMinor: number }[] });
    case 'settlement':
      return message(proposeSettlementSignal, {
        ...base,
        ...agreed,
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
  }
}

/**
 * What the caller is told: `applied` (its case has it), `queued` (stored; Temporal could not be
 * reached, or an earlier command of the case is still on its way, and the command dispatcher
 * delivers it as soon as it can).
 */
export const commandDeliverySchema = z.enum(['applied', 'queued']);
export type CommandDelivery = z.infer<typeof commandDeliverySchema>;
type Sent = { messageId: string; delivery: CommandDelivery };

/**
 * Validates a command against the case, stores it, delivers it to the workflow, and records it
 * in the audit trail with who sent it, with a message id: `${name}:${idempotencyKey}` when the
 * caller gives a key, so a retried request changes nothing (it is answered from what was stored,
 * whatever happened to the case since). A command that cannot reach its case now (Temporal
 * away, or slow to answer) is kept and delivered later: `queued`. A payment plan or settlement
 * is checked against the balance when it is sent (the workflow checks a settlement again when it
 * arrives).
 */
export async function sendCaseCommand(
  services: ServiceDeps,
  input: { externalId: string; name: CaseCommandName; body: Record<string, unknown>; caller: Caller; idempotencyKey?: string },
): Promise<Sent> {
  const { externalId, name, body, caller } = input;
  const messageId = `${name}:${input.idempotencyKey ?? randomUUID()}`;
  const found = await findInvoice(services, externalId);
  if (found.caseRow && name !== 'notes') {
    const [existing] = await services.db.select().from(commandOutbox).where(and(eq(commandOutbox.caseId, found.caseRow.id), eq(commandOutbox.messageId, messageId)));
    if (existing) return sentAgain(services, externalId, existing, body);
  }
  const { caseRow, invoice } = openCase(found);
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
  if (name === 'notes') {
    // A note goes to the timeline only: nothing to deliver.
    const dedupeKey = `${caseRow.workflowId}:${messageId}`;
    const [added] = await services.db
      .insert(auditEvents)
      .values({ caseId: caseRow.id, invoiceId: invoice.id, actor: caller.name, type: 'command.notes', data: { ...body, messageId }, dedupeKey })
      .onConflictDoNothing({ target: auditEvents.dedupeKey })
      .returning({ id: auditEvents.id });
    if (!added) {
      const [stored] = await services.db.select({ data: auditEvents.data }).from(auditEvents).where(eq(auditEvents.dedupeKey, dedupeKey));
      if (stored && canonicalJson(stored.data) !== canonicalJson({ ...body, messageId })) throw idempotencyConflict(externalId, name, messageId);
    }
    return { messageId, delivery: 'applied' };
  }

  // Stored first, under this request's claim.
  const claimToken = randomUUID();
  const [inserted] = await services.db
    .insert(commandOutbox)
    .values({
      caseId: caseRow.id,
      invoiceId: invoice.id,
      name,
      messageId,
      body,
      requestedBy: caller.name,
      balanceSeenMinor: caseRow.amountOutstandingMinor,
      claimToken,
      nextAttemptAt: leaseEnd,
    })
    .onConflictDoNothing({ target: [commandOutbox.caseId, commandOutbox.messageId] })
    .returning({ id: commandOutbox.id });
  if (!inserted) {
    // The same command, stored by a concurrent request a moment ago.
    const [existing] = await services.db.select().from(commandOutbox).where(and(eq(commandOutbox.caseId, caseRow.id), eq(commandOutbox.messageId, messageId)));
    return sentAgain(services, externalId, existing!, body);
  }
  return deliverNow(services, externalId, messageId, { id: inserted.id, token: claimToken });
}

/**
 * A command sent again with the same key: answered from the stored one (409 if the body
 * differs); one still waiting is delivered now, under this request's claim, unless another
 * request or a dispatcher is delivering it at this moment (then it is `queued` until that ends).
 */
const idempotencyConflict = (externalId: string, name: string, messageId: string) =>
  new HttpProblem(
    409,
    'idempotency-conflict',
    'Idempotency-Key already used for another command',
    `The ${name} command ${messageId} on invoice ${externalId} was sent with another body; use a new Idempotency-Key for a new command.`,
  );

async function sentAgain(services: ServiceDeps, externalId: string, existing: CommandRow, body: Record<string, unknown>): Promise<Sent> {
  if (canonicalJson(existing.body) !== canonicalJson(body)) throw idempotencyConflict(externalId, existing.name, existing.messageId);
  if (existing.outcome) return answer(externalId, existing.messageId, existing.outcome);
  // Taken over only if no one is delivering it now (no claim, or its lease ran out).
  const claimToken = randomUUID();
  const [taken] = await services.db
    .update(commandOutbox)
    .set({ claimToken, nextAttemptAt: leaseEnd })
    .where(and(eq(commandOutbox.id, existing.id), isNull(commandOutbox.outcome), noLiveClaim(commandOutbox)))
    .returning({ id: commandOutbox.id });
  if (!taken) return { messageId: existing.messageId, delivery: 'queued' };
  return deliverNow(services, externalId, existing.messageId, { id: existing.id, token: claimToken });
}

/** Delivers a stored command in the request: the answer is its outcome, or `queued` if it has to wait. */
async function deliverNow(services: ServiceDeps, externalId: string, messageId: string, claim: OutboxClaim): Promise<Sent> {
  let outcome: CommandOutcome | 'behind' | undefined;
  try {
    outcome = await applyClaimedCommand(services, claim);
  } catch (err) {
    // Stored, and retried by the command dispatcher (the failure is recorded, or the claim's
    // lease runs out). (Temporal being away is logged where it is found.)
    if (!(err instanceof HttpProblem && err.slug === 'temporal-unavailable')) services.log?.error({ err, messageId }, 'delivering a case command failed; it is queued');
  }
  // Undefined: a repeat of it took it over meanwhile; what that one did stands.
  if (outcome === undefined) {
    outcome = await services.db
      .select({ outcome: commandOutbox.outcome })
      .from(commandOutbox)
      .where(eq(commandOutbox.id, claim.id))
      .then(([now]) => now?.outcome ?? undefined)
      .catch(() => undefined);
  }
  return outcome && outcome !== 'behind' ? answer(externalId, messageId, outcome) : { messageId, delivery: 'queued' };
}

/** The answer for a command whose delivery has ended: applied, or 409 if its case had closed or it was withdrawn. */
function answer(externalId: string, messageId: string, outcome: CommandOutcome): Sent {
  if (outcome === 'case_closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `The case of invoice ${externalId} closed before the command arrived; nothing was changed.`);
  }
  if (outcome === 'withdrawn') {
    throw new HttpProblem(409, 'command-withdrawn', 'The command was withdrawn', `Command ${messageId} on invoice ${externalId} was withdrawn before it reached the case; send a new one under a new Idempotency-Key.`);
  }
  return { messageId, delivery: 'applied' };
}

/**
 * Withdraws a command still waiting for its case (one whose delivery keeps failing, holding back
 * the later commands of the case): it is not tried again, and the timeline says who withdrew it
 * and why. Refused while it is being delivered, and once its delivery has ended; withdrawing it
 * again changes nothing. An attempt that timed out may have reached the case all the same (the
 * workflow then has it; its last error says Temporal did not answer in time).
 */
export async function withdrawCommand(deps: ServiceDeps, id: string, reason: string, caller: Caller): Promise<Pick<CommandRow, 'name' | 'messageId'>> {
  const unknown = new HttpProblem(404, 'command-not-found', 'Unknown case command', `No stored case command with id ${id}.`);
  if (!z.uuid().safeParse(id).success) throw unknown; // the column is a uuid: anything else is no command
  const [row] = await deps.db.select().from(commandOutbox).where(eq(commandOutbox.id, id));
  if (!row) throw unknown;
  // Withdrawn already (a form sent twice, say): that is the answer.
  if (row.outcome === 'withdrawn') return { name: row.name, messageId: row.messageId };
  const ended = { applied: 'was delivered to its case', case_closed: 'was not delivered: its case had closed' } as const;
  if (row.outcome) throw new HttpProblem(409, 'command-settled', 'The command no longer waits', `Command ${row.messageId} ${ended[row.outcome]} already.`);
  const now = await deps.clock();
  const withdrawn = await deps.db.transaction(async (tx) => {
    // Not while someone holds a live claim on it: that delivery may be reaching the case now.
    const [done] = await tx
      .update(commandOutbox)
      .set({ outcome: 'withdrawn', deliveredAt: now, nextAttemptAt: null, claimToken: null })
      .where(and(eq(commandOutbox.id, id), isNull(commandOutbox.outcome), noLiveClaim(commandOutbox)))
      .returning({ id: commandOutbox.id });
    if (!done) return false;
    await tx.insert(auditEvents).values({
      caseId: row.caseId,
      invoiceId: row.invoiceId,
      actor: caller.name,
      type: 'command.withdrawn',
      data: { command: row.name, messageId: row.messageId, requestedBy: row.requestedBy, requestedAt: row.createdAt.toISOString(), attempts: row.attempts, reason },
    });
    return true;
  });
  if (!withdrawn) {
    throw new HttpProblem(409, 'command-in-delivery', 'The command is being delivered', `Command ${row.messageId} is being delivered right now; if that fails, it waits again and can be withdrawn.`);
  }
  return { name: row.name, messageId: row.messageId };
}

/**
 * Delivers commands whose delivery failed (Temporal away), that waited behind an earlier one, or
 * whose process stopped before it finished: the same scheduling as the payment dispatcher, over
 * this outbox.
 */
export function startCommandDispatcher(deps: ServiceDeps, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  return startDispatcher(
    { what: 'stored case command', apply: (claim) => applyClaimedCommand(deps, claim), claimDue: (limit) => claimDueCommands(deps, limit), log: deps.log },
    // Never woken by a request, so never busy: no event-loop sampling.
    { concurrency: 2, isBusy: () => false, ...options },
  );
}

/** The columns of the `case_commands` row a query is about, named in full: the subquery's alias below must not capture them. */
const ownColumns = { caseId: sql.raw('case_commands.case_id'), createdAt: sql.raw('case_commands.created_at'), id: sql.raw('case_commands.id') };

/** An earlier command of the same case as `row` that its case does not have yet. */
const olderUndelivered = (row: typeof ownColumns) =>
  sql`exists (select 1 from case_commands older where older.case_id = ${row.caseId} and older.outcome is null and (older.created_at, older.id) < (${row.createdAt}, ${row.id}))`;

/**
 * Commands whose delivery is due (a failed attempt's retry time, or an abandoned claim's lease)
 * and that are the oldest undelivered one of their case, each claimed: a command never waits in
 * the dispatcher behind one of its own case.
 */
export function claimDueCommands(deps: ServiceDeps, limit: number): Promise<OutboxClaim[]> {
  return claimDue(deps.db, commandOutbox, and(isNotNull(commandOutbox.nextAttemptAt), not(olderUndelivered(ownColumns)))!, limit);
}

/**
 * Delivers a claimed command to its case (a case not running yet starts with it), then marks it
 * delivered and puts it on the timeline, under the name of whoever sent it and when; undefined
 * if the claim was taken over. Commands reach a case in the order they were sent: while an older
 * one of the same case waits, this one waits behind it (`behind`: released, and claimed again
 * once the older one is delivered). A case that closed meanwhile does not get it (`case_closed`,
 * and the timeline says so). A failure is recorded for a retry (1 s, 2 s … 5 min; at most 10 s
 * apart while Temporal is unreachable), then thrown.
 */
export async function applyClaimedCommand(deps: ServiceDeps, claim: OutboxClaim): Promise<CommandOutcome | 'behind' | undefined> {
  const claimed = and(eq(commandOutbox.id, claim.id), eq(commandOutbox.claimToken, claim.token));
  const [held] = await deps.db.update(commandOutbox).set({ nextAttemptAt: leaseEnd }).where(and(claimed, isNotNull(commandOutbox.nextAttemptAt))).returning();
  if (!held) return undefined;
  // Compared in SQL, on the stored row: its created_at has microseconds a Date does not.
  const [behind] = await deps.db.select({ id: commandOutbox.id }).from(commandOutbox).where(and(eq(commandOutbox.id, held.id), olderUndelivered(ownColumns)));
  if (behind) {
    // Not a failed attempt: no count, no backoff.
    await deps.db.update(commandOutbox).set({ claimToken: null, nextAttemptAt: sql`now()` }).where(claimed);
    return 'behind';
  }
  try {
    const [{ externalId }] = (await deps.db.select({ externalId: invoices.externalId }).from(invoices).where(eq(invoices.id, held.invoiceId))) as [{ externalId: string }];
    const { invoice, customer, caseRow } = await findInvoice(deps, externalId);
    if (!caseRow) throw new Error(`invoice ${externalId} has no case, yet command ${held.messageId} is stored for one`);
    let outcome: CommandOutcome = 'case_closed';
    // A closed case is not signalled again: once Temporal has forgotten the workflow, a signal
    // with start would begin a new one.
    if (caseRow.stage !== 'Closed') {
      const { signal, value } = commandSignal(held.name, { messageId: held.messageId, by: held.requestedBy }, held.body, held.balanceSeenMinor);
      const delivered = await deliverToCase(deps, { invoice, customer, caseRow }, signal, value, {
        title: 'Command stored but not yet delivered',
        detail: `The ${held.name} command on invoice ${externalId} is stored; delivering it to the collection case failed. It is retried automatically (it is applied once).`,
      });
      outcome = delivered === 'applied' ? 'applied' : 'case_closed';
    }
    const now = await deps.clock();
    const recorded = await deps.db.transaction(async (tx) => {
      const [done] = await tx.update(commandOutbox).set({ deliveredAt: now, outcome, nextAttemptAt: null, claimToken: null, lastError: null }).where(claimed).returning({ id: commandOutbox.id });
      if (!done) return false; // taken over meanwhile: its holder records the outcome
      const sent = { messageId: held.messageId, requestedAt: held.createdAt.toISOString() };
      await tx
        .insert(auditEvents)
        .values({
          caseId: caseRow.id,
          invoiceId: held.invoiceId,
          actor: held.requestedBy,
          ...(outcome === 'applied'
            ? { type: `command.${held.name}`, data: { ...held.body, ...sent } }
            : { type: 'command.not_delivered', data: { command: held.name, ...sent, reason: 'the case closed before it arrived' } }),
          dedupeKey: `${caseRow.workflowId}:${held.messageId}`,
        })
        .onConflictDoNothing({ target: auditEvents.dedupeKey });
      return true;
    });
    if (!recorded) {
      // This attempt outlived its lease. Withdrawn meanwhile, the case has it all the same: say so where operations look.
      const [current] = await deps.db.select({ outcome: commandOutbox.outcome }).from(commandOutbox).where(eq(commandOutbox.id, claim.id));
      if (current?.outcome === 'withdrawn' && outcome === 'applied') deps.log?.error({ commandRowId: claim.id, messageId: held.messageId }, 'a withdrawn case command reached its case: an attempt outlived its lease');
      return undefined;
    }
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
