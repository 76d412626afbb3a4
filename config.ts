import { z } from 'zod';

/**
 * Every setting Arrears reads from the environment, validated once at start-up.
 * The README's configuration table and docker-compose.yml list exactly these names
 * (a test keeps the three in step). There are no default secrets: a secret left unset
 * disables what needs it.
 */
/** Payment events one API process applies at once (api/payment-dispatcher.ts). */
export const defaultPaymentDispatchConcurrency = 8;

export const configSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Temporal Cloud (or any server with API-key auth); implies TLS. */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: z.stringbool().optional(),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('arrears-collections'),
  /**
   * Workflows a worker keeps in memory between their tasks; more replays less in bursts, at about
   * 180 KiB each. 0 (no cache) or at least 4: the worker runs a quarter of it in workflow tasks,
   * and no fewer than 2 (workflowTaskSlots in worker/create-worker.ts).
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce
    .number()
    .int()
    .min(0)
    .max(100_000)
    .refine((n) => n === 0 || n >= 4, { error: 'must be 0 (no cache) or at least 4, twice the 2 workflow tasks a worker runs at least' })
    .default(200),
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  /**
   * How often the overdue sweep (a Temporal Schedule) starts the cases whose start time has
   * come. At most 12 hours: cases start a day before their first step (domain/collection.ts).
   */
  SWEEP_INTERVAL_MINUTES: z.coerce.number().int().min(1).max(720).default(15),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  /** Connections each process keeps to PostgreSQL (API: requests and the payment dispatcher; worker: activities). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  /**
   * Stored payment events each API process applies at once (match, record, signal the case).
   * Fewer leave more CPU to answering webhooks during a burst; more apply a backlog faster.
   */
  PAYMENT_DISPATCH_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(defaultPaymentDispatchConcurrency),
  DATA_DIR: z.string().min(1).default('data'),
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  DEV_TEMPORAL_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  DEV_TEMPORAL_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SENDGRID_API_KEY: z.string().min(1).optional(),
  SENDGRID_BASE_URL: z.url().default('https://api.sendgrid.com'),
  MAIL_FROM: z.email().default('collections@example.com'),
  /** Who is asked to approve escalations (comma-separated e-mail addresses). */
  APPROVER_EMAILS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((a) => a.trim()).filter(Boolean))
    .pipe(z.array(z.email())),
  /** The collection agency that takes approved referrals (e-mail); unset: the placement is recorded only. */
  AGENCY_EMAIL: z.email().optional(),
  /** The attorney who takes approved legal actions (e-mail); unset: the legal case is recorded only. */
  LEGAL_EMAIL: z.email().optional(),
  /** Who the letters and e-mails come from. */
  BUSINESS_NAME: z.string().min(1).default('Accounts Receivable'),
  /** The sender address on letters, lines separated by "|". */
  BUSINESS_ADDRESS: z.string().default(''),
  /** How to pay, quoted in every reminder (bank details, a payment link). */
  PAYMENT_INSTRUCTIONS: z.string().default(''),
  /**
   * Signing secrets of generic payment webhooks, `source=secret` pairs separated by commas
   * (`bank=s3cr3t,psp=an0ther`). A source may be named twice while a secret is rotated.
   */
  WEBHOOK_SECRETS: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const secrets: Record<string, string[]> = {};
      for (const pair of v.split(',').map((p) => p.trim()).filter(Boolean)) {
        const eq = pair.indexOf('=');
        const source = pair.slice(0, eq);
        const secret = pair.slice(eq + 1);
        if (eq < 1 || !webhookSourcePattern.test(source) || source === 'stripe' || source === 'manual' || secret.length < 16) {
          // The secret is never echoed back, not even in an error.
          ctx.addIssue({ code: 'custom', message: `each entry must be source=secret, the source ${webhookSourcePattern} but not "stripe" (it has STRIPE_WEBHOOK_SECRET) or "manual" (payments recorded by hand), and the secret at least 16 characters (entry for "${source || '?'}" is not)` });
          return z.NEVER;
        }
        (secrets[source] ??= []).push(secret);
      }
      return secrets;
    }),
  /** Stripe's endpoint signing secrets (`whsec_...`), comma-separated while one is rotated. */
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean)),
  /** How old a webhook's signed timestamp may be, in seconds; older deliveries are refused as replays. */
  WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  /** Requests per minute per client address, counted before authentication. */
  API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(6000),
  /**
   * The reverse proxies in front of the API whose X-Forwarded-For/-Proto to believe: `true`
   * (any) or comma-separated addresses/CIDRs. Unset: none.
   */
  TRUST_PROXY: z
    .string()
    .default('false')
    .transform((v): boolean | string => (v === 'true' ? true : v === 'false' ? false : v)),
});

/** Names of generic webhook sources: they appear in URLs (`/webhooks/<source>`). */
export const webhookSourcePattern = /^[a-z0-9][a-z0-9_-]{0,39}$/;

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(issues: z.core.$ZodIssue[]) {
    super(
      'Invalid configuration:\n' +
        issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

/** Parses the environment (process.env by default); throws one error listing every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "not set", the way shells and compose files write it.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues);
  return parsed.data;
}

/**
 * The Temporal client's gRPC channel options. Between attempts to reach a lost server grpc-js
 * waits longer each time, up to 2 minutes: after a Temporal outage of a few minutes, the API
 * would go on answering 503 and the stored payments would wait that long more once the server
 * is back. A 5 s ceiling costs a cheap connection attempt every 5 s while it is away.
 */
export const temporalClientChannelArgs = { 'grpc.max_reconnect_backoff_ms': 5_000 };

/** How to reach Temporal, for the client and the worker's native connection alike. */
export function temporalConnectionOptions(config: Config): { address: string; tls: boolean; apiKey?: string } {
  return {
    address: config.TEMPORAL_ADDRESS,
    tls: config.TEMPORAL_TLS ?? Boolean(config.TEMPORAL_API_KEY),
    ...(config.TEMPORAL_API_KEY ? { apiKey: config.TEMPORAL_API_KEY } : {}),
  };
}

/** The client's connection options: how to reach Temporal, and how soon to reconnect. */
export function temporalClientConnectionOptions(config: Config) {
  return { ...temporalConnectionOptions(config), channelArgs: temporalClientChannelArgs };
}
