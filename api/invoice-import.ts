import { auditEvents } from '../db/schema';
import type { Caller } from './auth';
import type { ServiceDeps } from './invoice-service';
import { registerInvoiceWithWaitingPayments } from './payment-service';
import { findNul, nulFieldError } from './nul-guard';
import { HttpProblem, type FieldError } from './problem';
import { maxListedErrors, registerInvoiceSchema, type ImportReport, type RegisterInvoice } from './schemas';

/**
 * Invoices registered at the same time. Each registration waits on the database and then on
 * Temporal, so a few in flight keep both busy; more would only take database connections
 * (postgres.js keeps 10) away from the API's other requests.
 */
const concurrency = 6;

/** One row of an import: the raw registration to validate, or what made it unreadable. */
export type ImportRow = { row: number; input: unknown } | { row: number; externalId?: string; errors: FieldError[] };

/**
 * Thrown by a row source that cannot be read from `row` on (a quote the CSV parser cannot
 * read, the size limit, the upload broke off). The rows before it stand; the report says
 * where reading stopped.
 */
export class ImportStopped extends Error {
  constructor(
    readonly row: number,
    message: string,
  ) {
    super(message);
    this.name = 'ImportStopped';
  }
}

export type ImportOptions = {
  caller: Caller;
  dryRun: boolean;
  format: 'csv' | 'json';
  /** Names a field in the source's own terms (a CSV column, a JSON path) from a schema path. */
  fieldName: (path: PropertyKey[]) => string;
};

type RowFailure = ImportReport['errors'][number];

function externalIdOf(input: unknown): string | undefined {
  return typeof input === 'object' && input !== null && 'externalId' in input && typeof input.externalId === 'string'
    ? input.externalId
    : undefined;
}

/**
 * Registers every valid row with `registerInvoice`, a few at a time, each in its own
 * transaction: a bad row is reported and never costs the good ones. Rows are read as they
 * are processed, so a large file is never held in memory. Only errors that belong to a row
 * (invalid fields, a conflicting registration, a workflow that did not start) go into the
 * report; anything else (the database is down) fails the import, which is safe to repeat.
 */
export async function importInvoices(
  deps: ServiceDeps,
  source: AsyncIterable<ImportRow> | Iterable<ImportRow>,
  options: ImportOptions,
): Promise<ImportReport> {
  const report: ImportReport = { dryRun: options.dryRun, rows: 0, created: 0, unchanged: 0, failed: 0, errors: [], stopped: null };
  const keepFirstErrors = () => {
    report.errors.sort((a, b) => a.row - b.row);
    report.errors.length = Math.min(report.errors.length, maxListedErrors);
  };
  const fail = (failure: RowFailure) => {
    report.failed++;
    report.errors.push(failure);
    // Registrations finish slightly out of order, so trim to the first rows only now and then.
    if (report.errors.length > 2 * maxListedErrors) keepFirstErrors();
  };

  const register = async (row: number, input: RegisterInvoice) => {
    try {
      const { created } = await registerInvoiceWithWaitingPayments(deps, input, options.caller);
      if (created) report.created++;
      else report.unchanged++;
    } catch (err) {
      // 409 other details under this externalId, 422 unknown policy, 503 stored but its
      // workflow did not start (importing again starts it).
      if (!(err instanceof HttpProblem)) throw err;
      fail({ row, externalId: input.externalId, errors: [{ path: '', message: `${err.title}: ${err.detail}` }] });
    }
  };

  const running = new Set<Promise<void>>();
  // Rows with the same externalId run in file order, so the first wins and a later,
  // conflicting one is the one reported.
  const latestFor = new Map<string, Promise<void>>();
  let unexpected: { error: unknown } | undefined;
  const start = (row: number, input: RegisterInvoice) => {
    const task: Promise<void> = (latestFor.get(input.externalId) ?? Promise.resolve())
      .then(() => register(row, input))
      .catch((error: unknown) => {
        unexpected ??= { error };
      })
      .finally(() => {
        running.delete(task);
        if (latestFor.get(input.externalId) === task) latestFor.delete(input.externalId);
      });
    running.add(task);
    latestFor.set(input.externalId, task);
  };

  try {
    for await (const item of source) {
      report.rows++;
      if ('errors' in item) {
        fail({ row: item.row, externalId: item.externalId, errors: item.errors });
        continue;
      }
      const parsed = registerInvoiceSchema.safeParse(item.input);
      if (!parsed.success) {
        const errors = parsed.error.issues.map((issue) => ({ path: options.fieldName(issue.path), message: issue.message }));
        fail({ row: item.row, externalId: externalIdOf(item.input), errors });
        continue;
      }
      // A NUL character passes the schema but not PostgreSQL (a CSV file is not checked on arrival).
      const nulAt = findNul(parsed.data, '');
      if (nulAt) {
        fail({ row: item.row, externalId: parsed.data.externalId, errors: [nulFieldError(options.fieldName(nulAt.split('.').slice(1)))] });
        continue;
      }
      if (options.dryRun) continue;
      start(item.row, parsed.data);
      if (running.size >= concurrency) await Promise.race(running);
      if (unexpected) break;
    }
  } catch (err) {
    await Promise.all(running);
    if (!(err instanceof ImportStopped)) throw err;
    report.stopped = { row: err.row, message: err.message };
  }
  await Promise.all(running);
  if (unexpected) throw unexpected.error;
  keepFirstErrors();

  if (!options.dryRun) {
    // Each invoice is audited by registerInvoice; this records the import as a whole.
    const { rows, created, unchanged, failed } = report;
    await deps.db.insert(auditEvents).values({
      actor: options.caller.name,
      type: 'invoices.imported',
      data: { format: options.format, rows, created, unchanged, failed, complete: report.stopped === null },
    });
  }
  return report;
}
