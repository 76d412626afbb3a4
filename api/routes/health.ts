import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AppContext } from '../app';
import { HttpProblem, problemResponse } from '../problem';

export const healthRoutes = (context: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'The process is up',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'The database and Temporal answer',
        response: {
          200: z.object({ status: z.literal('ready'), database: z.literal('ok'), temporal: z.literal('ok') }),
          503: problemResponse('Not ready: the problem names what does not answer (database, Temporal)'),
        },
      },
    },
    async (request) => {
      const { db, services: { temporal } } = context;
      const [database, temporalCheck] = await Promise.allSettled([
        db.ping(),
        temporal.connection.withDeadline(Date.now() + 2000, () => temporal.workflowService.getSystemInfo({})),
      ]);
      // Which dependency fails is public; why (hosts, users, driver messages) goes to the log only.
      const failing: string[] = [];
      if (database.status === 'rejected') {
        request.log.error({ err: database.reason }, 'readiness: database unreachable');
        failing.push('database unreachable');
      }
      if (temporalCheck.status === 'rejected') {
        request.log.error({ err: temporalCheck.reason }, 'readiness: Temporal unreachable');
        failing.push('Temporal unreachable');
      }
      if (failing.length) throw new HttpProblem(503, 'not-ready', 'Not ready', failing.join('; '));
      return { status: 'ready' as const, database: 'ok' as const, temporal: 'ok' as const };
    },
  );
};
