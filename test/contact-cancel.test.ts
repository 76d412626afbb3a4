// A payment in full while a reminder's attempt is under way (SendGrid taking its time), on the
// real Temporal dev server: the case stops the step and closes at once; the attempt finishes
// on its own, and the record says what it did: an e-mail that went out is marked sent, with
// its audit event, and one that failed leaves the case closed, not blocked.
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { auditEvents, collectionCases, collectionPolicies, communications } from '../db/schema';
import { caseStatusQuery } from '../workflows/messages';
import { afternoonZone, emailFirstPolicy, invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
  await h.db.db.insert(collectionPolicies).values(emailFirstPolicy('email-at-once'));
});

afterAll(async () => {
  await h?.stop();
});

/** A case whose one e-mail is due at once; resolves when SendGrid has the request and has not answered yet. */
async function caseSending(address: string) {
  const payload = invoicePayload({ dueDate: isoDate(-3), policy: 'email-at-once' });
  payload.customer = { ...payload.customer, email: address, timeZone: afternoonZone() };
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
  const handle = h.client.workflow.getHandle(`collection-${payload.externalId}`);
  await until('the e-mail at SendGrid', async () => h.sendgrid.arrivals.includes(address));
  expect(h.sendgrid.requests.some((r) => r.to === address)).toBe(false);
  return { payload, handle };
}

function payInFull(externalId: string) {
  return h.app.inject({
    method: 'POST',
    url: `/invoices/${externalId}/payments`,
    headers: h.auth('collector'),
    payload: { reference: `paid-${externalId}`, amountMinor: 125_000, currency: 'EUR' },
  });
}

async function emailRows(workflowId: string) {
  const [c] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId));
  return (await h.db.db.select().from(communications).where(eq(communications.caseId, c!.id))).map((r) => `${r.template}:${r.status}`);
}

it('records an e-mail already on its way when a payment in full stops its step', async () => {
  const address = 'paid-while-sending@muster.example';
  h.sendgrid.latency(3_000); // SendGrid takes the message at once, and answers 3 s later
  try {
    const { payload, handle } = await caseSending(address);
    expect((await payInFull(payload.externalId)).statusCode).toBe(201);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
    const { history } = await handle.query(caseStatusQuery);
    expect(history).toContainEqual(expect.objectContaining({ kind: 'cancelled', detail: 'day-1' }));
    // The attempt went on: the e-mail is out, once, and the case's record says so.
    await until('the e-mail recorded as sent', async () => (await emailRows(handle.workflowId)).includes('courtesy_reminder:sent'));
    expect(h.sendgrid.messages.filter((m) => m.body.personalizations[0]?.to[0]?.email === address)).toHaveLength(1);
    const [c] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId));
    const sent = await h.db.db.select().from(auditEvents).where(and(eq(auditEvents.caseId, c!.id), eq(auditEvents.type, 'communication.sent')));
    expect(sent).toHaveLength(1);
  } finally {
    h.sendgrid.latency(0);
  }
});

it('closes, without blocking, a case whose attempt under way fails after a payment in full', async () => {
  const address = 'paid-while-failing@muster.example';
  h.sendgrid.failNext(1, 503, {}, undefined, address, 3_000); // SendGrid answers 503, 3 s late
  const { payload, handle } = await caseSending(address);
  expect((await payInFull(payload.externalId)).statusCode).toBe(201);
  expect(await handle.result()).toMatchObject({ outcome: 'paid' });
  await until('the attempt to fail', async () => h.sendgrid.requests.some((r) => r.to === address));
  expect(h.sendgrid.requests.filter((r) => r.to === address).map((r) => r.status)).toEqual([503]);
  const { history } = await handle.query(caseStatusQuery);
  expect(history).toContainEqual(expect.objectContaining({ kind: 'cancelled', detail: 'day-1' }));
  expect(history.map((a) => a.kind)).not.toContain('blocked');
  expect(await emailRows(handle.workflowId)).toEqual(['courtesy_reminder:queued']);
});
