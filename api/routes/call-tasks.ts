import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { callTaskStatuses } from '../../db/schema';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { callTaskViewSchema, listCallTasks, recordCallOutcome } from '../call-task-service';
import { problemResponses } from '../problem';
import { reasonSchema } from '../schemas';

/** The collectors' call worklist (call-task-service.ts), and the outcome of a call. */
export const callTaskRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/call-tasks',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'viewer'),
        schema: {
          tags: ['call tasks'],
          summary: 'The call worklist, earliest due first (open tasks by default)',
          security: [{ apiKey: [] }],
          querystring: z.object({
            status: z.enum(callTaskStatuses).default('open'),
            limit: z.coerce.number().int().min(1).max(200).default(50),
            offset: z.coerce.number().int().min(0).default(0),
          }),
          response: {
            200: z.object({ tasks: z.array(callTaskViewSchema), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }),
            ...problemResponses,
          },
        },
      },
      async (request) => listCallTasks(services, request.query),
    );

    app.post(
      '/call-tasks/:id/outcome',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['call tasks'],
          summary: "Record a call's outcome: the task is done, and the outcome goes on the case's timeline",
          description:
            'Sent again with the same outcome, it answers the task as it is. A task done with another outcome, or withdrawn ' +
            'because the case no longer wants the call (paid, disputed, no contact), is a 409 that says so.',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          body: z.object({ outcome: reasonSchema.describe('What the call achieved (spoke to AP, left a voicemail, promised Friday)') }),
          response: { 200: callTaskViewSchema, ...problemResponses },
        },
      },
      async (request) => recordCallOutcome(services, request.params.id, request.body.outcome, request.caller!),
    );
  };
