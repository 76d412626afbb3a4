import { z } from 'zod';
import { collectionOutcomes } from '../domain/collection';
import { currencySchema, externalIdSchema, positiveMinorUnitsSchema } from '../domain/schemas';
import { collectionCases, customers, invoices } from '../db/schema';
import { fieldErrorSchema } from './problem';

const timeZoneSchema = z.string().refine(
  (zone) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  },
  { error: 'must be an IANA time zone such as Europe/Berlin' },
);

const countrySchema = z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code such as DE');

export const customerInputSchema = z.object({
  externalId: externalIdSchema,
  name: z.string().min(1).max(200),
  email: z.email().optional(),
  phone: z.string().min(3).max(40).optional(),
  postalAddress: z
    .object({
      line1: z.string().min(1),
      line2: z.string().optional(),
      city: z.string().min(1),
      postalCode: z.string().min(1),
      region: z.string().optional(),
      country: countrySchema,
    })
    .optional(),
  timeZone: timeZoneSchema.default('UTC'),
  locale: z.string().regex(/^[a-z]{2}(-[A-Z]{2})?$/, 'must be a language tag such as en or de-DE').default('en'),
  country: countrySchema.optional(),
  kind: z.enum(customers.kind.enumValues).default('business'),
});

export const registerInvoiceSchema = z
  .object({
    externalId: externalIdSchema.describe('The invoice id in your accounting system; registering it again is a no-op'),
    number: z.string().min(1).max(64),
    currency: currencySchema,
    amountTotalMinor: positiveMinorUnitsSchema.describe('Invoice total in minor units (cents)'),
    amountOutstandingMinor: z
      .number()
      .int('must be a whole number of minor units')
      .nonnegative()
      .optional()
      .describe('What is still owed, if part is paid already; defaults to the total'),
    issueDate: z.iso.date(),
    dueDate: z.iso.date(),
    customer: customerInputSchema,
    policy: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/)
      .optional()
      .describe('Name of the collection policy to follow (its newest version is pinned); default "default"'),
  })
  .refine((i) => (i.amountOutstandingMinor ?? 0) <= i.amountTotalMinor, {
    path: ['amountOutstandingMinor'],
    error: 'cannot exceed amountTotalMinor',
  })
  .refine((i) => i.dueDate >= i.issueDate, { path: ['dueDate'], error: 'cannot be before issueDate' });
export type RegisterInvoice = z.infer<typeof registerInvoiceSchema>;

const isoInstant = z.iso.datetime({ offset: true });

export const invoiceViewSchema = z.object({
  id: z.uuid(),
  externalId: z.string(),
  number: z.string(),
  currency: z.string(),
  amountTotalMinor: z.number().int(),
  amountOutstandingMinor: z.number().int(),
  amountCreditedMinor: z.number().int().describe('The sum of the credit notes issued against the invoice'),
  issueDate: z.string(),
  dueDate: z.string(),
  status: z.enum(invoices.status.enumValues),
  customerExternalId: z.string(),
});

export const caseViewSchema = z.object({
  workflowId: z.string(),
  stage: z.enum(collectionCases.stage.enumValues),
  outcome: z.enum(collectionOutcomes).nullable(),
  amountOutstandingMinor: z.number().int(),
  nextActionAt: isoInstant.nullable(),
  blockedReason: z.string().nullable().describe('Why the case waits for a person, e.g. an e-mail address SendGrid refused'),
  pausedReason: z.string().nullable().describe('Why a Paused case is paused, and by whom'),
  pausedAfterRestart: z
    .boolean()
    .describe(
      'Its workflow was started again after a loss and holds the pause it started with (Paused, or about to be once a dispute is handled): check its timeline, then resume (listed as restarted_paused)',
    ),
  startsAt: isoInstant.describe('When the collection workflow starts (or was due to): a day before the policy\'s first step; the overdue sweep starts it within SWEEP_INTERVAL_MINUTES of then'),
  startedAt: isoInstant.nullable().describe('When the workflow started; null while the case waits for its start (stage NotStarted)'),
  closedAt: isoInstant.nullable(),
  workflowGone: z
    .string()
    .nullable()
    .describe("Set when the overdue sweep's check found the open case's workflow gone: 'lost' (Temporal has no record of it) or how it ended ('terminated', …); restart the case"),
  temporalUiUrl: z.url(),
});

export const recordPaymentSchema = z.object({
  reference: z
    .string()
    .min(1)
    .max(200)
    .describe("Your unique reference for this payment (bank transaction id); sending it again changes nothing"),
  amountMinor: positiveMinorUnitsSchema,
  currency: currencySchema,
  receivedAt: isoInstant.optional().describe('When the money arrived; defaults to now'),
});

export type RecordPayment = z.infer<typeof recordPaymentSchema>;

export const paymentViewSchema = z.object({
  id: z.uuid(),
  provider: z.string(),
  providerEventId: z.string(),
  amountMinor: z.number().int(),
  currency: z.string(),
  receivedAt: isoInstant,
  recordedBy: z.string(),
});

export const externalIdParamsSchema = z.object({ externalId: externalIdSchema });

/** Why a person did something, for the audit trail and the case history. */
export const reasonSchema = z.string().trim().min(3).max(2000);

/** A number of days in a query (days overdue, age): a century either way, so any date it gives is one the database takes. */
export const queryDaysSchema = z.coerce.number().int().min(-36_500).max(36_500);

export const importQuerySchema = z.object({
  dryRun: z.stringbool().default(false).describe('true: validate every row and store nothing'),
});

/** How many invoices one JSON batch may hold; bigger sets go through the CSV import. */
export const maxBatchInvoices = 1000;

export const invoiceBatchSchema = z.object({
  // Elements are checked one by one against registerInvoiceSchema by the import, so one bad
  // element is a row error instead of a 400 for the whole batch.
  invoices: z
    .array(z.unknown().meta(z.toJSONSchema(registerInvoiceSchema, { io: 'input', unrepresentable: 'any' })))
    .min(1)
    .max(maxBatchInvoices)
    .describe('Invoices shaped as for POST /invoices'),
});

/** Failed rows listed in an import report; all of them are counted. */
export const maxListedErrors = 1000;

export const importReportSchema = z.object({
  dryRun: z.boolean().describe('true: rows were only validated; created and unchanged are 0'),
  rows: z.number().int().describe('Rows read (CSV data lines or batch elements), failed ones included'),
  created: z.number().int(),
  unchanged: z.number().int().describe('Already registered with the same details: nothing changed'),
  failed: z.number().int(),
  errors: z
    .array(
      z.object({
        row: z.number().int().describe('CSV: line number in the file (the header is line 1); batch: position from 1'),
        externalId: z.string().optional(),
        errors: z.array(fieldErrorSchema).describe('path is the CSV column or the JSON field; empty for the row as a whole'),
      }),
    )
    .describe(`The failed rows in order, at most the first ${maxListedErrors}; \`failed\` counts them all`),
  stopped: z
    .object({ row: z.number().int(), message: z.string() })
    .nullable()
    .describe('null when the whole file was read; else the line where reading stopped and why: rows from it on were not imported'),
});
export type ImportReport = z.infer<typeof importReportSchema>;
