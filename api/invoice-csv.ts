import { pipeline, Transform, type Readable } from 'node:stream';
import { parse, type Info } from 'csv-parse';
import { ImportStopped, type ImportRow } from './invoice-import';
import { HttpProblem } from './problem';
import { customerInputSchema, registerInvoiceSchema } from './schemas';

/** The largest CSV file accepted (the API's other bodies stop at 1 MiB). */
export const csvByteLimit = 50 * 1024 * 1024;

/** One field longer than this is a broken quote, not data: it must not fill the memory. */
const maxRecordBytes = 64 * 1024;

type InvoiceField = Exclude<keyof typeof registerInvoiceSchema.shape, 'customer'>;
type CustomerField = Exclude<keyof typeof customerInputSchema.shape, 'postalAddress'>;
type Column = { name: string; field: string; target: 'invoice' | 'customer' | 'address'; required: boolean };

/** Amounts are whole minor units; anything else reaches the schema as text and is refused there. */
const integerColumns: readonly string[] = ['amountTotalMinor', 'amountOutstandingMinor'];

const customerColumnName = (field: string) => `customer${field[0]!.toUpperCase()}${field.slice(1)}`;

// Each column is a field of the POST /invoices body, `customerX` being `customer.x`. Which
// are required comes from the schema, so the two cannot drift apart.
const invoiceColumn = (field: InvoiceField): Column => ({
  name: field,
  field,
  target: 'invoice',
  required: !registerInvoiceSchema.shape[field].isOptional(),
});
const customerColumn = (field: CustomerField): Column => ({
  name: customerColumnName(field),
  field,
  target: 'customer',
  required: !customerInputSchema.shape[field].isOptional(),
});

/**
 * The customer's postal address (`customer.postalAddress.x`), which letters need: all
 * optional as columns; when any is given, the schema asks for line 1, city, postal code and
 * country.
 */
const addressColumns: Record<string, string> = {
  line1: 'customerAddressLine1',
  line2: 'customerAddressLine2',
  city: 'customerCity',
  postalCode: 'customerPostalCode',
  region: 'customerRegion',
  country: 'customerAddressCountry',
};
const addressColumn = (field: string): Column => ({ name: addressColumns[field]!, field, target: 'address', required: false });

export const csvColumns: Column[] = [
  ...(['externalId', 'number', 'currency', 'amountTotalMinor', 'amountOutstandingMinor', 'issueDate', 'dueDate'] as const).map(invoiceColumn),
  ...(['externalId', 'name', 'email', 'phone', 'timeZone', 'locale', 'country', 'kind'] as const).map(customerColumn),
  ...Object.keys(addressColumns).map(addressColumn),
  invoiceColumn('policy'),
];

/** The column a schema issue is about, e.g. ['customer', 'name'] → customerName. */
export function csvFieldName(path: PropertyKey[]): string {
  if (path[0] === 'customer' && path[1] === 'postalAddress') return addressColumns[String(path[2])] ?? 'customerPostalAddress';
  if (path[0] === 'customer' && path.length > 1) return customerColumnName(String(path[1]));
  return path.map(String).join('.');
}

function readHeader(names: string[]): Column[] {
  const unknown = names.filter((name) => !csvColumns.some((c) => c.name === name));
  const duplicated = names.filter((name, i) => names.indexOf(name) !== i);
  const missing = csvColumns.filter((c) => c.required && !names.includes(c.name)).map((c) => c.name);
  const problems = [
    unknown.length > 0 && `unknown columns: ${unknown.join(', ')}`,
    duplicated.length > 0 && `columns named twice: ${duplicated.join(', ')}`,
    missing.length > 0 && `missing columns: ${missing.join(', ')}`,
  ].filter(Boolean);
  if (problems.length > 0) {
    throw new HttpProblem(
      400,
      'csv-header',
      'The CSV header is not usable',
      `The first line must name the columns, separated by commas; ${problems.join('; ')}. Known columns: ${csvColumns.map((c) => c.name).join(', ')}.`,
    );
  }
  return names.map((name) => csvColumns.find((c) => c.name === name)!);
}

