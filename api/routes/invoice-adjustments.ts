import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { adjustmentKinds } from '../../db/schema';
import { currencySchema, positiveMinorUnitsSchema } from '../../domain/schemas';
import { cancelInvoice, creditInvoice, updateInvoice } from '../adjustment-service';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { idempotencyKey } from '../idempotency';
import { problemResponses } from '../problem';
import { caseViewSchema, externalIdParamsSchema, invoiceViewSchema, reasonSchema, registerInvoiceSchema } from '../schemas';

const adjustmentIdSchema = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .optional()
  .describe("Your id for it (e.g. the credit note's number): sending it again changes nothing. Defaults to the Idempotency-Key header");

const adjustmentRecordedSchema = z.object({
  adjustment: z.object({
    id: z.uuid(),
    adjustmentId: z.string(),
    kind: z.enum(adjustmentKinds),
    amountMinor: z.number().int().nullable(),
    currency: z.string().nullable(),
    reason: z.string(),
    recordedBy: z.string(),
    createdAt: z.iso.datetime({ offset: true }),
  }),
  delivery: z
    .enum(['applied', 'case_closed', 'queued'])
    .describe(
      'applied: forwarded to the case, which counts it once; case_closed: stored, but the case had already ended; ' +
        'queued (202): stored, but forwarding it failed (Temporal unreachable): the API retries until the case has it, no need to send it again',
    ),
});

const adjustmentResponses = {
  200: adjustmentRecordedSchema.describe('Recorded before under this id: what became of it'),
  201: adjustmentRecordedSchema.describe('Recorded, and forwarded to the case'),
  202: adjustmentRecordedSchema.describe('Recorded; forwarding it to the case is queued (Temporal unreachable) and retried automatically'),
  ...problemResponses,
};

const invoiceWithCaseSchema = z.object({ invoice: invoiceViewSchema, case: caseViewSchema.nullable() });

/** The adjustment's id: the caller's own, else its Idempotency-Key, else the fallback. */
const adjustmentIdOf = (request: FastifyRequest, given: string | undefined, fallback: string) => given ?? idempotencyKey(request) ?? fallback;

const description =
  'Stored once per adjustmentId (or Idempotency-Key), audited with the caller, then forwarded to the collection case; ' +
  'a case not running yet starts with it. Sending it again returns 200 and changes nothing. 409 when the case is closed. ' +
  'If the case cannot be reached (Temporal away), 202 with delivery queued: it is forwarded as soon as it can be.';

/** Corrections of an invoice from the accounting system, forwarded to its case. */
export const invoiceAdjustmentRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/invoices/:externalId/credit-notes',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['invoice corrections'],
          summary: 'Record a credit note: the amount outstanding goes down by it',
          description: `${description} 422 when it exceeds the amount outstanding or is in another currency.`,
          security: [{ apiKey: [] }],
          params: externalIdParamsSchema,
          body: z.object({ adjustmentId: adjustmentIdSchema, amountMinor: positiveMinorUnitsSchema, currency: currencySchema, reason: reasonSchema }),
          response: adjustmentResponses,
        },
      },
      async (request, reply) => {
        const note = { ...request.body, adjustmentId: adjustmentIdOf(request, request.body.adjustmentId, randomUUID()) };
        const result = await creditInvoice(services, request.params.externalId, note, request.caller!);
        return reply.code(result.delivery === 'queued' ? 202 : result.created ? 201 : 200).send({ adjustment: result.adjustment, delivery: result.delivery });
      },
    );

    app.post(
      '/invoices/:externalId/cancellation',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['invoice corrections'],
          summary: 'Cancel the invoice: its status becomes cancelled and its case closes as cancelled',
          description: `${description} An invoice is cancelled once: a repeat with any id returns the first cancellation.`,
          security: [{ apiKey: [] }],
          params: externalIdParamsSchema,
          body: z.object({ adjustmentId: adjustmentIdSchema, reason: reasonSchema }),
          response: adjustmentResponses,
        },
      },
      async (request, reply) => {
        // An invoice is cancelled once, so without an id of its own every repeat is the same cancellation.
        const adjustmentId = adjustmentIdOf(request, request.body.adjustmentId, 'cancellation');
        const result = await cancelInvoice(services, request.params.externalId, { adjustmentId, reason: request.body.reason }, request.caller!);
        return reply.code(result.delivery === 'queued' ? 202 : result.created ? 201 : 200).send({ adjustment: result.adjustment, delivery: result.delivery });
      },
    );

    app.patch(
      '/invoices/:externalId',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['invoice corrections'],
          summary: "Change an open invoice's number, or its due date before its case starts",
          description:
            'The number changes at once (letters and e-mails read it from the invoice). The due date changes only while the case ' +
            'has not started (stage NotStarted, startsAt still ahead), and its start time moves with it; a running case follows ' +
            'the due date it started with, so changing it then is a 409: cancel the invoice and register the corrected one under a ' +
            'new externalId. Amounts change by credit note. Audited with the caller.',
          security: [{ apiKey: [] }],
          params: externalIdParamsSchema,
          body: z
            .object({ number: registerInvoiceSchema.shape.number.optional(), dueDate: registerInvoiceSchema.shape.dueDate.optional() })
            .refine((b) => b.number !== undefined || b.dueDate !== undefined, { error: 'give number, dueDate or both' }),
          response: { 200: invoiceWithCaseSchema, ...problemResponses },
        },
      },
      async (request) => updateInvoice(services, request.params.externalId, request.body, request.caller!),
    );
  };
