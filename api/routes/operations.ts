import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { findStuckCases, restartCase, stuckActions, stuckKinds } from '../operations-service';
import { problemResponse, problemResponses } from '../problem';
import { externalIdParamsSchema, reasonSchema } from '../schemas';

export const stuckQuerySchema = z.object({
  minAttempts: z.coerce.number().int().min(2).max(100).default(3).describe('A pending activity on this attempt or later is failing'),
  pausedForDays: z.coerce.number().int().min(0).max(3650).default(14).describe('List cases paused (and unchanged) for longer than this'),
});

/** The operations view's data: cases that will not move on by themselves. */
export const operationsRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/operations/stuck',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'viewer'),
        schema: {
          tags: ['operations'],
          summary: 'Stuck cases: failing activities, blocked steps, overdue approvals, long pauses',
          security: [{ apiKey: [] }],
          querystring: stuckQuerySchema,
          response: {
            200: z.object({
              cases: z.array(
                z.object({
                  kind: z.enum(stuckKinds),
                  invoiceExternalId: z.string(),
                  customerName: z.string(),
                  workflowId: z.string(),
                  stage: z.string(),
                  reason: z.string(),
                  since: z.string().nullable(),
                  attempts: z.number().int().nullable(),
                  approvalId: z.string().nullable(),
                  action: z
                    .enum(stuckActions)
                    .nullable()
                    .describe(
                      'finish: POST /webhook-events/{webhookEventId}/match with the invoice; restart: POST /invoices/{invoiceExternalId}/restart; withdraw: POST /case-commands/{commandId}/withdrawal',
                    ),
                  webhookEventId: z.string().nullable(),
                  commandId: z.string().nullable(),
                  temporalUiUrl: z.string(),
                }),
              ),
            }),
            ...problemResponses,
          },
        },
      },
      async (request) => ({ cases: await findStuckCases(services, { ...request.query, describeLimit: 100 }) }),
    );

    app.post(
      '/invoices/:externalId/restart',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['operations'],
          summary: 'Start a case again whose workflow Temporal lost, or that ended without closing the case',
          description:
            'For a case whose workflow is gone (on the stuck list as `workflow_missing` or `workflow_ended`, though a restart need not wait for the list). ' +
            'The new run starts from the invoice\'s opening balance and every stored payment, credit note and cancellation, and comes up **paused**: ' +
            'what the lost run knew of disputes, promises and plans is on the timeline, for a person to check before `resume`. ' +
            'A restart answered 503 whose start landed meanwhile is answered 202 when sent again.',
          security: [{ apiKey: [] }],
          params: externalIdParamsSchema,
          body: z.object({ reason: reasonSchema }),
          response: {
            202: z
              .object({ restarted: z.literal(true), runId: z.string().describe('The new workflow run'), stage: z.literal('Paused') })
              .describe('Restarted: the new run comes up paused (and closes at once if what is stored settles it); resume it once its timeline is checked'),
            ...problemResponses,
            409: problemResponse(
              'case-running: its workflow runs (also a case restarted already, paused until resumed); case-completed: its workflow completed, which closed the case; ' +
                'case-not-restartable: the case is closed or has not started',
            ),
          },
        },
      },
      async (request, reply) =>
        reply.code(202).send(await restartCase(services, request.params.externalId, request.body.reason, request.caller!)),
    );
  };