function toImportRow(row: number, fields: string[], header: Column[]): ImportRow {
  const externalIdAt = header.findIndex((c) => c.name === 'externalId');
  if (fields.length !== header.length) {
    const message = `has ${fields.length} fields where the header names ${header.length} columns; quote values that contain a comma`;
    return { row, externalId: fields[externalIdAt] || undefined, errors: [{ path: '', message }] };
  }
  const invoice: Record<string, unknown> = {};
  const customer: Record<string, unknown> = {};
  const address: Record<string, unknown> = {};
  header.forEach((column, i) => {
    const value = fields[i]!;
    if (value === '') return; // an empty optional field is a missing one: the schema's default applies
    // Only digits become a number: "12.50" or "1,250" stays text, and the schema refuses it.
    const typed = integerColumns.includes(column.name) && /^-?\d+$/.test(value) ? Number(value) : value;
    ({ invoice, customer, address })[column.target][column.field] = typed;
  });
  if (Object.keys(address).length > 0) customer.postalAddress = address;
  return { row, input: { ...invoice, customer } };
}

/** Counts the bytes going through and fails past `limit`, for uploads that do not say their length. */
function byteLimit(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > limit) done(tooLarge());
      else done(null, chunk);
    },
  });
}

export function tooLarge(): HttpProblem {
  return new HttpProblem(413, 'too-large', 'The file is too large', `A CSV import may be at most ${csvByteLimit / 1024 / 1024} MiB; split the file.`);
}

/**
 * Reads invoice rows from a CSV upload as it arrives, each numbered by the line it starts on
 * (the header is line 1). A header naming unknown columns or missing required ones, or a file
 * without rows, is a 400 before any row is handed on.
 */
export async function* csvInvoiceRows(body: Readable): AsyncGenerator<ImportRow> {
  // The line a record starts on: after the previous one and the empty lines between. Noted
  // while parsing, one per record in the order the parser hands them on.
  let previousEnd = 0;
  let previousEmpty = 0;
  const startLine = (context: Pick<Info, 'empty_lines'>) => previousEnd + 1 + (context.empty_lines - previousEmpty);
  const startLines: number[] = [];
  // A quote the parser cannot make sense of. It cannot tell where that record ends, so what
  // follows may be cut wrongly: reading stops there, and the records before it still count.
  let broken: { row: number; message: string } | undefined;
  const parser = parse({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    relax_quotes: true, // Muster "Partner" GmbH without surrounding quotes is read as written
    max_record_size: maxRecordBytes,
    // Reported through 'skip' instead of failing the stream, which would drop the records
    // parsed before it but not yet read.
    skip_records_with_error: true,
    on_record: (fields, context) => {
      if (broken) return null;
      startLines.push(startLine(context));
      previousEnd = context.lines;
      previousEmpty = context.empty_lines;
      return fields;
    },
  });
  parser.on('skip', (err: Error) => {
    broken ??= { row: startLine(parser.info), message: err.message };
  });
  // The request is piped, not put into the pipeline: the pipeline would destroy it on the size
  // limit, and with it the connection the answer has to go out on.
  const limiter = byteLimit(csvByteLimit);
  body.once('error', (err) => limiter.destroy(err));
  body.pipe(limiter);
  const records: AsyncIterable<string[]> = pipeline(limiter, parser, () => {
    // Errors reach the loop below through the parser.
  });

  let header: Column[] | undefined;
  let rows = 0;
  let lastRow = 1;
  try {
    for await (const fields of records) {
      const row = startLines.shift()!;
      if (!header) {
        header = readHeader(fields);
        continue;
      }
      rows++;
      lastRow = row;
      yield toImportRow(row, fields, header);
    }
  } catch (err) {
    if (!header) throw err;
    // The size limit, or the upload broke off: the rows read so far stand.
    const reason = err instanceof HttpProblem ? err.detail : err instanceof Error ? err.message : String(err);
    throw new ImportStopped(lastRow + 1, `Reading stopped: ${reason}`);
  }
  if (!header && broken) {
    throw new HttpProblem(400, 'csv-unreadable', 'The CSV file cannot be read', `Line ${broken.row}: ${broken.message}`);
  }
  if (!header) throw new HttpProblem(400, 'csv-empty', 'The file is empty', 'Send a CSV file with a header line and one invoice per line.');
  if (broken) {
    throw new ImportStopped(
      broken.row,
      `Reading stopped at line ${broken.row}: ${broken.message}. Fix that line and import the file again: the rows before it are registered and stay unchanged.`,
    );
  }
  if (rows === 0) throw new HttpProblem(400, 'csv-empty', 'The file has no invoices', 'The file has a header line but no invoice rows.');
}
