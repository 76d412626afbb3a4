import { char, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export type PostalAddress = {
  line1: string;
  line2?: string;
  city: string;
  postalCode: string;
  region?: string;
  /** ISO 3166-1 alpha-2 */
  country: string;
};

export const customers = pgTable('customers', {
  id: uuid('id').primaryKey().defaultRandom(),
  externalId: text('external_id').notNull().unique(),
  name: text('name').notNull(),
  email: text('email'),
  phone: text('phone'),
  postalAddress: jsonb('postal_address').$type<PostalAddress>(),
  /** IANA zone, e.g. Europe/Berlin: decides when the debtor may be contacted. */
  timeZone: text('time_zone').notNull().default('UTC'),
  /** BCP 47, e.g. de-DE: the language of letters and e-mails. */
  locale: text('locale').notNull().default('en'),
  country: char('country', { length: 2 }),
  kind: text('kind', { enum: ['business', 'consumer'] }).notNull().default('business'),
  /** Set by a ladder's credit_hold step: sales should not extend more credit. */
  creditHoldSince: timestamp('credit_hold_since', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
