import { randomUUID } from 'node:crypto';
import type { RegisterInvoice } from '../../api/schemas';

/** A date `days` from `from` as YYYY-MM-DD (UTC). */
export function isoDate(days: number, from = new Date()): string {
  return new Date(from.getTime() + days * 86_400_000).toISOString().slice(0, 10);
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
