// The schema's guarantees, on PGlite or the PostgreSQL server at DATABASE_URL.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, customers, invoices, payments } from '../db/schema';
import { createTestDb } from './support/db';

let db: Awaited<ReturnType<typeof createTestDb>>;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db?.dispose();
});

describe('database schema', () => {
  it('applies the migrations again without change', async () => {
    await db.migrate();
    const tables = await db.db.execute(sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`);
    const names = (tables as unknown as { rows?: { table_name: string }[] }).rows ?? (tables as unknown as { table_name: string }[]);
    expect(names.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['customers', 'invoices', 'payments', 'collection_cases', 'approvals', 'communications', 'audit_events', 'api_keys']),
    );
  });

  it('keeps the audit trail append-only: updates and deletes are refused', async () => {
    await db.db.insert(auditEvents).values({ actor: 'test', type: 'test.event' });
    const refusal = (err: unknown) => /append-only/.test(String((err as Error).cause ?? err));
    await expect(db.db.update(auditEvents).set({ actor: 'someone else' })).rejects.toSatisfy(refusal);
    await expect(db.db.delete(auditEvents)).rejects.toSatisfy(refusal);
    expect((await db.db.select().from(auditEvents)).map((e) => e.actor)).toEqual(['test']);
  });

  it('stores one payment per provider event id', async () => {
    const [customer] = await db.db.insert(customers).values({ externalId: 'C-db', name: 'C' }).returning();
    const [invoice] = await db.db
      .insert(invoices)
      .values({
        externalId: 'I-db',
        customerId: customer!.id,
        number: '1',
        currency: 'EUR',
        amountTotalMinor: 100,
        amountOutstandingMinor: 100,
        issueDate: '2026-01-01',
        dueDate: '2026-01-31',
      })
      .returning();
    const payment = {
      invoiceId: invoice!.id,
      provider: 'stripe',
      providerEventId: 'evt_1',
      amountMinor: 100,
      currency: 'EUR',
      receivedAt: new Date(),
      recordedBy: 'test',
    };
    await db.db.insert(payments).values(payment);
    await expect(db.db.insert(payments).values(payment)).rejects.toThrow();
    const again = await db.db.insert(payments).values(payment).onConflictDoNothing().returning();
    expect(again).toEqual([]);
  });
});
