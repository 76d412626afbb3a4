import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../app';
import { registerApprovalPages } from './approvals-page';
import { registerCallsPage } from './calls-page';
import { registerCasePage } from './case-page';
import { registerLoginPages } from './login-page';
import { registerOperationsPages } from './operations-page';
import { acceptForms } from './session';

/**
 * Server-rendered pages under /ui for approvers, collectors and operations: plain HTML and
 * forms, no client-side script, signed in with a session cookie exchanged for an API key.
 */
export const pageRoutes =
  (context: AppContext): FastifyPluginAsync =>
  async (app) => {
    acceptForms(app);
    // Pages are not part of the JSON contract.
    app.addHook('onRoute', (route) => {
      route.schema = { ...route.schema, hide: true };
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      void reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
      void reply.header('cache-control', 'no-store');
      return payload;
    });
    registerLoginPages(context, app);
    registerApprovalPages(context, app);
    registerCasePage(context, app);
    registerOperationsPages(context, app);
    registerCallsPage(context, app);
  };
