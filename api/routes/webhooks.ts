import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { webhookSourcePattern } from '../../config';
import { isDatabaseUnavailable } from '../../db/client';
import { webhookEvents } from '../../db/schema';
import { currencySchema, externalIdSchema, positiveMinorUnitsSchema } from '../../domain/schemas';
import type { AppContext } from '../app';
import { groupCommit } from '../group-commit';
import { ingestPaymentEvent, insertWebhookEvents, type IncomingEvent, type NewWebhookEventRow } from '../payment-service';
import { replaceNul } from '../nul-guard';
import { HttpProblem, invalidInput, problemResponses } from '../problem';
import { fromStripeEvent, stripeInvoiceMetadataKey } from '../stripe-events';
import { signatureHeader, timestampHeader, verifyGenericSignature, verifyStripeEvent } from '../webhook-signatures';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as sent: signatures are computed over these bytes, not over re-serialised JSON. */
    rawBody?: Buffer;
  }
}

/** Processors send small events; anything bigger is not one of theirs. */
const webhookBodyLimit = 256 * 1024;

export const genericPaymentSchema = z.object({
  invoiceExternalId: externalIdSchema.describe('Our invoice id (your externalId); an unknown one is kept as unmatched'),
  paymentId: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Your id for the money movement, if one movement can be reported by several events; defaults to the event id'),
  amountMinor: positiveMinorUnitsSchema,
  currency: currencySchema,
  receivedAt: z.iso.datetime({ offset: true }).optional().describe('When the money arrived; defaults to now'),
});

const genericEventSchema = z.object({
  id: z.string().min(1).max(200).describe('Your unique id for this event: a redelivery with the same id changes nothing'),
  type: z.string().min(1).max(100).describe('payment.succeeded is applied; any other type is stored and ignored'),
  data: z.unknown().describe('For payment.succeeded: { invoiceExternalId, amountMinor, currency, paymentId?, receivedAt? }'),
});

export const webhookEventViewSchema = z.object({
  id: z.uuid(),
  source: z.string(),
  eventId: z.string(),
  type: z.string(),
  status: z.enum(webhookEvents.status.enumValues),
  invoiceExternalId: z.string().nullable(),
  amountMinor: z.number().int().nullable(),
  currency: z.string().nullable(),
  paymentId: z.uuid().nullable(),
  detail: z.string().nullable().describe('Why the event is unmatched or ignored'),
  receivedAt: z.string(),
  processedAt: z.string().nullable(),
  attempts: z.number().int().describe('Failed attempts to apply a received event; it is retried with backoff'),
  lastError: z.string().nullable().describe('Why the last attempt to apply it failed'),
});

const acceptedSchema = z.object({
  duplicate: z.boolean().describe('true when this event was stored before; nothing changed this time'),
  event: webhookEventViewSchema,
});

/**
 * Reads a verified generic event. One that is signed but not valid is still an event to keep
 * (status invalid, under its id, or the body's hash if it has none), answered with a 400 that
 * says what is wrong.
 */
function fromGenericEvent(source: string, rawBody: Buffer): { event: IncomingEvent; problem?: HttpProblem } {
  let payload: unknown = null;
  try {
    payload = JSON.parse(rawBody.toString('utf8'));
  } catch {
    // Unreachable in practice: the content-type parser refused it already.
  }
  const loose = (payload ?? {}) as { id?: unknown; type?: unknown };
  const fallback = {
    source,
    eventId: typeof loose.id === 'string' && loose.id.length > 0 && loose.id.length <= 200 ? loose.id : `sha256:${createHash('sha256').update(rawBody).digest('hex')}`,
    type: typeof loose.type === 'string' && loose.type.length <= 100 ? loose.type : 'unknown',
    // A body of JSON `null` is kept as an empty object: the column holds what was sent, and is never NULL.
    payload: payload ?? {},
  };
  const envelope = genericEventSchema.safeParse(payload);
  if (!envelope.success) {
    const problem = invalidInput('body', envelope.error);
    return { event: { ...fallback, money: { invalid: problem.detail } }, problem };
  }
  const body = envelope.data;
  const base = { ...fallback, eventId: body.id, type: body.type };
  if (body.type !== 'payment.succeeded') return { event: { ...base, money: { ignored: `Event type ${body.type} carries no payment.` } } };
  const data = genericPaymentSchema.safeParse(body.data);
  if (!data.success) {
    const problem = invalidInput('body.data', data.error);
    return { event: { ...base, money: { invalid: problem.detail } }, problem };
  }
  return {
    event: {
      ...base,
      money: {
        moneyId: data.data.paymentId ?? body.id,
        invoiceExternalId: data.data.invoiceExternalId,
        amountMinor: data.data.amountMinor,
        currency: data.data.currency,
        receivedAt: data.data.receivedAt ? new Date(data.data.receivedAt) : new Date(),
      },
    },
  };
}

/**
 * A signed event with a NUL character (\u0000) somewhere, which PostgreSQL cannot store, with
 * each replaced by U+FFFD: the event is money the sender has reported, so it is kept, not
 * refused (elsewhere the API refuses NULs with a 400: nul-guard.ts).
 */
