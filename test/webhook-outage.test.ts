// A payment webhook while the database is unreachable: the sender gets 503 (never a 200 for an
// event that was not stored), and its redelivery after recovery is applied exactly once.
// (Temporal unreachable instead: test/webhook-temporal-outage.test.ts.)
// The database is real (PostgreSQL, or PGlite over the wire protocol) behind a TCP proxy the
// test unplugs; Temporal is the real dev server.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb } from '../db/client';
import { webhookEvents } from '../db/schema';
import { expectPaidOnce, signedBankDelivery, storedEvent } from './support/bank-payments';
import { createTestDbServer } from './support/db';
import { invoicePayload } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { startTcpProxy } from './support/tcp-proxy';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;
let server: Awaited<ReturnType<typeof createTestDbServer>>;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;

beforeAll(async () => {
  server = await createTestDbServer();
  proxy = await startTcpProxy(server);
  const db = await createDb({ DATABASE_URL: server.url(proxy.port), DATA_DIR: 'memory://', poolSize: server.maxConnections });
  await db.migrate();
  h = await startDevServerHarness({ db: { ...db, dispose: () => db.close() } });
});

afterAll(async () => {
  await h?.stop();
  await proxy?.close();
  await server?.dispose();
});

it('answers 503 while the database is down, and applies the redelivered event once after it recovers', async () => {
  const invoice = invoicePayload();
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: invoice })).statusCode).toBe(201);
  const event = { id: `evt_outage_${Date.now()}`, type: 'payment.succeeded', data: { invoiceExternalId: invoice.externalId, amountMinor: 125_000, currency: 'EUR' } };

  await proxy.cut();
  const during = await h.app.inject(signedBankDelivery(event));
  expect(during.statusCode, during.body).toBe(503);
  expect(during.headers['content-type']).toContain('application/problem+json');
  expect(during.headers['retry-after']).toBeDefined();
  expect(during.json()).toMatchObject({ type: 'urn:arrears:problem:database-unavailable' });
  expect(during.body).not.toMatch(/ECONNREFUSED|stack|at /);

  await proxy.restore();
  // Nothing of the failed delivery was stored. (The pool may still hand out a connection the
  // cut killed, once: ask until the database answers.)
  const stored = await until('the database to answer', async () => h.db.db.select().from(webhookEvents).where(eq(webhookEvents.eventId, event.id)).catch(() => undefined));
  expect(stored).toHaveLength(0);

  // The processor retries (signing afresh), once and then once more.
  const after = await until('the database to answer again', async () => {
    const response = await h.app.inject(signedBankDelivery(event));
    return response.statusCode === 200 && response;
  });
  expect(after.json()).toMatchObject({ duplicate: false, event: { status: 'received' } });
  // A pooled connection opened through the proxy around the cut may still time out once.
  await until('the event to be applied', async () => (await storedEvent(h.db.db, event.id).catch(() => undefined))?.status === 'applied');
  const again = await h.app.inject(signedBankDelivery(event));
  expect(again.json()).toMatchObject({ duplicate: true, event: { status: 'applied' } });

  await expectPaidOnce(h, invoice.externalId);
});

