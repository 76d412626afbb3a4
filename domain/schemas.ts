import { z } from 'zod';
import { currencyCodes } from './money';

/**
 * The zod schemas of single domain values, for the API and the activities to validate with.
 * They live apart from ./money and ./collection because the workflow imports those, and its
 * modules stay free of zod (see ./ladder).
 */

/** An id from the business's own systems (invoice, customer). */
export const externalIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'letters, digits and . _ : / - only, starting with a letter or digit');

export const currencySchema = z.enum(currencyCodes, {
  error: (issue) => `unknown currency ${JSON.stringify(issue.input)}: use an ISO 4217 code such as EUR or USD`,
});

/** A positive amount in minor units; rejects fractions and anything beyond exact integers. */
export const positiveMinorUnitsSchema = z
  .number({ error: 'must be a whole number of minor units (e.g. cents)' })
  .int({ error: 'must be a whole number of minor units (e.g. cents), not a fraction' })
  .positive({ error: 'must be greater than zero' })
  .max(Number.MAX_SAFE_INTEGER);
