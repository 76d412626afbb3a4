import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { auditEvents, collectionCases, invoices } from '../../db/schema';
import { positiveMinorUnitsSchema } from '../../domain/money';
import {
  ceaseCommunicationSignal,
  openDisputeSignal,
  pauseSignal,
  paymentPlanSignal,
  promiseToPaySignal,
  proposeSettlementSignal,
  resolveDisputeSignal,
  resumeSignal,
} from '../../workflows/messages';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { idempotencyKey } from '../idempotency';
import { HttpProblem, problemResponses } from '../problem';
import { externalIdParamsSchema, reasonSchema as reason } from '../schemas';

const isoDate = z.iso.date();

const commands = {
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

type CommandName = keyof typeof commands;

const acceptedSchema = z.object({ accepted: z.literal(true), messageId: z.string() });

/**
 * Collectors' commands on a case. Each is validated, recorded in the audit trail with who did
 * it, and delivered to the workflow with a message id: the client's `Idempotency-Key` header
 * when it sends one, so a retried request changes nothing.
 */
export const caseRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    const openCase = async (externalId: string) => {
      const [row] = await db.db
        .select({ caseRow: collectionCases, invoice: invoices })
        .from(invoices)
        .leftJoin(collectionCases, eq(collectionCases.invoiceId, invoices.id))
        .where(eq(invoices.externalId, externalId));
      if (!row) throw new HttpProblem(404, 'invoice-not-found', 'Unknown invoice', `No invoice with external id ${externalId}.`);
      if (!row.caseRow || row.caseRow.stage === 'Closed') {
        throw new HttpProblem(409, 'case-closed', 'No open case', `Invoice ${externalId} has no open collection case.`);
      }
      return { caseRow: row.caseRow, invoice: row.invoice };
    };

    const messageIdOf = (request: FastifyRequest, name: CommandName) => `${name}:${idempotencyKey(request) ?? randomUUID()}`;

    async function deliver(name: CommandName, workflowId: string, by: string, messageId: string, body: Record<string, unknown>) {
      const handle = services.temporal.workflow.getHandle(workflowId);
      const base = { messageId, by };
      switch (name) {
        case 'dispute':
          return handle.signal(openDisputeSignal, { ...base, reason: body.reason as string });
        case 'dispute-resolution': {
          const resolution = body as { resolution: 'customer_favour' | 'business_favour'; note: string; creditMinor?: number; cancelInvoice?: boolean };
          return handle.signal(resolveDisputeSignal, { ...base, ...resolution });
        }
        case 'promise':
          return handle.signal(promiseToPaySignal, { ...base, promisedDate: body.promisedDate as string, amountMinor: body.amountMinor as number });
        case 'payment-plan':
          return handle.signal(paymentPlanSignal, { ...base, instalments: body.instalments as { dueDate: string; amountMinor: number }[] });
        case 'settlement':
          return handle.signal(proposeSettlementSignal, {
            ...base,
            amountMinor: body.amountMinor as number,
            payBy: body.payBy as string,
            waiveFees: Boolean(body.waiveFees),
          });
        case 'cease-communication':
          return handle.signal(ceaseCommunicationSignal, { ...base, reason: body.reason as string });
        case 'pause':
          return handle.signal(pauseSignal, { ...base, reason: body.reason as string });
        case 'resume':
          return handle.signal(resumeSignal, { ...base, reason: body.reason as string });
        case 'notes':
          return; // a note only goes to the timeline
      }
    }

    for (const [name, command] of Object.entries(commands) as [CommandName, (typeof commands)[CommandName]][]) {
      app.post(
        `/invoices/:externalId/${name}`,
        {
          onRequest: requireRole(db.db, 'admin', 'collector'),
          schema: {
            tags: ['case commands'],
            summary: command.summary,
            description: 'Send an `Idempotency-Key` header to make a retried request change nothing.',
            security: [{ apiKey: [] }],
            params: externalIdParamsSchema,
            body: command.body,
            response: { 202: acceptedSchema, ...problemResponses },
          },
        },
        async (request, reply) => {
          const { externalId } = request.params as { externalId: string };
          const body = request.body as Record<string, unknown>;
          const { caseRow, invoice } = await openCase(externalId);
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
          const caller = request.caller!;
          const messageId = messageIdOf(request, name);
          await db.db
            .insert(auditEvents)
            .values({ caseId: caseRow.id, invoiceId: invoice.id, actor: caller.name, type: `command.${name}`, data: { ...body, messageId }, dedupeKey: `${caseRow.workflowId}:${messageId}` })
            .onConflictDoNothing({ target: auditEvents.dedupeKey });
          try {
            await deliver(name, caseRow.workflowId, caller.name, messageId, body);
          } catch (err) {
            request.log.error({ err }, 'delivering a case command failed');
            throw new HttpProblem(503, 'temporal-unavailable', 'Command recorded but not delivered', 'Send it again with the same Idempotency-Key; it is applied once.');
          }
          return reply.code(202).send({ accepted: true as const, messageId });
        },
      );
    }
  };
