import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { caseCommands, commandDeliverySchema, sendCaseCommand, withdrawCommand, type CaseCommandName } from '../case-command-service';
import { idempotencyKey } from '../idempotency';
import { problemResponses } from '../problem';
import { externalIdParamsSchema, reasonSchema } from '../schemas';

const acceptedSchema = z
  .object({
    accepted: z.literal(true),
    messageId: z.string(),
    delivery: commandDeliverySchema.meta({
      description:
        '`applied`: the case has it. `queued`: stored, but Temporal could not be reached (or an earlier command of this case is still on its way); it is delivered automatically, in the order sent, and applied once. Sending it again with the same `Idempotency-Key` changes nothing (with another body: `409 idempotency-conflict`).',
    }),
  })
  .describe('Accepted: the command is stored, and applied or queued (see delivery)');

/**
 * Collectors' commands on a case over HTTP. Each is validated, stored, delivered to the workflow
 * (or queued while Temporal cannot be reached) and recorded in the audit trail with who did it;
 * the client's `Idempotency-Key` header makes a retried request change nothing.
 */
export const caseRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    for (const [name, command] of Object.entries(caseCommands) as [CaseCommandName, (typeof caseCommands)[CaseCommandName]][]) {
      app.post(
        `/invoices/:externalId/${name}`,
        {
          onRequest: requireRole(db.db, 'admin', 'collector'),
          schema: {
            tags: ['case commands'],
            summary: command.summary,
            description:
              'Send an `Idempotency-Key` header to make a retried request change nothing. The command is stored before it is sent: if Temporal cannot be reached it is answered `202` with `delivery: queued` and delivered later, never lost.',
            security: [{ apiKey: [] }],
            params: externalIdParamsSchema,
            body: command.body,
            response: { 202: acceptedSchema, ...problemResponses },
          },
        },
        async (request, reply) => {
          const { messageId, delivery } = await sendCaseCommand(services, {
            externalId: (request.params as { externalId: string }).externalId,
            name,
            body: request.body as Record<string, unknown>,
            caller: request.caller!,
            idempotencyKey: idempotencyKey(request),
          });
          return reply.code(202).send({ accepted: true as const, messageId, delivery });
        },
      );
    }

    app.post(
      '/case-commands/:id/withdrawal',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        schema: {
          tags: ['case commands'],
          summary: 'Withdraw a case command that is still waiting to reach its case',
          description:
            'For a command whose delivery keeps failing (listed as command_unfinished): it is not tried again, the later commands of its case go on, and the timeline records who withdrew it and why. An attempt that timed out (its last error says Temporal did not answer in time) may have reached the case all the same: check the case first. 409 while it is being delivered, or once it was delivered or not delivered because its case had closed; withdrawing it again changes nothing.',
          security: [{ apiKey: [] }],
          params: z.object({ id: z.uuid() }),
          body: z.object({ reason: reasonSchema }),
          response: { 200: z.object({ withdrawn: z.literal(true) }).describe('Withdrawn'), ...problemResponses },
        },
      },
      async (request) => {
        await withdrawCommand(services, request.params.id, request.body.reason, request.caller!);
        return { withdrawn: true as const };
      },
    );
  };
