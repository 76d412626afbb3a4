import { randomUUID } from 'node:crypto';
import type { RegisterInvoice } from '../../api/schemas';
import { policySchema } from '../../domain/policy';

/** A date `days` from `from` as YYYY-MM-DD (UTC). */
export function isoDate(days: number, from = new Date()): string {
  return new Date(from.getTime() + days * 86_400_000).toISOString().slice(0, 10);
}

/** Every day, 08:00-21:00: with the debtor's zone from `zoneAtHour`, "now" is always inside it. */
export const anyDay = { weekdays: [1, 2, 3, 4, 5, 6, 7], start: '08:00', end: '21:00' };

/** A fixed-offset zone (whole hours) where the local hour is `hour` now. */
export function zoneAtHour(hour: number, now = new Date()): string {
  let offset = hour - now.getUTCHours();
  // Etc zones run from UTC-12 to UTC+14: the same local hour, a day earlier or later.
  if (offset < -12) offset += 24;
  if (offset > 14) offset -= 24;
  return offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

/** A zone where it is about 14:00 now, so e-mails go out at once whenever the test runs. */
export const afternoonZone = () => zoneAtHour(14);

/** A one-step ladder: an e-mail on day 1, any day of the week (`name` tells the tests apart). */
export function emailFirstPolicy(name: string) {
  return {
    name,
    version: 1,
    createdBy: 'test',
    definition: policySchema.parse({
      name,
      version: 1,
      contactWindow: anyDay,
      steps: [{ id: 'day-1', offsetDays: 1, action: 'email', template: 'courtesy_reminder', tone: 'friendly' }],
    }),
  };
}

/** A valid invoice registration with unique ids; override what the test is about. */
export function invoicePayload(overrides: Partial<RegisterInvoice> = {}): RegisterInvoice {
  const id = randomUUID().slice(0, 8);
  return {
    externalId: `INV-${id}`,
    number: `2026-${id}`,
    currency: 'EUR',
    amountTotalMinor: 125_000,
    issueDate: isoDate(-30),
    dueDate: isoDate(-2),
    customer: {
      externalId: `CUST-${id}`,
      name: 'Muster GmbH',
      email: 'ap@muster.example',
      phone: '+49 30 1234567',
      postalAddress: { line1: 'Musterstraße 1', city: 'Berlin', postalCode: '10115', country: 'DE' },
      timeZone: 'Europe/Berlin',
      locale: 'de-DE',
      country: 'DE',
      kind: 'business',
    },
    ...overrides,
  };
}

/** The CSV import's columns, as its documentation lists them. */
export const csvColumns = [
  'externalId',
  'number',
  'currency',
  'amountTotalMinor',
  'amountOutstandingMinor',
  'issueDate',
  'dueDate',
  'customerExternalId',
  'customerName',
  'customerEmail',
  'customerPhone',
  'customerTimeZone',
  'customerLocale',
  'customerCountry',
  'customerKind',
  'customerAddressLine1',
  'customerCity',
  'customerPostalCode',
  'customerAddressCountry',
  'policy',
];

export type CsvRow = Record<string, string>;

/**
 * A valid CSV row `<prefix>-<n>`, due yesterday (its case starts at once), for one of 50
 * customers with a postal address (letters need one); override what the test is about.
 */
export function csvInvoiceRow(prefix: string, n: number, overrides: CsvRow = {}): CsvRow {
  return {
    externalId: `${prefix}-${n}`,
    number: `2026-${n}`,
    currency: 'EUR',
    amountTotalMinor: String(10_000 + n),
    amountOutstandingMinor: '',
    issueDate: isoDate(-30),
    dueDate: isoDate(-1),
    customerExternalId: `${prefix}-C${n % 50}`,
    customerName: `Kunde ${n % 50} GmbH`,
    customerEmail: `ap${n % 50}@kunde.example`,
    customerPhone: '',
    customerTimeZone: 'Europe/Berlin',
    customerLocale: 'de-DE',
    customerCountry: 'DE',
    customerKind: 'business',
    customerAddressLine1: `Kundenweg ${n % 50}`,
    customerCity: 'Berlin',
    customerPostalCode: '10115',
    customerAddressCountry: 'DE',
    policy: '',
    ...overrides,
  };
}

/** A CSV file: a header line naming `columns`, then the rows; values with commas, quotes or line breaks quoted. */
export function toCsv(rows: CsvRow[], columns = csvColumns): string {
  const quote = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return [columns.join(','), ...rows.map((r) => columns.map((c) => quote(r[c] ?? '')).join(','))].join('\n') + '\n';
}
