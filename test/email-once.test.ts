// An e-mail SendGrid has accepted is never sent again because the database went away before
// it was marked sent: the workflow holds the send's result, and marking it is bookkeeping
// that retries. (Found by the fault test for a 30 s database outage, test/faults/.)
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { markEmailSent } from '../activities/channels';
import { collectionCases, collectionPolicies, communications } from '../db/schema';
import { createTestDb } from './support/db';
import { afternoonZone, emailFirstPolicy, invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;
let markAttempts = 0;

beforeAll(async () => {
  const db = await createTestDb();
  h = await startDevServerHarness({
    db,
    activities: {
      // The database is unreachable for the first two attempts, right after SendGrid's 202.
      markEmailSent: async (input) => {
        markAttempts += 1;
        if (markAttempts <= 2) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
        return markEmailSent({ db: db.db }, input);
      },
    },
  });
  await h.db.db.insert(collectionPolicies).values(emailFirstPolicy('email-now'));
});

afterAll(async () => {
  await h?.stop();
});

it('sends the e-mail once when the database fails right after SendGrid accepted it, and marks it sent when it is back', async () => {
  const payload = invoicePayload({ dueDate: isoDate(-3), policy: 'email-now' });
  payload.customer = { ...payload.customer, timeZone: afternoonZone() };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);

  const workflowId = `collection-${payload.externalId}`;
  await until('the case past its e-mail', async () => {
    const [row] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId));
    return row?.stage === 'AwaitingPayment';
  }, 30_000);
  expect(markAttempts).toBe(3);
  expect(h.sendgrid.messages).toHaveLength(1);
  const [email] = await h.db.db.select().from(communications).where(eq(communications.idempotencyKey, `${workflowId}:day-1:email`));
  expect(email).toMatchObject({ status: 'sent', providerMessageId: h.sendgrid.messages[0]!.messageId });
});
