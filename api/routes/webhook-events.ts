import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { webhookEvents } from '../../db/schema';
import { externalIdSchema } from '../../domain/schemas';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { getWebhookEvent, listWebhookEvents, matchWebhookEvent } from '../payment-service';
import { problemResponses } from '../problem';
import { webhookEventViewSchema } from './webhooks';

/** Reconciliation: the events processors sent, above all the money that matched no invoice. */
export const webhookEventRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/webhook-events',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'viewer'),
        schema: {
          tags: ['webhooks'],
          summary: 'Webhook events as stored, and the deliveries of payments recorded by hand (source=manual), newest first (status=unmatched: money waiting for reconciliation)',
          security: [{ apiKey: [] }],
          querystring: z.object({
            status: z.enum(webhookEvents.status.enumValues).optional(),
            source: z.string().min(1).optional(),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            offset: z.coerce.number().int().min(0).default(0),
          }),
          response: {
            200: z.object({ events: z.array(webhookEventViewSchema), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }),
            ...problemResponses,
          },
        },
      },
      async (request) => ({ ...(await listWebhookEvents(services, request.query)), limit: request.query.limit, offset: request.query.offset }),
    );

    app.get(
      '/webhook-events/:id',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'viewer'),
        schema: {
          tags: ['webhooks'],
          summary: 'One webhook event: how it was handled (received events are being applied)',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          response: { 200: webhookEventViewSchema, ...problemResponses },
        },
      },
      async (request) => getWebhookEvent(services, request.params.id),
    );

    app.post(
      '/webhook-events/:id/match',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['webhooks'],
          summary: 'Apply an unmatched payment to the invoice it pays',
          description: 'The event is applied as if it had named this invoice: stored as a payment once, and delivered to the case.',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          body: z.object({ invoiceExternalId: externalIdSchema }),
          response: { 200: webhookEventViewSchema, ...problemResponses },
        },
      },
      async (request) => matchWebhookEvent(services, request.params.id, request.body.invoiceExternalId, request.caller!),
    );
  };
