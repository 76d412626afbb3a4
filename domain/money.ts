/**
 * Money is an integer count of the currency's minor units (cents, pence) with an ISO 4217
 * code. Never a float: 0.1 + 0.2 is not a sum anyone wants on a statement.
 */

// ISO 4217 codes with their minor-unit exponent. Arrears formats and validates against this
// list; extend it when a business invoices in another currency.
export const currencyExponents = {
  AUD: 2, BGN: 2, BRL: 2, CAD: 2, CHF: 2, CNY: 2, CZK: 2, DKK: 2, EUR: 2, GBP: 2, HKD: 2,
  HUF: 2, INR: 2, ISK: 0, JPY: 0, KRW: 0, MXN: 2, NOK: 2, NZD: 2, PLN: 2, RON: 2, SEK: 2,
  SGD: 2, TRY: 2, USD: 2, ZAR: 2,
} as const satisfies Record<string, number>;

export const currencyCodes = Object.keys(currencyExponents) as [keyof typeof currencyExponents, ...(keyof typeof currencyExponents)[]];

export type Currency = keyof typeof currencyExponents;

// The schemas (currencySchema, positiveMinorUnitsSchema) are in ./schemas: the workflow
// imports this module, and it stays free of zod (see ./ladder).

/** Formats minor units for people, e.g. formatMoney(123456, 'EUR', 'de-DE') → "1.234,56 €". */
export function formatMoney(amountMinor: number, currency: Currency, locale = 'en-GB'): string {
  const exponent = currencyExponents[currency];
  return new Intl.NumberFormat(locale, {
    style: 'currency',
    currency,
    minimumFractionDigits: exponent,
    maximumFractionDigits: exponent,
  }).format(amountMinor / 10 ** exponent);
}
