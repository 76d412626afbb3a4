import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { getInvoiceDetail } from '../invoice-service';
import { recordPayment, registerInvoiceWithWaitingPayments } from '../payment-service';
import { problemResponses } from '../problem';
import {
  caseViewSchema,
  externalIdParamsSchema,
  invoiceViewSchema,
  paymentViewSchema,
  recordPaymentSchema,
  registerInvoiceSchema,
} from '../schemas';

const registeredSchema = z.object({ invoice: invoiceViewSchema, case: caseViewSchema.nullable() });

const caseStatusSchema = z.object({
  workflowId: z.string(),
  stage: z.string(),
  outcome: z.string().nullable(),
  currency: z.string(),
  amountOutstandingMinor: z.number().int(),
  overpaidMinor: z.number().int(),
  nextAction: z.object({ kind: z.string(), at: z.string() }).nullable(),
  blockedReason: z.string().nullable(),
  pausedReason: z.string().nullable(),
  communicationCeased: z.boolean(),
  pendingApproval: z
    .object({
      approvalId: z.string(),
      stepId: z.string(),
      kind: z.string(),
      amountMinor: z.number().int(),
      costMinor: z.number().int(),
      deadlineAt: z.string(),
      approverRoles: z.array(z.string()),
      requestedBy: z.string(),
      escalated: z.boolean(),
    })
    .nullable(),
  dispute: z.object({ reason: z.string(), openedAt: z.string() }).nullable(),
  promise: z.object({ promisedDate: z.string(), amountMinor: z.number().int(), checkAt: z.string() }).nullable(),
  policy: z.object({ name: z.string(), version: z.number().int() }),
  history: z.array(z.object({ at: z.string(), kind: z.string(), detail: z.string() })),
});

const paymentRecordedSchema = z.object({
  payment: paymentViewSchema,
  delivery: z
    .enum(['applied', 'case_closed', 'no_case', 'queued'])
    .describe(
      'applied: the case counted it; case_closed / no_case: kept and flagged for reconciliation; ' +
        'queued (202): stored, but delivering it to the case failed (Temporal unreachable): the API retries until it is delivered, no need to send it again',
    ),
  deliveryEvent: z.uuid().describe('The payment\'s delivery to its case, in the payment outbox: GET /webhook-events/{id} (source "manual")'),
});

const invoiceDetailSchema = registeredSchema.extend({
  live: caseStatusSchema.nullable().describe("The workflow's own view of the case; null if Temporal did not answer"),
  communications: z.array(
    z.object({
      id: z.uuid(),
      channel: z.string(),
      template: z.string(),
      recipient: z.string().nullable(),
      subject: z.string().nullable(),
      body: z.string(),
      status: z.string(),
      createdAt: z.string(),
    }),
  ),
  timeline: z.array(z.object({ at: z.string(), actor: z.string(), type: z.string(), data: z.record(z.string(), z.unknown()) })),
  queuedCommands: z
    .array(z.object({ id: z.string(), command: z.string(), messageId: z.string(), requestedBy: z.string(), at: z.string(), attempts: z.number().int(), lastError: z.string().nullable() }))
    .describe('Commands stored but not yet delivered to the case (Temporal could not be reached); delivered automatically, in this order, unless withdrawn (POST /case-commands/{id}/withdrawal)'),
});

export const invoiceRoutes = ({ db, services }: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.post(
    '/invoices',
    {
      onRequest: requireRole(db.db, 'admin', 'collector'),
      schema: {
        tags: ['invoices'],
        summary: 'Register an invoice and open its collection case',
        description:
          'Idempotent by externalId: registering the same invoice again returns it (200) and starts nothing new. ' +
          'Different details under the same externalId are a 409.',
        security: [{ apiKey: [] }],
        body: registerInvoiceSchema,
        response: { 200: registeredSchema, 201: registeredSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const result = await registerInvoiceWithWaitingPayments(services, request.body, request.caller!);
      return reply.code(result.created ? 201 : 200).send({ invoice: result.invoice, case: result.case });
    },
  );

  app.get(
    '/invoices/:externalId',
    {
      onRequest: requireRole(db.db, 'admin', 'collector', 'approver', 'viewer'),
      schema: {
        tags: ['invoices'],
        summary: 'An invoice with its case, live workflow status and timeline',
        security: [{ apiKey: [] }],
        params: externalIdParamsSchema,
        response: { 200: invoiceDetailSchema, ...problemResponses },
      },
    },
    async (request) => getInvoiceDetail(services, request.params.externalId),
  );

  app.post(
    '/invoices/:externalId/payments',
    {
      onRequest: requireRole(db.db, 'admin', 'collector'),
      schema: {
        tags: ['payments'],
        summary: 'Record a payment received for an invoice',
        description:
          'Stored once per reference, then delivered to the collection case: a full payment closes it as paid. ' +
          'Money for a case that is already closed is kept and flagged (delivery: case_closed). ' +
          'Sending the same reference again returns 200 and changes nothing. ' +
          'If the case cannot be reached (Temporal away), the stored payment is queued (202, delivery: queued) and delivered when it can be.',
        security: [{ apiKey: [] }],
        params: externalIdParamsSchema,
        body: recordPaymentSchema,
        response: {
          200: paymentRecordedSchema.describe('Recorded before under this reference: what became of it'),
          201: paymentRecordedSchema.describe('Recorded, and delivered to the case (or flagged: delivery says which)'),
          202: paymentRecordedSchema.describe('Recorded; its delivery to the case is queued (Temporal unreachable) and retried automatically'),
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const result = await recordPayment(services, request.params.externalId, request.body, request.caller!);
      const { created, ...recorded } = result;
      return reply.code(recorded.delivery === 'queued' ? 202 : created ? 201 : 200).send(recorded);
    },
  );
};