function withoutNul(event: IncomingEvent): IncomingEvent {
  const clean = (text: string) => text.replaceAll('\0', '\ufffd');
  const { money } = event;
  return {
    ...event,
    eventId: clean(event.eventId),
    type: clean(event.type),
    payload: replaceNul(event.payload),
    money:
      'moneyId' in money
        ? { ...money, moneyId: clean(money.moneyId), invoiceExternalId: money.invoiceExternalId === null ? null : clean(money.invoiceExternalId), currency: clean(money.currency) }
        : 'ignored' in money
          ? { ignored: clean(money.ignored) }
          : { invalid: clean(money.invalid) },
  };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * Payment processors' webhooks. No API key: each delivery is signed with its source's secret
 * and checked before anything is read. Stored once and answered, then applied by the payment
 * dispatcher; see ingestPaymentEvent.
 */
export const webhookRoutes = ({ services, settings, paymentDispatcher }: AppContext): FastifyPluginAsyncZod => async (app) => {
  // Deliveries that arrive while an insert is in flight are stored together in the next one.
  const insert = groupCommit((rows: NewWebhookEventRow[]) => insertWebhookEvents(services.db, rows), {
    maxBatch: 100,
    maxInFlight: 2,
    // A database that does not answer fails the whole batch: 503 for each, as for one.
    retryAlone: (err) => !isDatabaseUnavailable(err),
  });
  /** Stores the event (as it can be stored: see withoutNul) and answers; the dispatcher applies it right after. */
  const ingest = async (event: IncomingEvent, rawBody: Buffer) => {
    const { claim, ...result } = await ingestPaymentEvent(services, rawBody.includes('\\u0000') ? withoutNul(event) : event, insert);
    if (claim) paymentDispatcher.wake(claim);
    return result;
  };

  // In this plugin only, JSON bodies are kept raw for the signature and parsed afterwards.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: webhookBodyLimit }, (request, body, done) => {
    request.rawBody = body as Buffer;
    try {
      done(null, JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      done(new HttpProblem(400, 'malformed-json', 'The body is not JSON', 'The request body could not be parsed as JSON.'), undefined);
    }
  });

  app.post(
    '/webhooks/stripe',
    {
      preValidation: async () => {
        if (settings.stripeWebhookSecrets.length === 0) {
          throw new HttpProblem(404, 'webhook-source-unknown', 'Stripe webhooks are not configured', 'Set STRIPE_WEBHOOK_SECRET to receive Stripe events.');
        }
      },
      schema: {
        tags: ['webhooks'],
        summary: "Stripe's webhook (Stripe-Signature)",
        description:
          'Point a Stripe webhook endpoint here with the events invoice.paid and charge.succeeded. ' +
          `A Stripe invoice is matched by its metadata ${stripeInvoiceMetadataKey}, else by its own id as our externalId; ` +
          `a charge only by that metadata. Other events are stored and ignored. Signed with STRIPE_WEBHOOK_SECRET.`,
        response: { 200: acceptedSchema, ...problemResponses },
      },
    },
    async (request) => {
      const event = verifyStripeEvent({
        secrets: settings.stripeWebhookSecrets,
        rawBody: request.rawBody ?? Buffer.alloc(0),
        signature: header(request, 'stripe-signature'),
        toleranceSeconds: settings.webhookToleranceSeconds,
      });
      return ingest(fromStripeEvent(event), request.rawBody ?? Buffer.alloc(0));
    },
  );

  app.post(
    '/webhooks/:source',
    {
      // The signature is checked before the body is validated: an unsigned request learns nothing.
      preValidation: async (request) => {
        const { source } = request.params as { source: string };
        const secrets = webhookSourcePattern.test(source) ? settings.webhookSecrets[source] : undefined;
        if (!secrets) {
          throw new HttpProblem(404, 'webhook-source-unknown', 'Unknown webhook source', `No signing secret is configured for source "${source}" (WEBHOOK_SECRETS).`);
        }
        verifyGenericSignature({
          secrets,
          rawBody: request.rawBody ?? Buffer.alloc(0),
          timestamp: header(request, timestampHeader),
          signature: header(request, signatureHeader),
          toleranceSeconds: settings.webhookToleranceSeconds,
          nowMs: Date.now(),
        });
      },
      schema: {
        tags: ['webhooks'],
        summary: 'A signed payment webhook from any processor or bank',
        description:
          `Sign each delivery: ${timestampHeader}: <Unix seconds>, ${signatureHeader}: v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>"> ` +
          'with the source\'s secret from WEBHOOK_SECRETS. Deliveries older than WEBHOOK_TOLERANCE_SECONDS are refused. ' +
          'Each event id is stored once; a redelivery answers 200 with duplicate: true and changes nothing. ' +
          'The 200 comes as soon as the event is stored (status received); it is applied to its invoice right after ' +
          '(GET /webhook-events/{id} shows the outcome: applied, unapplied, unmatched). ' +
          'Money for an unknown invoice is kept as unmatched (GET /webhook-events?status=unmatched). 503 means nothing was stored: retry.',
        params: z.object({ source: z.string().describe('The source name configured in WEBHOOK_SECRETS') }),
        body: genericEventSchema,
        response: { 200: acceptedSchema, ...problemResponses },
      },
      // A signed but invalid event is stored before it is refused: the handler does the refusing.
      attachValidation: true,
    },
    async (request) => {
      const rawBody = request.rawBody ?? Buffer.alloc(0);
      const { event, problem } = fromGenericEvent(request.params.source, rawBody);
      const result = await ingest(event, rawBody);
      if (problem) throw problem;
      return result;
    },
  );
};
