import Fastify, { type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Client } from '@temporalio/client';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { configSchema, type Config } from '../config';
import type { DbHandle } from '../db/client';
import type { ServiceDeps } from './invoice-service';
import { startAdjustmentDispatcher } from './adjustment-service';
import { startCommandDispatcher } from './case-command-service';
import { startPaymentDispatcher, type PaymentDispatcher, type PaymentDispatcherOptions } from './payment-dispatcher';
import { rejectNulCharacters } from './nul-guard';
import { HttpProblem, registerProblemHandlers } from './problem';
import { healthRoutes } from './routes/health';
import { approvalRoutes } from './routes/approvals';
import { caseRoutes } from './routes/cases';
import { callTaskRoutes } from './routes/call-tasks';
import { caseListRoutes } from './routes/cases-list';
import { invoiceAdjustmentRoutes } from './routes/invoice-adjustments';
import { invoiceImportRoutes } from './routes/invoice-import';
import { invoiceRoutes } from './routes/invoices';
import { operationsRoutes } from './routes/operations';
import { pageRoutes } from './pages';
import { webhookEventRoutes } from './routes/webhook-events';
import { webhookRoutes } from './routes/webhooks';

/** The API's own settings, read from the configuration. */
export type ApiSettings = {
  webhookSecrets: Record<string, string[]>;
  stripeWebhookSecrets: string[];
  webhookToleranceSeconds: number;
  rateLimitPerMinute: number;
  trustProxy: boolean | string;
};

export function apiSettingsFromConfig(config: Config): ApiSettings {
  return {
    webhookSecrets: config.WEBHOOK_SECRETS,
    stripeWebhookSecrets: config.STRIPE_WEBHOOK_SECRET,
    webhookToleranceSeconds: config.WEBHOOK_TOLERANCE_SECONDS,
    rateLimitPerMinute: config.API_RATE_LIMIT_PER_MINUTE,
    trustProxy: config.TRUST_PROXY,
  };
}

export type AppDeps = {
  db: DbHandle;
  temporal: Client;
  taskQueue: string;
  temporalUiUrl: string;
  /** The API's clock (the wall clock by default); time-skipping tests pass the test server's. */
  clock?: () => Promise<Date>;
  /** Log level; logging is off when unset (tests). */
  logLevel?: string;
  /** Webhook secrets and limits; each one left out takes its configuration default (no webhook secrets). */
  settings?: Partial<ApiSettings>;
  /** How stored payment events are applied after their webhook answered (and how often both outboxes are polled). */
  paymentDispatch?: PaymentDispatcherOptions;
};

/** What route plugins are given: the database handle, the services' dependencies and the settings. */
export type AppContext = { db: DbHandle; services: ServiceDeps; settings: ApiSettings; paymentDispatcher: PaymentDispatcher };

/**
 * Builds the HTTP API over its dependencies without listening, so tests drive it with
 * `app.inject()` and main.ts decides where it listens. The caller owns the dependencies
 * (database, Temporal client) and closes them.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const settings = { ...apiSettingsFromConfig(configSchema.parse({})), ...deps.settings };
  const app = Fastify({
    // Never log credentials.
    logger: deps.logLevel
      ? { level: deps.logLevel, redact: ['req.headers.authorization', 'req.headers["stripe-signature"]', 'req.headers["arrears-signature"]'] }
      : false,
    bodyLimit: 1024 * 1024,
    // Which proxies' X-Forwarded-* to believe: the client address for rate limits, https for cookies.
    trustProxy: settings.trustProxy,
  }).withTypeProvider<ZodTypeProvider>();
  const services: ServiceDeps = {
    db: deps.db.db,
    log: app.log,
    temporal: deps.temporal,
    taskQueue: deps.taskQueue,
    temporalUiUrl: deps.temporalUiUrl,
    clock: deps.clock ?? (async () => new Date()),
  };
  const paymentDispatcher = startPaymentDispatcher(services, deps.paymentDispatch);
  // Credit notes, cancellations and case commands whose delivery failed: polled as often, a few at a time.
  const { pollIntervalMs, closeTimeoutMs } = deps.paymentDispatch ?? {};
  const dispatchers = [
    paymentDispatcher,
    startAdjustmentDispatcher(services, { pollIntervalMs, closeTimeoutMs }),
    startCommandDispatcher(services, { pollIntervalMs, closeTimeoutMs }),
  ];
  app.addHook('onReady', async () => dispatchers.forEach((dispatcher) => dispatcher.start()));
  app.addHook('onClose', () => Promise.all(dispatchers.map((dispatcher) => dispatcher.close())));
  const context: AppContext = { db: deps.db, services, settings, paymentDispatcher };

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);
  rejectNulCharacters(app);

  // Per client address, counted before anything else runs (authentication included), so
  // bad keys and unsigned webhooks are limited too. Behind a proxy, set TRUST_PROXY.
  await app.register(rateLimit, {
    global: false,
    max: context.settings.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => request.ip,
    errorResponseBuilder: (_request, limit) =>
      new HttpProblem(429, 'rate-limited', 'Too many requests', `At most ${limit.max} requests per minute; retry in ${Math.ceil(limit.ttl / 1000)} s.`),
  });
  app.addHook('onRequest', app.rateLimit());

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
  await app.register(invoiceAdjustmentRoutes(context));
  await app.register(invoiceImportRoutes(context));
  await app.register(caseRoutes(context));
  await app.register(approvalRoutes(context));
  await app.register(caseListRoutes(context));
  await app.register(callTaskRoutes(context));
  await app.register(webhookRoutes(context));
  await app.register(webhookEventRoutes(context));
  await app.register(operationsRoutes(context));
  await app.register(pageRoutes(context));
  return app;
}
