import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Client } from '@temporalio/client';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { DbHandle } from '../db/client';
import type { ServiceDeps } from './invoice-service';
import { registerProblemHandlers } from './problem';
import { healthRoutes } from './routes/health';
import { approvalRoutes } from './routes/approvals';
import { caseRoutes } from './routes/cases';
import { caseListRoutes } from './routes/cases-list';
import { invoiceImportRoutes } from './routes/invoice-import';
import { invoiceRoutes } from './routes/invoices';

export type AppDeps = {
  db: DbHandle;
  temporal: Client;
  taskQueue: string;
  temporalUiUrl: string;
  /** Log level; logging is off when unset (tests). */
  logLevel?: string;
};

/** What route plugins are given: the database handle and the services' dependencies. */
export type AppContext = { db: DbHandle; services: ServiceDeps };

/**
 * Builds the HTTP API over its dependencies without listening, so tests drive it with
 * `app.inject()` and main.ts decides where it listens. The caller owns the dependencies
 * (database, Temporal client) and closes them.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // Never log credentials.
    logger: deps.logLevel ? { level: deps.logLevel, redact: ['req.headers.authorization'] } : false,
    bodyLimit: 1024 * 1024,
  }).withTypeProvider<ZodTypeProvider>();
  const context: AppContext = {
    db: deps.db,
    services: {
      db: deps.db.db,
      log: app.log,
      temporal: deps.temporal,
      taskQueue: deps.taskQueue,
      temporalUiUrl: deps.temporalUiUrl,
    },
  };

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Arrears API',
        description: 'Register overdue invoices, record payments, and follow each collection case.',
        version: '0.1.0',
      },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from `npm run keys -- create`' } },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(healthRoutes(context));
  await app.register(invoiceRoutes(context));
  await app.register(invoiceImportRoutes(context));
  await app.register(caseRoutes(context));
  await app.register(approvalRoutes(context));
  await app.register(caseListRoutes(context));
  return app;
}
