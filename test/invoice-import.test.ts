// Bulk registration: the CSV import and the JSON batch, on the real app, database and Temporal dev server.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { Readable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { and, asc, count, eq, like } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../api/app';
import type { ImportReport } from '../api/schemas';
import { auditEvents, collectionCases, customers, invoices } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { csvColumns, csvInvoiceRow, invoicePayload, isoDate, toCsv } from './support/fixtures';
import { startDevServerHarness } from './support/harness';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
});

afterAll(async () => {
  await h?.stop();
});

type Role = 'admin' | 'collector' | 'viewer';

function importCsv(
  payload: string | Readable,
  options: { query?: string; role?: Role; contentType?: string; app?: FastifyInstance } = {},
) {
  return (options.app ?? h.app).inject({
    method: 'POST',
    url: `/invoices/import${options.query ?? ''}`,
    headers: { ...h.auth(options.role ?? 'collector'), 'content-type': options.contentType ?? 'text/csv' },
    payload,
  });
}

function importBatch(invoices: unknown[], role: Role = 'collector') {
  return h.app.inject({ method: 'POST', url: '/invoices/batch', headers: h.auth(role), payload: { invoices } });
}

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, type: string) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json() as { type: string; detail: string };
  expect(body).toMatchObject({ status, type: `urn:arrears:problem:${type}` });
  return body;
}

function report(res: { statusCode: number; json(): unknown }): ImportReport {
  expect(res.statusCode).toBe(200);
  return res.json() as ImportReport;
}

/** Invoices and cases stored under an external-id prefix, counted in the database. */
async function stored(prefix: string) {
  const mine = like(invoices.externalId, `${prefix}-%`);
  const [invoiceCount] = await h.db.db.select({ n: count() }).from(invoices).where(mine);
  const [caseCount] = await h.db.db.select({ n: count() }).from(collectionCases).innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId)).where(mine);
  const [registeredEvents] = await h.db.db
    .select({ n: count() })
    .from(auditEvents)
    .innerJoin(invoices, eq(invoices.id, auditEvents.invoiceId))
    .where(and(mine, eq(auditEvents.type, 'invoice.registered')));
  return { invoices: invoiceCount!.n, cases: caseCount!.n, registeredEvents: registeredEvents!.n };
}

async function importEvents() {
  return h.db.db.select().from(auditEvents).where(eq(auditEvents.type, 'invoices.imported')).orderBy(asc(auditEvents.id));
}

const newPrefix = () => `IMP${randomUUID().slice(0, 8)}`;

/** The API on the harness database with another Temporal client or task queue; closed after `use`. */
async function withApp(deps: { temporal?: Client; taskQueue?: string }, use: (app: FastifyInstance) => Promise<void>) {
  const app = await buildApp({
    db: h.db,
    temporal: deps.temporal ?? h.client,
    taskQueue: deps.taskQueue ?? h.taskQueue,
    temporalUiUrl: 'http://localhost:8233',
  });
  try {
    await use(app);
  } finally {
    await app.close();
  }
}

/** The import's run time grows with the machine's load; this bounds it without making it a race. */
const bigFileTimeout = 600_000;

