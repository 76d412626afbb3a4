import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { SignalDefinition } from '@temporalio/common';
import type { StoredCase } from '../cases/collection-start';
import { auditEvents } from '../db/schema';
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

/**
 * Sends the command's signal through the shared delivery (a case that has not started yet
 * starts with it in hand). 'case_closed' if the case ended meanwhile.
 */
async function deliver(services: ServiceDeps, stored: StoredCase, name: CommandName, by: string, messageId: string, body: Record<string, unknown>) {
  const base = { messageId, by };
  const failure = { title: 'Command recorded but not delivered', detail: 'Send it again with the same Idempotency-Key; it is applied once.' };
  const send = <Message>(signal: SignalDefinition<[Message]>, message: Message) => deliverToCase(services, stored, signal, message, failure);
  switch (name) {
    case 'dispute':
      return send(openDisputeSignal, { ...base, reason: body.reason as string });
    case 'dispute-resolution': {
      const resolution = body as { resolution: 'customer_favour' | 'business_favour'; note: string; creditMinor?: number; cancelInvoice?: boolean };
      return send(resolveDisputeSignal, { ...base, ...resolution });
    }
    case 'promise':
      return send(promiseToPaySignal, { ...base, promisedDate: body.promisedDate as string, amountMinor: body.amountMinor as number });
    case 'payment-plan':
      return send(paymentPlanSignal, { ...base, instalments: body.instalments as { dueDate: string; amountMinor: number }[] });
    case 'settlement':
      return send(proposeSettlementSignal, {
        ...base,
        amountMinor: body.amountMinor as number,
        payBy: body.payBy as string,
        waiveFees: Boolean(body.waiveFees),
      });
    case 'cease-communication':
      return send(ceaseCommunicationSignal, { ...base, reason: body.reason as string });
    case 'pause':
      return send(pauseSignal, { ...base, reason: body.reason as string });
    case 'resume':
      return send(resumeSignal, { ...base, reason: body.reason as string });
    case 'notes':
      return 'applied'; // a note only goes to the timeline
  }
}

/**
 * Validates a command against the case, delivers it to the workflow, and records it in the
 * audit trail with who sent it with a message id: `${name}:${idempotencyKey}` when the caller
 * gives a key, so a retried request changes nothing.
 */
export async function sendCaseCommand(
  services: ServiceDeps,
  input: { externalId: string; name: CommandName; body: Record<string, unknown>; caller: Caller; idempotencyKey?: string },
): Promise<{ messageId: string }> {
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
  const delivery = await deliver(services, stored, name, caller.name, messageId, body);
  if (delivery === 'case_closed') {
    throw new HttpProblem(409, 'case-closed', 'No open case', `The case of invoice ${externalId} closed before the command arrived; nothing was changed.`);
  }
  // Recorded once delivered (a refused or failed command leaves no trace); a retry with the
  // same Idempotency-Key finds the row by its dedupe key.
  await services.db
    .insert(auditEvents)
    .values({ caseId: caseRow.id, invoiceId: invoice.id, actor: caller.name, type: `command.${name}`, data: { ...body, messageId }, dedupeKey: `${caseRow.workflowId}:${messageId}` })
    .onConflictDoNothing({ target: auditEvents.dedupeKey });
  return { messageId };
}
