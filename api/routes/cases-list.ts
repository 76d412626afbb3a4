import { and, asc, desc, eq, gte, lte, sql, type SQL } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { collectionCases, customers, invoices } from '../../db/schema';
import { collectionStages, daysOverdue } from '../../domain/collection';
import type { AppContext } from '../app';
import { requireRole } from '../auth';
import { caseView } from '../invoice-service';
import { problemResponses } from '../problem';
import { caseViewSchema, queryDaysSchema } from '../schemas';

const DAY_MS = 86_400_000;

/**
 * The case list for collectors and finance, from the database (not Temporal): filter by stage,
 * customer, amount and days overdue, largest balances first, paginated.
 */
export const caseListRoutes =
  ({ db, services }: AppContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/cases',
      {
        onRequest: requireRole(db.db, 'admin', 'collector', 'approver', 'viewer'),
        schema: {
          tags: ['cases'],
          summary: 'List collection cases, largest balances first',
          security: [{ apiKey: [] }],
          querystring: z
            .object({
              stage: z.enum(collectionStages).optional(),
              customer: z.string().min(1).optional().describe("The customer's external id"),
              minAmountMinor: z.coerce.number().int().nonnegative().optional(),
              maxAmountMinor: z.coerce.number().int().nonnegative().optional(),
              minDaysOverdue: queryDaysSchema.optional(),
              maxDaysOverdue: queryDaysSchema.optional(),
              limit: z.coerce.number().int().min(1).max(200).default(50),
              offset: z.coerce.number().int().min(0).default(0),
            })
            .refine((q) => q.minAmountMinor === undefined || q.maxAmountMinor === undefined || q.minAmountMinor <= q.maxAmountMinor, {
              error: 'minAmountMinor cannot exceed maxAmountMinor',
            }),
          response: {
            200: z.object({
              cases: z.array(
                caseViewSchema.extend({
                  invoiceExternalId: z.string(),
                  invoiceNumber: z.string(),
                  currency: z.string(),
                  customerExternalId: z.string(),
                  customerName: z.string(),
                  daysOverdue: z.number().int(),
                }),
              ),
              total: z.number().int(),
              limit: z.number().int(),
              offset: z.number().int(),
            }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const q = request.query;
        // One instant for the whole request, from the API's clock, so the filter and the figures agree.
        const now = await services.clock();
        const today = Date.parse(now.toISOString().slice(0, 10));
        // Days overdue = today - due date, so a range of days is a range of due dates.
        const dueBefore = (days: number) => new Date(today - days * DAY_MS).toISOString().slice(0, 10);
        const where: SQL[] = [];
        if (q.stage) where.push(eq(collectionCases.stage, q.stage));
        if (q.customer) where.push(eq(customers.externalId, q.customer));
        if (q.minAmountMinor !== undefined) where.push(gte(collectionCases.amountOutstandingMinor, q.minAmountMinor));
        if (q.maxAmountMinor !== undefined) where.push(lte(collectionCases.amountOutstandingMinor, q.maxAmountMinor));
        if (q.minDaysOverdue !== undefined) where.push(lte(invoices.dueDate, dueBefore(q.minDaysOverdue)));
        if (q.maxDaysOverdue !== undefined) where.push(gte(invoices.dueDate, dueBefore(q.maxDaysOverdue)));
        const filter = where.length ? and(...where) : undefined;
        const base = () =>
          db.db
            .select({ caseRow: collectionCases, invoice: invoices, customer: customers })
            .from(collectionCases)
            .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
            .innerJoin(customers, eq(customers.id, invoices.customerId))
            .where(filter);
        const [rows, [count]] = await Promise.all([
          base().orderBy(desc(collectionCases.amountOutstandingMinor), asc(invoices.dueDate)).limit(q.limit).offset(q.offset),
          db.db
            .select({ total: sql<number>`count(*)::int` })
            .from(collectionCases)
            .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
            .innerJoin(customers, eq(customers.id, invoices.customerId))
            .where(filter),
        ]);
        return {
          cases: rows.map((r) => ({
            ...caseView(services, r.caseRow),
            invoiceExternalId: r.invoice.externalId,
            invoiceNumber: r.invoice.number,
            currency: r.invoice.currency,
            customerExternalId: r.customer.externalId,
            customerName: r.customer.name,
            daysOverdue: daysOverdue(r.invoice.dueDate, now),
          })),
          total: count?.total ?? 0,
          limit: q.limit,
          offset: q.offset,
        };
      },
    );
  };