describe('CSV import', () => {
  it(
    'stores every good row of a large file, opens their cases, and reports exactly the bad rows by line; the same file again changes nothing',
    async () => {
      const prefix = newPrefix();
      const total = 500;
      const rows = Array.from({ length: total }, (_, i) => csvInvoiceRow(prefix, i));
      // Line numbers: the header is line 1, so rows[i] is on line i + 2.
      rows[40] = csvInvoiceRow(prefix, 40, { amountTotalMinor: '12.50' });
      rows[133] = csvInvoiceRow(prefix, 133, { currency: 'EUX' });
      rows[250] = csvInvoiceRow(prefix, 250, { dueDate: '31.12.2026' });
      rows[377] = csvInvoiceRow(prefix, 377, { customerName: '' });
      rows[498] = csvInvoiceRow(prefix, 498, { issueDate: isoDate(10), dueDate: isoDate(5) });
      const file = toCsv(rows);

      // The workflows start on a queue no worker polls: running 500 of them belongs to the
      // workflow tests, and would only slow this one and the shared dev server.
      await withApp({ taskQueue: `import-${prefix}` }, async (app) => {
        const started = performance.now();
        const first = report(await importCsv(file, { app }));
        const seconds = (performance.now() - started) / 1000;
        console.info(`imported ${total} rows in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)} rows/s)`);

        expect(first).toMatchObject({ dryRun: false, rows: total, created: total - 5, unchanged: 0, failed: 5, stopped: null });
        expect(first.errors.map((e) => [e.row, e.externalId, e.errors.map((f) => f.path)])).toEqual([
          [42, `${prefix}-40`, ['amountTotalMinor']],
          [135, `${prefix}-133`, ['currency']],
          [252, `${prefix}-250`, ['dueDate']],
          [379, `${prefix}-377`, ['customerName']],
          [500, `${prefix}-498`, ['dueDate']],
        ]);
        expect(first.errors[0]!.errors[0]!.message).toContain('whole number of minor units');
        expect(first.errors[1]!.errors[0]!.message).toContain('unknown currency "EUX"');
        expect(first.errors[4]!.errors[0]!.message).toContain('cannot be before issueDate');
        expect(await stored(prefix)).toEqual({ invoices: total - 5, cases: total - 5, registeredEvents: total - 5 });
        for (const n of [0, total - 1]) {
          const description = await h.client.workflow.getHandle(collectionWorkflowId(`${prefix}-${n}`)).describe();
          expect(description.status.name).toBe('RUNNING');
        }

        const again = report(await importCsv(file, { app }));
        expect(again).toMatchObject({ rows: total, created: 0, unchanged: total - 5, failed: 5 });
        expect(again.errors.map((e) => e.row)).toEqual([42, 135, 252, 379, 500]);
        expect(await stored(prefix)).toEqual({ invoices: total - 5, cases: total - 5, registeredEvents: total - 5 });
      });

      const summaries = (await importEvents()).filter((e) => e.data.rows === total);
      expect(summaries.map((e) => [e.actor, e.data])).toEqual([
        ['test-collector', { format: 'csv', rows: total, created: total - 5, unchanged: 0, failed: 5, complete: true }],
        ['test-collector', { format: 'csv', rows: total, created: 0, unchanged: total - 5, failed: 5, complete: true }],
      ]);
    },
    bigFileTimeout,
  );

  it('numbers rows by their line in the file and reads what spreadsheets write: BOM, CRLF, quotes, empty lines, any column order', async () => {
    const prefix = newPrefix();
    const columns = ['customerName', 'externalId', 'number', 'currency', 'amountTotalMinor', 'issueDate', 'dueDate', 'customerExternalId'];
    const line = (n: number, name = `Kunde ${n}`) => {
      const text = toCsv([csvInvoiceRow(prefix, n, { customerName: name })], columns);
      return text.slice(text.indexOf('\n') + 1, -1); // the row without the header and the final line break
    };
    const file = [
      '\uFEFF' + columns.join(','),
      line(1, 'Muster, Sohn & "Partner" GmbH'), // line 2: comma and quotes inside quotes
      '',
      line(2), // line 4, after an empty line
      line(3, 'Zeile\neins'), // lines 5-6: a line break inside quotes
      line(4).replace(`${prefix}-4,`, `${prefix}-4,extra,`), // line 7: one field too many
      line(5, 'Kunde "Fünf" AG').replace('"Kunde ""Fünf"" AG"', 'Kunde "Fünf" AG'), // line 8: quotes left unescaped
      `${prefix}-bad`, // line 9: one field only
      line(6), // line 10
    ].join('\r\n');

    const result = report(await importCsv(file));
    expect(result).toMatchObject({ rows: 7, created: 5, failed: 2, stopped: null });
    expect(result.errors.map((e) => [e.row, e.externalId])).toEqual([
      [7, `${prefix}-4`],
      [9, undefined],
    ]);
    expect(result.errors[0]!.errors[0]!.message).toContain('quote values that contain a comma');

    const names = await h.db.db.query.customers.findMany({ where: (c, { like }) => like(c.externalId, `${prefix}-%`) });
    expect(names.map((c) => c.name).sort()).toEqual(['Kunde 2', 'Kunde 6', 'Kunde "Fünf" AG', 'Muster, Sohn & "Partner" GmbH', 'Zeile\neins'].sort());
    expect(names[0]).toMatchObject({ timeZone: 'UTC', locale: 'en', kind: 'business' }); // defaults for the columns left out
    expect((await stored(prefix)).invoices).toBe(5);
  });

  it('stops at a quote it cannot read, keeps the rows before it, and says where', async () => {
    const prefix = newPrefix();
    const lines = toCsv([csvInvoiceRow(prefix, 1), csvInvoiceRow(prefix, 2), csvInvoiceRow(prefix, 3)]).split('\n');
    lines[2] = lines[2]!.replace(`${prefix}-2,`, `"${prefix}-2"x,`); // line 3: text after a closing quote
    const result = report(await importCsv(lines.join('\n')));
    expect(result).toMatchObject({ rows: 1, created: 1, failed: 0 });
    expect(result.stopped).toMatchObject({ row: 3, message: expect.stringContaining('line 3') });
    expect((await stored(prefix)).invoices).toBe(1);
  });

  it('keeps the first of two rows with the same externalId and reports the later, different one', async () => {
    const prefix = newPrefix();
    const rows = [csvInvoiceRow(prefix, 1), csvInvoiceRow(prefix, 2), csvInvoiceRow(prefix, 1, { amountTotalMinor: '999' })];
    const result = report(await importCsv(toCsv(rows)));
    expect(result).toMatchObject({ rows: 3, created: 2, failed: 1 });
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ row: 4, externalId: `${prefix}-1` });
    expect(result.errors[0]!.errors[0]!.message).toContain('these fields differ: amountTotalMinor');
    const [stored1] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, `${prefix}-1`));
    expect(stored1?.amountTotalMinor).toBe(10_001);
  });

  it('reports a row with a NUL character by its column, and stores the rest', async () => {
    const prefix = newPrefix();
    const rows = [csvInvoiceRow(prefix, 1), csvInvoiceRow(prefix, 2, { customerExternalId: `${prefix}-C-nul`, customerName: 'Kunde \0 GmbH' })];
    const result = report(await importCsv(toCsv(rows)));
    expect(result).toMatchObject({ rows: 2, created: 1, failed: 1 });
    expect(result.errors).toMatchObject([{ row: 3, errors: [{ path: 'customerName', message: expect.stringContaining('NUL') }] }]);
    expect((await stored(prefix)).invoices).toBe(1);
  });

  it("stores the customer's postal address from its columns, and names the missing part of a partial one", async () => {
    const prefix = newPrefix();
    const rows = [csvInvoiceRow(prefix, 1), csvInvoiceRow(prefix, 2, { customerExternalId: `${prefix}-C-partial`, customerCity: '' })];
    const result = report(await importCsv(toCsv(rows)));
    expect(result).toMatchObject({ rows: 2, created: 1, failed: 1 });
    expect(result.errors).toMatchObject([{ row: 3, errors: [{ path: 'customerCity' }] }]);
    const [customer] = await h.db.db.select().from(customers).where(eq(customers.externalId, `${prefix}-C1`));
    expect(customer!.postalAddress).toEqual({ line1: 'Kundenweg 1', city: 'Berlin', postalCode: '10115', country: 'DE' });
  });

  it('validates every row and stores nothing on a dry run', async () => {
    const prefix = newPrefix();
    const rows = [csvInvoiceRow(prefix, 1), csvInvoiceRow(prefix, 2, { amountTotalMinor: '1,250' }), csvInvoiceRow(prefix, 3)];
    const eventsBefore = (await importEvents()).length;
    const result = report(await importCsv(toCsv(rows), { query: '?dryRun=true' }));
    expect(result).toMatchObject({ dryRun: true, rows: 3, created: 0, unchanged: 0, failed: 1 });
    expect(result.errors).toMatchObject([{ row: 3, errors: [{ path: 'amountTotalMinor' }] }]);
    expect(await stored(prefix)).toEqual({ invoices: 0, cases: 0, registeredEvents: 0 });
    expect(await importEvents()).toHaveLength(eventsBefore);
  });

  it('refuses a header with a missing or unknown column, and an empty file, with 400 before storing anything', async () => {
    const prefix = newPrefix();
    const rows = [csvInvoiceRow(prefix, 1)];
    const missing = expectProblem(await importCsv(toCsv(rows, csvColumns.filter((c) => c !== 'customerName'))), 400, 'csv-header');
    expect(missing.detail).toContain('missing columns: customerName');
    const unknown = expectProblem(await importCsv(toCsv(rows, [...csvColumns, 'customerFax'])), 400, 'csv-header');
    expect(unknown.detail).toContain('unknown columns: customerFax');
    expect((await stored(prefix)).invoices).toBe(0);

    expectProblem(await importCsv(''), 400, 'csv-empty');
    expectProblem(await importCsv(`${csvColumns.join(',')}\n\n`), 400, 'csv-empty');
  });

  it('takes text/csv only (415 otherwise), and needs a collector or admin key', async () => {
    const file = toCsv([csvInvoiceRow(newPrefix(), 1)]);
    const json = expectProblem(await importCsv(JSON.stringify({ invoices: [] }), { contentType: 'application/json' }), 415, 'unsupported-media-type');
    expect(json.detail).toContain('text/csv');
    expectProblem(await importCsv(file, { contentType: 'text/plain' }), 415, 'unsupported-media-type');
    expect((await importCsv(file, { contentType: 'text/csv; charset=utf-8' })).statusCode).toBe(200);

    expectProblem(await importCsv(file, { role: 'viewer' }), 403, 'forbidden');
    const anonymous = await h.app.inject({ method: 'POST', url: '/invoices/import', headers: { 'content-type': 'text/csv' }, payload: file });
    expectProblem(anonymous, 401, 'unauthenticated');
  });

  it('refuses a file over 50 MiB, counting the bytes of an upload that does not say its length', async () => {
    const prefix = newPrefix();
    const oversized = toCsv([csvInvoiceRow(prefix, 1)]) + '\n'.repeat(51 * 1024 * 1024);
    expectProblem(await importCsv(oversized), 413, 'too-large'); // content-length says it all
    expectProblem(await importCsv(Readable.from([oversized])), 413, 'too-large'); // a stream: no content-length
    expect((await stored(prefix)).invoices).toBe(0);
  });

  it('stops reading a chunked upload at 50 MiB, keeps the rows read before, and still answers', async () => {
    const prefix = newPrefix();
    await withApp({}, async (app) => {
      const url = new URL('/invoices/import', await app.listen({ port: 0, host: '127.0.0.1' }));
      // Its own connection, closed after the answer, so closing the app does not wait for it.
      const request = http.request(url, {
        method: 'POST',
        agent: false,
        headers: { ...h.auth('collector'), 'content-type': 'text/csv', 'transfer-encoding': 'chunked', connection: 'close' },
      });
      const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
        request.on('error', reject);
        request.on('response', (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
      });
      // The parser hands a record on once it has seen a few bytes past it: empty lines here.
      request.write(toCsv([csvInvoiceRow(prefix, 1)]) + '\n'.repeat(8));
      // Only once the first row is stored does the rest come: the row was read before the limit.
      await expect.poll(async () => (await stored(prefix)).invoices, { timeout: 30_000 }).toBe(1);
      const mebibyte = '\n'.repeat(1024 * 1024);
      for (let i = 0; i < 51; i++) {
        if (!request.write(mebibyte)) await once(request, 'drain');
      }
      request.end();

      const { status, body } = await response;
      expect(status).toBe(200);
      const result = JSON.parse(body) as ImportReport;
      expect(result).toMatchObject({ rows: 1, created: 1, failed: 0, stopped: { row: 3 } });
      expect(result.stopped!.message).toContain('50 MiB');
      request.destroy();
    });
    const [summary] = (await importEvents()).filter((e) => e.data.rows === 1 && e.data.complete === false);
    expect(summary?.data).toMatchObject({ created: 1, complete: false });
  });

  it('reports a row whose workflow could not start, keeps it stored, and starts it when the file comes again', async () => {
    const prefix = newPrefix();
    const file = toCsv([csvInvoiceRow(prefix, 1)]);
    // The same database, but a Temporal client whose connection is closed.
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    await connection.close();
    await withApp({ temporal: new Client({ connection }) }, async (app) => {
      const result = report(await importCsv(file, { app }));
      expect(result).toMatchObject({ rows: 1, created: 0, failed: 1 });
      expect(result.errors[0]!.errors[0]!.message).toContain('collection workflow could not be started');
    });
    expect((await stored(prefix)).invoices).toBe(1);

    expect(report(await importCsv(file))).toMatchObject({ created: 0, unchanged: 1, failed: 0 });
    const description = await h.client.workflow.getHandle(collectionWorkflowId(`${prefix}-1`)).describe();
    expect(description.status.name).toBe('RUNNING');
  });
});

