import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { csvByteLimit, csvColumns, csvFieldName, csvInvoiceRows, tooLarge } from '../invoice-csv';
import { importInvoices } from '../invoice-import';
import { HttpProblem, problemResponse, problemResponses } from '../problem';
import { importQuerySchema, importReportSchema, invoiceBatchSchema, maxBatchInvoices, maxListedErrors } from '../schemas';

/** Room for maxBatchInvoices registrations of a few KiB each; the API's default is 1 MiB. */
const batchByteLimit = 4 * 1024 * 1024;

const responses = {
  200: importReportSchema,
  ...problemResponses,
  413: problemResponse('More rows, or a larger file, than one request may carry: split it'),
  415: problemResponse('Not the content type this route reads'),
};

const reportDescription =
  'The answer counts the rows created, unchanged (already registered with the same details) and failed, and lists the ' +
  `first ${maxListedErrors} failed rows with what is wrong in each. Valid rows are registered even when others fail; ` +
  'registering is idempotent by externalId, so sending the same rows again changes nothing. ' +
  'A row whose collection workflow did not start is stored and listed as failed: send it again to start it. ' +
  'With ?dryRun=true every row is validated and nothing is stored.';

const columnNames = (required: boolean) =>
  csvColumns
    .filter((c) => c.required === required)
    .map((c) => `\`${c.name}\``)
    .join(', ');

export const invoiceImportRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/invoices/batch',
      {
        onRequest: requireRole(db.db, 'admin', 'collector'),
        bodyLimit: batchByteLimit,
        schema: {
          tags: ['invoices'],
          summary: `Register up to ${maxBatchInvoices} invoices with one request`,
          description: `Each element is checked and registered on its own, as by POST /invoices; rows are numbered from 1. ${reportDescription}`,
          security: [{ apiKey: [] }],
          querystring: importQuerySchema,
          body: invoiceBatchSchema,
          response: responses,
        },
      },
      async (request) =>
        importInvoices(
          services,
          request.body.invoices.map((input, i) => ({ row: i + 1, input })),
          { caller: request.caller!, dryRun: request.query.dryRun, format: 'json', fieldName: (path) => path.map(String).join('.') },
        ),
    );

    // Its own scope: this route takes only CSV, handed over as the raw stream so a large file
    // is parsed while it arrives instead of being held in memory.
    const csvScope: FastifyPluginAsyncZod = async (csv) => {
      csv.removeAllContentTypeParsers();
      csv.addContentTypeParser('text/csv', (request, payload, done) => {
        // Fastify's bodyLimit covers only the parsers that buffer; this one counts for itself.
        if (Number(request.headers['content-length']) > csvByteLimit) done(tooLarge());
        else done(null, payload);
      });
      csv.addContentTypeParser('*', (request, _payload, done) => {
        const type = request.headers['content-type'] ?? 'none';
        done(new HttpProblem(415, 'unsupported-media-type', 'Send the file as CSV', `This route takes Content-Type: text/csv, not ${type}.`));
      });

      csv.post(
        '/invoices/import',
        {
          onRequest: requireRole(db.db, 'admin', 'collector'),
          schema: {
            tags: ['invoices'],
            summary: 'Import invoices from a CSV file',
            description:
              `A CSV file (UTF-8, comma-separated, up to ${csvByteLimit / 1024 / 1024} MiB) with a header line naming the columns, ` +
              `in any order. Required: ${columnNames(true)}. Optional (may be left out or empty): ${columnNames(false)}. ` +
              'Amounts are whole minor units (12500 for 125.00 EUR; "125.00" is refused), dates are YYYY-MM-DD, `customerX` ' +
              'is the field `customer.x` of POST /invoices. Rows are numbered by their line in the file, the header being line 1. ' +
              `An unknown or missing column, or a file without rows, is a 400 before anything is stored. ${reportDescription}`,
            security: [{ apiKey: [] }],
            consumes: ['text/csv'],
            querystring: importQuerySchema,
            body: z
              .instanceof(Readable, { error: 'send the CSV file as the body, with Content-Type: text/csv' })
              .meta({ type: 'string', description: 'The CSV file' }),
            response: responses,
          },
        },
        async (request) =>
          importInvoices(services, csvInvoiceRows(request.body), {
            caller: request.caller!,
            dryRun: request.query.dryRun,
            format: 'csv',
            fieldName: csvFieldName,
          }),
      );
    };
    await app.register(csvScope);
  };