describe('JSON batch', () => {
  it('registers the good elements and reports the bad one by its position', async () => {
    const good = [invoicePayload(), invoicePayload()];
    const bad = { ...invoicePayload(), amountTotalMinor: 12.5 };
    const result = report(await importBatch([good[0], bad, 'not an invoice', good[1]]));
    expect(result).toMatchObject({ rows: 4, created: 2, unchanged: 0, failed: 2 });
    expect(result.errors).toEqual([
      { row: 2, externalId: bad.externalId, errors: [{ path: 'amountTotalMinor', message: expect.stringContaining('not a fraction') }] },
      { row: 3, errors: [{ path: '', message: expect.any(String) }] },
    ]);
    for (const invoice of [...good, bad]) {
      const rows = await h.db.db.select().from(invoices).where(eq(invoices.externalId, invoice.externalId));
      expect(rows).toHaveLength(invoice === bad ? 0 : 1);
    }
    expect(report(await importBatch(good))).toMatchObject({ rows: 2, created: 0, unchanged: 2 });
  });

  it('refuses an empty or oversized batch and a viewer key', async () => {
    expectProblem(await importBatch([]), 400, 'validation');
    expectProblem(await importBatch(Array.from({ length: 1001 }, () => ({}))), 400, 'validation');
    expectProblem(await importBatch([invoicePayload()], 'viewer'), 403, 'forbidden');
  });
});

it('documents both routes in the OpenAPI document, with the CSV columns', async () => {
  const doc = (await h.app.inject({ url: '/docs/json' })).json();
  const csvRoute = doc.paths['/invoices/import'].post;
  expect(Object.keys(csvRoute.requestBody.content)).toEqual(['text/csv']);
  expect(csvRoute.parameters.map((p: { name: string }) => p.name)).toContain('dryRun');
  for (const column of csvColumns) expect(csvRoute.description).toContain(`\`${column}\``);
  expect(Object.keys(csvRoute.responses)).toEqual(expect.arrayContaining(['200', '400', '403', '413', '415']));
  const batch = doc.paths['/invoices/batch'].post;
  expect(batch.requestBody.content['application/json'].schema.properties.invoices.items.required).toEqual(
    expect.arrayContaining(['externalId', 'amountTotalMinor', 'customer']),
  );
});
