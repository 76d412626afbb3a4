// The collection workflow on the time-skipping test server: months of a case in seconds, with
// the real activities writing to a real (embedded) PostgreSQL and e-mail going through the
// real @sendgrid/mail client to a local SendGrid-compatible server.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tsToMs } from '@temporalio/common/lib/time';
import {
  approvals,
  auditEvents,
  callTasks,
  collectionCases,
  collectionPolicies,
  commandOutbox,
  communications,
  customers,
  disputes,
  handovers,
  invoiceAdjustments,
  invoices,
  letters,
  webhookEvents,
} from '../db/schema';
import { defaultPolicy, policySchema } from '../domain/policy';
import { collectionWorkflowId, stepDueForDebtor } from '../domain/collection';
import { localParts, nextContactTime, zonedTime } from '../domain/contact-window';
import {
  caseStatusQuery,
  ceaseCommunicationSignal,
  decideApprovalUpdate,
  invoiceAdjustedSignal,
  openDisputeSignal,
  pauseSignal,
  paymentPlanSignal,
  promiseToPaySignal,
  proposeSettlementSignal,
  resolveDisputeSignal,
  resumeSignal,
  searchAttributes,
} from '../workflows/messages';
import { emailFirstPolicy, invoicePayload, isoDate } from './support/fixtures';
import { startTimeSkippingHarness } from './support/harness';
import { replayAndRecord } from './support/histories';
import { until } from './support/until';

let env: TestWorkflowEnvironment;
let h: Awaited<ReturnType<typeof startTimeSkippingHarness>>;

beforeAll(async () => {
  h = await startTimeSkippingHarness();
  env = h.env;
  // Contact windows make outcomes depend on the weekday; TEST_CLOCK_OFFSET_DAYS=1..6 runs the
  // file on other weekdays to check that the tests do not.
  const offsetDays = Number(process.env.TEST_CLOCK_OFFSET_DAYS ?? 0);
  if (offsetDays > 0) await env.sleep(`${offsetDays} days`);
});

afterAll(async () => {
  await h?.stop();
});

beforeEach(() => h.sendgrid.reset());

/** Registers an invoice due `dueInDays` from the test server's clock (which tests move forward). */
async function register(dueInDays: number, customer: Partial<ReturnType<typeof invoicePayload>['customer']> = {}) {
  const now = new Date(await env.currentTimeMs());
  const base = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(dueInDays, now) });
  const payload = { ...base, customer: { ...base.customer, ...customer } };
  const res = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  expect(res.statusCode, res.body).toBe(201);
  return { payload, handle: env.client.workflow.getHandle(collectionWorkflowId(payload.externalId)) };
}

async function pay(externalId: string, reference: string, amountMinor: number) {
  return h.app.inject({
    method: 'POST',
    url: `/invoices/${externalId}/payments`,
    headers: h.auth('collector'),
    payload: { reference, amountMinor, currency: 'EUR' },
  });
}

async function caseRow(workflowId: string) {
  const [row] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, workflowId));
  return row!;
}

/** "<template>:<channel>:<status>" of every communication of the case, in order. */
/** Moves the clock to a moment at least an hour before a Berlin debtor's contact window opens. */
async function sleepToOutsideContactWindow(): Promise<void> {
  const now = await env.currentTimeMs();
  for (let t = now + 60_000; ; t += 30 * 60_000) {
    if (nextContactTime(new Date(t), 'Europe/Berlin', defaultPolicy.contactWindow).getTime() - t >= 3_600_000) {
      await env.sleep(t - now);
      return;
    }
  }
}

async function contacts(workflowId: string) {
  const c = await caseRow(workflowId);
  const rows = await h.db.db.select().from(communications).where(eq(communications.caseId, c.id)).orderBy(communications.createdAt, communications.channel);
  return rows.map((r) => `${r.template}:${r.channel}:${r.status}`);
}

const emailsTo = (address: string, workflowId?: string) =>
  h.sendgrid.messages.filter(
    (m) =>
      m.body.personalizations[0]?.to[0]?.email === address &&
      (!workflowId || String(m.body.custom_args?.idempotencyKey).startsWith(`${workflowId}:`)),
  );

describe('invoice collection workflow (time-skipping server)', () => {
  it('walks the default ladder: heads-up, reminders, letter, call task and credit hold, in the contact window', async () => {
    // Due in 4 days: the heads-up (day -3) is within a day, so registration starts the case.
    const { handle } = await register(4, { email: 'ladder@muster.example' });
    const startedAt = performance.now();
    await env.sleep('38 days'); // to day 34: past day 30, even when it fell on a weekend
    console.log(`38 days of the ladder took ${(performance.now() - startedAt).toFixed(0)} ms of wall time`);

    expect(await contacts(handle.workflowId)).toEqual([
      'pre_due:email:sent',
      'courtesy_reminder:email:sent',
      'reminder_letter:letter:queued',
      'firm_reminder:email:sent',
    ]);
    const c = await caseRow(handle.workflowId);
    const [task] = await h.db.db.select().from(callTasks).where(eq(callTasks.caseId, c.id));
    expect(task).toMatchObject({ status: 'open', phone: '+49 30 1234567' });
    const [customer] = await h.db.db
      .select()
      .from(customers)
      .innerJoin(invoices, eq(invoices.customerId, customers.id))
      .where(eq(invoices.id, c.invoiceId));
    expect(customer?.customers.creditHoldSince).not.toBeNull();

    // Exactly one e-mail per step, each sent inside Berlin business hours.
    const sent = emailsTo('ladder@muster.example');
    expect(sent.map((m) => m.body.custom_args?.idempotencyKey ?? m.body.headers?.['X-Arrears-Idempotency-Key'])).toEqual([
      `${handle.workflowId}:pre-due:email`,
      `${handle.workflowId}:day-1:email`,
      `${handle.workflowId}:day-30:email`,
    ]);
    const emailRows = await h.db.db
      .select()
      .from(communications)
      .where(and(eq(communications.caseId, c.id), eq(communications.channel, 'email')));
    for (const row of emailRows) {
      const local = localParts(row.createdAt, 'Europe/Berlin');
      expect(local.weekday).toBeLessThanOrEqual(5);
      expect(local.hour).toBeGreaterThanOrEqual(9);
      expect(local.hour).toBeLessThan(18);
    }
    expect(sent[1]?.body.content.find((p) => p.type === 'text/plain')?.value).toContain('1.250,00');

    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ stage: 'Scheduled', nextAction: { kind: 'final-notice' }, policy: { name: 'default', version: 1 } });
  });

  it('takes the open call task off the worklist and lifts the credit hold once the invoice is paid', async () => {
    const { payload, handle } = await register(0, { email: 'hold-then-paid@muster.example' });
    await env.sleep('34 days'); // past day 30, even when it fell on a weekend
    const c = await caseRow(handle.workflowId);
    const customerOf = async () =>
      (await h.db.db.select().from(customers).innerJoin(invoices, eq(invoices.customerId, customers.id)).where(eq(invoices.id, c.invoiceId)))[0]!.customers;
    expect(await h.db.db.select({ status: callTasks.status }).from(callTasks).where(eq(callTasks.caseId, c.id))).toEqual([{ status: 'open' }]);
    expect((await customerOf()).creditHoldSince).not.toBeNull();
    // Another invoice of theirs, not due for two months: not a debt being chased.
    const later = invoicePayload({ issueDate: isoDate(-1, new Date(await env.currentTimeMs())), dueDate: isoDate(60, new Date(await env.currentTimeMs())), customer: payload.customer });
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: later })).statusCode).toBe(201);

    await pay(payload.externalId, 'paid-after-hold', 125_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
    const [task] = await h.db.db.select().from(callTasks).where(eq(callTasks.caseId, c.id));
    expect(task).toMatchObject({ status: 'cancelled', outcome: expect.stringContaining('case.closed') });
    expect((await customerOf()).creditHoldSince).toBeNull();
  });

  it('takes the open call task off the worklist when the debtor disputes', async () => {
    const { handle } = await register(0);
    await env.sleep('10 days'); // past day 7, even when it fell on a weekend
    const c = await caseRow(handle.workflowId);
    expect(await h.db.db.select({ status: callTasks.status }).from(callTasks).where(eq(callTasks.caseId, c.id))).toEqual([{ status: 'open' }]);
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'wrong goods delivered' });
    await until('the call task withdrawn', async () => {
      const [task] = await h.db.db.select().from(callTasks).where(eq(callTasks.caseId, c.id));
      return task?.status === 'cancelled' || undefined;
    });
  });

  it('sends the day-1 reminder on the day after the due date where the debtor is, west of UTC too', async () => {
    await h.db.db.insert(collectionPolicies).values(emailFirstPolicy('day-one-local')).onConflictDoNothing();
    const now = new Date(await env.currentTimeMs());
    const base = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now), policy: 'day-one-local' });
    // UTC-10 all year, and a contact window of 08:00-21:00 every day: at 00:00 UTC it is 14:00 the day before.
    const payload = { ...base, customer: { ...base.customer, email: 'west@muster.example', timeZone: 'Etc/GMT+10' } };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    await env.sleep('4 days');
    const c = await caseRow(handle.workflowId);
    const [sent] = await h.db.db.select().from(communications).where(and(eq(communications.caseId, c.id), eq(communications.channel, 'email')));
    const local = localParts(sent!.createdAt, 'Etc/GMT+10');
    const localDate = `${local.year}-${String(local.month).padStart(2, '0')}-${String(local.day).padStart(2, '0')}`;
    expect(localDate > payload.dueDate, `sent on ${localDate} local, due ${payload.dueDate}`).toBe(true);
    await replayAndRecord(handle, 'steps-due-in-debtor-day-v1');
  });

  it("keeps to the debtor's contact window through SendGrid's failures: an e-mail refused until the window closed goes out when it opens again", async () => {
    // A half-hour window, every day: SendGrid refuses the first nine attempts, and the step's
    // backoff (5 s doubling, at most 10 minutes) brings the tenth 31 minutes after the first.
    const name = 'half-hour-window';
    const policy = emailFirstPolicy(name);
    policy.definition = policySchema.parse({ ...policy.definition, contactWindow: { weekdays: [1, 2, 3, 4, 5, 6, 7], start: '09:00', end: '09:30' } });
    await h.db.db.insert(collectionPolicies).values(policy).onConflictDoNothing();
    const now = new Date(await env.currentTimeMs());
    const base = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now), policy: name });
    const address = 'after-hours@muster.example';
    const payload = { ...base, customer: { ...base.customer, email: address, timeZone: 'Europe/Berlin' } };
    h.sendgrid.failNext(9, 503, {}, undefined, address);
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    // Day 1 is the day after the due date; at 09:45 there the e-mail is held for the next window.
    const [y, m, d] = payload.dueDate.split('-').map(Number) as [number, number, number];
    await env.sleep(zonedTime(y, m, d + 1, 9, 45, 'Europe/Berlin').getTime() - (await env.currentTimeMs()));
    expect(h.sendgrid.requests.filter((r) => r.to === address)).toHaveLength(9);
    // Waiting for the window is not failing: operations are not asked to look at it.
    const stuck = await h.app.inject({ url: '/operations/stuck', headers: h.auth('viewer') });
    expect(stuck.json().cases.filter((c: { invoiceExternalId: string }) => c.invoiceExternalId === payload.externalId)).toEqual([]);
    await env.sleep('3 days');

    expect(h.sendgrid.requests.filter((r) => r.to === address).map((r) => r.status)).toEqual([...Array(9).fill(503), 202]);
    expect(emailsTo(address)).toHaveLength(1);
    // When SendGrid took it, by the server's clock: inside the window, a day after the refusals began.
    const { events } = await handle.fetchHistory();
    const scheduled = events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverEmail')!;
    const ofDelivery = events!.filter((e) => String((e.activityTaskStartedEventAttributes ?? e.activityTaskCompletedEventAttributes)?.scheduledEventId) === String(scheduled.eventId));
    const started = ofDelivery.find((e) => e.activityTaskStartedEventAttributes)!.activityTaskStartedEventAttributes!;
    // Ten attempts refused or held (the tenth found the window closed), the eleventh sent.
    expect(started.attempt).toBe(11);
    const completed = ofDelivery.find((e) => e.activityTaskCompletedEventAttributes)!;
    const sentAt = localParts(new Date(tsToMs(completed.eventTime)), 'Europe/Berlin');
    expect(sentAt.hour * 60 + sentAt.minute, `sent at ${sentAt.hour}:${sentAt.minute} Berlin time`).toBeGreaterThanOrEqual(9 * 60);
    expect(sentAt.hour * 60 + sentAt.minute).toBeLessThan(9 * 60 + 30);
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
  });

  it('offers the debtor the day summer time begins: a contact moved late into the evening before goes out that Sunday, not a week later', async () => {
    const name = 'sundays-only';
    const policy = emailFirstPolicy(name);
    policy.definition = policySchema.parse({ ...policy.definition, contactWindow: { weekdays: [7], start: '09:00', end: '18:00' } });
    await h.db.db.insert(collectionPolicies).values(policy).onConflictDoNothing();
    // The next Berlin day of 23 hours (a Sunday in March), at least a week ahead.
    const berlin = (day: Date, hh: number, mm: number) => zonedTime(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), hh, mm, 'Europe/Berlin');
    const sunday = new Date(Date.parse(isoDate(7, new Date(await env.currentTimeMs()))));
    while (berlin(new Date(sunday.getTime() + 86_400_000), 0, 0).getTime() - berlin(sunday, 0, 0).getTime() !== 23 * 3_600_000) sunday.setUTCDate(sunday.getUTCDate() + 1);
    const friday = new Date(sunday.getTime() - 2 * 86_400_000);
    const saturday = new Date(sunday.getTime() - 86_400_000);
    const sleepTo = async (at: Date) => env.sleep(at.getTime() - (await env.currentTimeMs()));

    // Friday noon: due today, so its e-mail (day 1) is due at Saturday's midnight, and would go out on Sunday.
    await sleepTo(berlin(friday, 12, 0));
    const base = invoicePayload({ issueDate: isoDate(-30, friday), dueDate: isoDate(0, friday), policy: name });
    const address = 'summer-time@muster.example';
    const payload = { ...base, customer: { ...base.customer, email: address, timeZone: 'Europe/Berlin' } };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    const command = (what: 'pause' | 'resume') =>
      h.app.inject({ method: 'POST', url: `/invoices/${payload.externalId}/${what}`, headers: h.auth('collector'), payload: { reason: 'customer on the phone' } });
    // Paused just long enough to move the e-mail (and the rest of the ladder) to Saturday 23:30.
    const pausedAt = await env.currentTimeMs();
    expect((await command('pause')).statusCode).toBe(202);
    const dueAt = stepDueForDebtor(payload.dueDate, 1, 'Europe/Berlin');
    await sleepTo(new Date(pausedAt + berlin(saturday, 23, 30).getTime() - dueAt.getTime()));
    expect((await command('resume')).statusCode).toBe(202);

    await sleepTo(berlin(sunday, 12, 0));
    expect(emailsTo(address), 'sent by Sunday noon').toHaveLength(1);
    const [sent] = await h.db.db.select().from(communications).where(eq(communications.caseId, (await caseRow(handle.workflowId)).id));
    expect(localParts(sent!.createdAt, 'Europe/Berlin')).toMatchObject({ day: sunday.getUTCDate(), weekday: 7, hour: 9 });
    await replayAndRecord(handle, 'debtor-calendar-days-v1');
  });

  it("starts a late case's step at once for a debtor west of UTC, not hours later", async () => {
    const name = 'late-start-west';
    await h.db.db.insert(collectionPolicies).values(emailFirstPolicy(name)).onConflictDoNothing();
    // 10:00 in Los Angeles, on a day that began there 8 hours after it began in UTC.
    const now = new Date(await env.currentTimeMs());
    const today = localParts(new Date(now.getTime() + 86_400_000), 'America/Los_Angeles');
    await env.sleep(zonedTime(today.year, today.month, today.day, 10, 0, 'America/Los_Angeles').getTime() - now.getTime());
    // Due five days ago there: day 1 (an e-mail) is the latest step due, so it runs now.
    const dueDate = isoDate(-5, new Date(Date.UTC(today.year, today.month - 1, today.day)));
    const base = invoicePayload({ issueDate: isoDate(-30, new Date(dueDate)), dueDate, policy: name });
    const address = 'late-west@muster.example';
    const payload = { ...base, customer: { ...base.customer, email: address, timeZone: 'America/Los_Angeles' } };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    await env.sleep('1 hour');
    expect(emailsTo(address), 'sent within the hour').toHaveLength(1);
  });

  it('drops a heads-up that the contact window carries onto the due date', async () => {
    // Friday 20:00 in Berlin, after business hours, with the invoice due on Monday: the heads-up
    // (3 days before) is due, but its window opens only on Monday, the due date itself.
    const now = new Date(await env.currentTimeMs());
    let friday = localParts(new Date(now.getTime() + 86_400_000), 'Europe/Berlin');
    for (let d = 1; friday.weekday !== 5; d++) friday = localParts(new Date(now.getTime() + d * 86_400_000), 'Europe/Berlin');
    const at = (days: number, hh: number) => zonedTime(friday.year, friday.month, friday.day + days, hh, 0, 'Europe/Berlin');
    await env.sleep(at(0, 20).getTime() - now.getTime());
    const base = invoicePayload({ issueDate: isoDate(-30, at(0, 12)), dueDate: isoDate(3, at(0, 12)) });
    const address = 'heads-up@muster.example';
    const payload = { ...base, customer: { ...base.customer, email: address, timeZone: 'Europe/Berlin' } };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));

    await env.sleep(at(3, 12).getTime() - (await env.currentTimeMs())); // Monday noon, the due date
    expect(emailsTo(address)).toHaveLength(0);
    expect((await handle.query(caseStatusQuery)).history).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'skipped', detail: 'pre-due: the due date has come' })]),
    );
    // The dropped heads-up moves nothing: the day-1 reminder goes out on Tuesday morning.
    await env.sleep(at(4, 12).getTime() - (await env.currentTimeMs()));
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
  });

  it('stops chasing as soon as the invoice is paid: nothing after the payment', async () => {
    const { payload, handle } = await register(0, { email: 'paid@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);

    await pay(payload.externalId, 'bank-2', 125_000);
    expect(await handle.result()).toEqual({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 0, paymentsApplied: 1 });
    await env.sleep('60 days');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    expect(emailsTo('paid@muster.example')).toHaveLength(1);
  });

  it('lowers the balance on a partial payment, publishes it at once, and asks for the rest', async () => {
    const { payload, handle } = await register(0, { email: 'partial@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    await pay(payload.externalId, 'part-1', 25_000);
    await env.sleep('1 minute');
    expect(await caseRow(handle.workflowId)).toMatchObject({ amountOutstandingMinor: 100_000 });
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(searchAttributes.amountOutstanding)).toBe(100_000);

    await env.sleep('29 days'); // past day 30, even when it fell on a weekend
    const firm = emailsTo('partial@muster.example').at(-1);
    expect(firm?.body.content.find((p) => p.type === 'text/plain')?.value).toContain('1.000,00');
    await pay(payload.externalId, 'part-2', 100_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 2 });
  });

  it('counts a payment delivered twice only once', async () => {
    const { payload, handle } = await register(0);
    const first = await pay(payload.externalId, 'dup-1', 50_000);
    const again = await pay(payload.externalId, 'dup-1', 50_000);
    expect([first.statusCode, again.statusCode]).toEqual([201, 200]);
    expect(again.json().payment.id).toBe(first.json().payment.id);
    await env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(75_000);
  });

  it('starts a late case at the latest step due, with no burst, and keeps the spacing after it', async () => {
    const { handle } = await register(-20, { email: 'late@muster.example' });
    await env.sleep('2 hours');
    // Day 7's letter goes out now; the heads-up and day-1 e-mails are not sent after the fact.
    expect(await contacts(handle.workflowId)).toEqual(['reminder_letter:letter:queued']);
    expect(emailsTo('late@muster.example')).toEqual([]);
    // Day 30's e-mail follows 23 days later, as it would have after day 7.
    await env.sleep('20 days');
    expect(emailsTo('late@muster.example')).toEqual([]);
    await env.sleep('6 days'); // past the shifted day 30, even when it fell on a weekend
    expect(emailsTo('late@muster.example')).toHaveLength(1);
  });

  it('keeps an overpayment on record instead of losing it', async () => {
    const { payload, handle } = await register(3);
    await pay(payload.externalId, 'over-1', 130_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0, overpaidMinor: 5_000 });
  });

  it('keeps money that arrives after the case closed, flagged for reconciliation', async () => {
    const { payload, handle } = await register(3);
    await pay(payload.externalId, 'full-1', 125_000);
    await handle.result();
    const late = await pay(payload.externalId, 'after-close', 10_000);
    expect(late.statusCode).toBe(201);
    expect(late.json().delivery).toBe('case_closed');
    const c = await caseRow(handle.workflowId);
    const flagged = await h.db.db
      .select({ data: auditEvents.data })
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'payment.unapplied'), eq(auditEvents.invoiceId, c.invoiceId)));
    expect(flagged[0]?.data).toMatchObject({ reference: 'after-close', amountMinor: 10_000, reason: 'case_closed' });
  });

  it('starts a case whose workflow failed to start when its payment arrives, and applies the payment', async () => {
    // Registration through an API whose Temporal connection is gone: the start fails.
    const broken = await h.appWithoutTemporal();
    const now = new Date(await env.currentTimeMs());
    const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now) });
    const failed = await broken.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    await broken.close();
    expect(failed.statusCode).toBe(503);

    const paid = await pay(payload.externalId, 'rescue-1', 125_000);
    expect(paid.json().delivery).toBe('applied');
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 1 });
  });

  it('retries an e-mail SendGrid throttles (429) and delivers it exactly once', async () => {
    const { handle } = await register(0, { email: 'throttled@muster.example' });
    const reset = String(Math.floor((await env.currentTimeMs()) / 1000) + 60);
    h.sendgrid.failNext(2, 429, { 'X-RateLimit-Reset': reset }, undefined, 'throttled@muster.example');
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    expect(emailsTo('throttled@muster.example')).toHaveLength(1);
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
  });

  it('blocks the case with the reason when SendGrid refuses the address, and retries the step on resume', async () => {
    const { handle } = await register(0, { email: 'refused@muster.example' });
    h.sendgrid.failNext(
      1,
      400,
      {},
      { errors: [{ message: 'Does not contain a valid address.', field: 'personalizations.0.to', help: null }] },
      'refused@muster.example',
    );
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const blocked = await caseRow(handle.workflowId);
    expect(blocked.stage).toBe('Blocked');
    expect(blocked.blockedReason).toContain('valid address');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:failed']);
    expect((await handle.describe()).typedSearchAttributes.get(searchAttributes.stage)).toBe('Blocked');

    await handle.signal(resumeSignal, { by: 'ops', reason: 'address corrected' });
    // The retry waits for the debtor's business hours (after a weekend, days away).
    const sent = async () => (await contacts(handle.workflowId)).includes('courtesy_reminder:email:sent');
    for (let i = 0; i < 7 * 96 && !(await sent()); i++) await env.sleep('15 minutes');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'Scheduled', blockedReason: null });
  });

  it('sends a blocked e-mail that a person retries at night in the debtor business hours, not at once', async () => {
    const address = 'refused-at-night@muster.example';
    const { handle } = await register(0, { email: address });
    h.sendgrid.failNext(1, 400, {}, { errors: [{ message: 'Does not contain a valid address.', field: 'personalizations.0.to', help: null }] }, address);
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'Blocked' });
    await sleepToOutsideContactWindow();
    await handle.signal(resumeSignal, { by: 'ops in another time zone', reason: 'address corrected' });
    await env.sleep('10 minutes');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:failed']);
    const sent = async () => (await contacts(handle.workflowId)).includes('courtesy_reminder:email:sent');
    for (let i = 0; i < 7 * 96 && !(await sent()); i++) await env.sleep('15 minutes');
    expect(await sent()).toBe(true);
    // Seen within 15 minutes of going out: inside Berlin's 09:00–18:00 on a weekday.
    const local = localParts(new Date(await env.currentTimeMs()), 'Europe/Berlin');
    expect(local.hour * 60 + local.minute).toBeGreaterThanOrEqual(9 * 60);
    expect(local.hour * 60 + local.minute).toBeLessThanOrEqual(18 * 60 + 15);
    await replayAndRecord(handle, 'resumed-step-waits-for-contact-window-v1');
  });

  it('sends nothing more to a debtor who asked for no contact', async () => {
    const { handle } = await register(0, { email: 'ceased@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    await handle.signal(ceaseCommunicationSignal, { by: 'collector', reason: 'debtor asked in writing' });
    await env.sleep('40 days');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    // The internal credit hold still happens.
    const holds = await h.db.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'customer.credit_hold'), eq(auditEvents.caseId, (await caseRow(handle.workflowId)).id)));
    expect(holds).toHaveLength(1);
  });

  it('holds the ladder while paused and shifts what is left by the time paused', async () => {
    const { handle } = await register(0, { email: 'paused@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    await handle.signal(pauseSignal, { by: 'ops', reason: 'credit note being agreed' });
    await env.sleep('10 days');
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'Paused' });
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    await handle.signal(resumeSignal, { by: 'ops', reason: 'no credit note after all' });
    // Day 7's letter, due on day 7 + 10 paused days = day 17.
    await env.sleep('2 days');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    await env.sleep('2 days');
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent', 'reminder_letter:letter:queued']);
  });

  it('asks for approval before agency referral, shows it, and hands the case over when approved', async () => {
    const { payload, handle } = await register(0, { email: 'agency@muster.example' });
    await env.sleep('61 days');
    const c = await caseRow(handle.workflowId);
    expect(c.stage).toBe('AwaitingApproval');
    expect((await handle.describe()).typedSearchAttributes.get(searchAttributes.pendingApproval)).toBe(true);
    const status = await handle.query(caseStatusQuery);
    expect(status.pendingApproval).toMatchObject({ kind: 'agency_referral', amountMinor: 125_000, costMinor: 31_250, approverRoles: ['approver', 'admin'] });
    const [request] = await h.db.db.select().from(approvals).where(eq(approvals.caseId, c.id));
    expect(request).toMatchObject({ status: 'pending', kind: 'agency_referral', costMinor: 31_250 });
    expect(emailsTo('approvers@beispiel.example', handle.workflowId)).toHaveLength(1);
    // The final notice went out before, by e-mail and certified letter, naming the referral date.
    const [letter] = await h.db.db
      .select({ certified: letters.certified })
      .from(letters)
      .innerJoin(communications, eq(communications.id, letters.communicationId))
      .where(and(eq(communications.caseId, c.id), eq(communications.template, 'final_notice')));
    expect(letter?.certified).toBe('yes');

    const outcome = await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: request!.id, decision: 'approve', reason: 'no reply to four contacts', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    expect(outcome).toMatchObject({ approvalId: request!.id, decision: 'approve' });
    await env.sleep('63 hours'); // the debtor's notice waits for their business hours (a weekend at most)
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'HandedOver' });
    const [placement] = await h.db.db.select().from(handovers).where(eq(handovers.approvalId, request!.id));
    expect(placement).toMatchObject({ kind: 'agency_referral', amountMinor: 125_000 });
    const notice = emailsTo('placements@agency.example', handle.workflowId).at(-1);
    expect(notice?.body.subject ?? notice?.body.personalizations[0]?.subject).toContain('New placement: Muster GmbH');
    expect(emailsTo('agency@muster.example').at(-1)?.body.custom_args?.idempotencyKey).toBe(`${handle.workflowId}:agency-notice:email`);
    const [decided] = await h.db.db.select().from(approvals).where(eq(approvals.id, request!.id));
    expect(decided).toMatchObject({ status: 'approved', decidedBy: 'Anna', decisionReason: 'no reply to four contacts' });

    // The agency collects: the payment still closes the case.
    await pay(payload.externalId, 'agency-1', 125_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
  });

  it('refuses a decision from a role the policy does not allow, a second decision, and an unknown request', async () => {
    const { handle } = await register(0);
    await env.sleep('61 days');
    const [request] = await h.db.db.select().from(approvals).where(eq(approvals.caseId, (await caseRow(handle.workflowId)).id));
    const decide = (role: 'collector' | 'approver', approvalId = request!.id) =>
      handle.executeUpdate(decideApprovalUpdate, {
        args: [{ approvalId, decision: 'approve', reason: 'ok', decidedBy: { name: `someone-${role}`, role } }],
      });
    await expect(decide('collector')).rejects.toSatisfy((e: Error) => /NotAnApprover|may not decide/.test(String((e as { cause?: Error }).cause?.message ?? e.message)));
    await expect(decide('approver', '00000000-0000-0000-0000-000000000000')).rejects.toThrow();
    await decide('approver');
    await expect(decide('approver')).rejects.toThrow();
    const [row] = await h.db.db.select().from(approvals).where(eq(approvals.id, request!.id));
    expect(row).toMatchObject({ status: 'approved', decidedBy: 'someone-approver' });
  });

  it('reminds the approvers past the deadline, then escalates', async () => {
    const { handle } = await register(0, { email: 'slow@muster.example' });
    await env.sleep('61 days');
    const [request] = await h.db.db.select().from(approvals).where(eq(approvals.caseId, (await caseRow(handle.workflowId)).id));
    expect(request?.remindedAt).toBeNull();
    await env.sleep('5 days');
    const [reminded] = await h.db.db.select().from(approvals).where(eq(approvals.id, request!.id));
    expect(reminded?.remindedAt).not.toBeNull();
    expect(reminded?.escalatedAt).toBeNull();
    await env.sleep('3 days');
    const [escalated] = await h.db.db.select().from(approvals).where(eq(approvals.id, request!.id));
    expect(escalated?.escalatedAt).not.toBeNull();
    expect((await handle.query(caseStatusQuery)).pendingApproval).toMatchObject({ escalated: true });
    const subjects = emailsTo('approvers@beispiel.example', handle.workflowId).map((m) => m.body.subject ?? m.body.personalizations[0]?.subject);
    expect(subjects.some((s) => s?.startsWith('Reminder:'))).toBe(true);
    expect(subjects.some((s) => s?.startsWith('Escalated:'))).toBe(true);
  });

  it('proposes a write-off for a small balance, and closes the case as written off when approved', async () => {
    const now = new Date(await env.currentTimeMs());
    const address = 'small-balance@muster.example';
    const base = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now), amountTotalMinor: 20_000 });
    await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: { ...base, customer: { ...base.customer, email: address } } });
    const handle = env.client.workflow.getHandle(collectionWorkflowId(base.externalId));
    await env.sleep('61 days');
    const status = await handle.query(caseStatusQuery);
    expect(status.pendingApproval).toMatchObject({ kind: 'write_off', amountMinor: 20_000 });
    // The final notice threatens no agency referral: at this balance the policy will not make one.
    const notice = emailsTo(address, handle.workflowId).find((m) => String(m.body.custom_args?.idempotencyKey).includes(':final-notice:'));
    const noticeText = notice?.body.content.find((p) => p.type === 'text/plain')?.value ?? '';
    expect(noticeText).toContain('letzte Mahnung');
    expect(noticeText).not.toMatch(/agency|Inkasso/i);
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: status.pendingApproval!.approvalId, decision: 'approve', reason: 'costs exceed the debt', decidedBy: { name: 'Anna', role: 'admin' } }],
    });
    expect(await handle.result()).toMatchObject({ outcome: 'written_off', amountOutstandingMinor: 20_000 });
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, base.externalId));
    expect(invoice?.status).toBe('written_off');
  });

  it('takes a dispute on a case held after a rejected write-off, and holds it again once resolved', async () => {
    const now = new Date(await env.currentTimeMs());
    const base = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now), amountTotalMinor: 20_000 });
    await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: base });
    const handle = env.client.workflow.getHandle(collectionWorkflowId(base.externalId));
    await env.sleep('61 days');
    const { pendingApproval } = await handle.query(caseStatusQuery);
    expect(pendingApproval).toMatchObject({ kind: 'write_off' });
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: pendingApproval!.approvalId, decision: 'reject', reason: 'keep chasing by hand', decidedBy: { name: 'Anna', role: 'admin' } }],
    });
    await env.sleep('1 hour');
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'OnHold' });

    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'never received the goods' });
    await env.sleep('1 hour');
    const c = await caseRow(handle.workflowId);
    expect(c.stage).toBe('Disputed');
    expect(await h.db.db.select().from(disputes).where(eq(disputes.caseId, c.id))).toHaveLength(1);
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'customer_favour', note: 'credit CN-9', creditMinor: 5_000 });
    await env.sleep('1 hour');
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'OnHold', amountOutstandingMinor: 15_000 });
    await replayAndRecord(handle, 'on-hold-handles-commands-v1');
  });

  it('continues in-house when the agency referral is rejected, up to the legal step', async () => {
    const { handle } = await register(0);
    await env.sleep('61 days');
    const first = (await handle.query(caseStatusQuery)).pendingApproval!;
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: first.approvalId, decision: 'reject', reason: 'key account: sales will call', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    await env.sleep('1 hour');
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'Scheduled' });
    await env.sleep('30 days');
    expect((await handle.query(caseStatusQuery)).pendingApproval).toMatchObject({ kind: 'legal_action' });
  });

  it('stops every contact during a dispute, sends a verification when it is resolved against the debtor, and shifts the ladder', async () => {
    const { handle } = await register(0, { email: 'disputing@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'pallet arrived damaged' });
    await env.sleep('1 hour');
    const c = await caseRow(handle.workflowId);
    expect(c.stage).toBe('Disputed');
    const [open] = await h.db.db.select().from(disputes).where(eq(disputes.caseId, c.id));
    expect(open).toMatchObject({ reason: 'pallet arrived damaged', resolvedAt: null });
    await env.sleep('20 days'); // past day 7: no letter while disputed
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);

    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'business_favour', note: 'delivery photos show intact pallet' });
    await env.sleep('63 hours'); // the verification waits for Berlin business hours (a weekend at most)
    const verification = emailsTo('disputing@muster.example', handle.workflowId).at(-1);
    expect(verification?.body.content.find((p) => p.type === 'text/plain')?.value).toContain('delivery photos show intact pallet');
    expect(await contacts(handle.workflowId)).toContain('dispute_verification:email:sent');
    // Day 7's letter follows the ladder shifted by the dispute: days after the verification, not at once.
    await env.sleep('5 days');
    const rows = await h.db.db.select().from(communications).where(eq(communications.caseId, c.id));
    const sentVerification = rows.find((r) => r.template === 'dispute_verification')!;
    const letter = rows.find((r) => r.template === 'reminder_letter')!;
    expect(letter.createdAt.getTime() - sentVerification.createdAt.getTime()).toBeGreaterThan(36 * 3_600_000);
  });

  it('lowers the balance by the credit when a dispute is resolved in the debtor favour', async () => {
    const { handle } = await register(0);
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'two items missing' });
    await env.sleep('1 hour');
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'customer_favour', note: 'credit note CN-7', creditMinor: 25_000 });
    await env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(100_000);
    const [resolved] = await h.db.db.select().from(disputes).where(eq(disputes.caseId, (await caseRow(handle.workflowId)).id));
    expect(resolved).toMatchObject({ resolution: 'customer_favour', creditMinor: 25_000 });
  });

  it('pauses contacts for a promise to pay and closes when it is kept', async () => {
    const { payload, handle } = await register(0, { email: 'promise@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const promisedDate = isoDate(10, new Date(await env.currentTimeMs()));
    await handle.signal(promiseToPaySignal, { by: 'collector', promisedDate, amountMinor: 125_000 });
    await env.sleep('9 days'); // past day 7
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'PromisedToPay' });
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent']);
    await pay(payload.externalId, 'promised-1', 125_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
  });

  it('counts a payment made before a promise arrived (queued while Temporal was away) toward the promise', async () => {
    const { payload, handle } = await register(0, { email: 'paid-before-promise@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const promisedDate = isoDate(2, new Date(await env.currentTimeMs()));
    // The collector recorded the promise when 125,000 was outstanding; the debtor paid it before it arrived.
    expect((await pay(payload.externalId, 'paid-as-promised', 50_000)).statusCode).toBe(201);
    await env.sleep('1 hour');
    await handle.signal(promiseToPaySignal, { by: 'collector', promisedDate, amountMinor: 50_000, balanceSeenMinor: 125_000 });
    await env.sleep('7 days'); // the date and its grace have passed
    const events = await h.db.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.caseId, (await caseRow(handle.workflowId)).id));
    expect(events.map((e) => e.type)).toContain('promise.kept');
    expect(events.map((e) => e.type)).not.toContain('promise.broken');
    await replayAndRecord(handle, 'promise-counts-money-since-seen-v1');
  });

  it('resumes one step firmer when a promise is broken', async () => {
    const { handle } = await register(0, { email: 'broken@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const promisedDate = isoDate(2, new Date(await env.currentTimeMs()));
    await handle.signal(promiseToPaySignal, { by: 'collector', promisedDate, amountMinor: 125_000 });
    await env.sleep('7 days'); // date + 3 days' grace has passed
    // The next step (day 7's letter) went out as soon as the promise broke, not 7 days later.
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:sent', 'reminder_letter:letter:queued']);
    const events = await h.db.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.caseId, (await caseRow(handle.workflowId)).id));
    expect(events.map((e) => e.type)).toContain('promise.broken');
  });

  it('applies an upstream credit note once, and closes as cancelled when the invoice is cancelled upstream', async () => {
    const { payload, handle } = await register(0);
    await handle.signal(invoiceAdjustedSignal, { adjustmentId: 'CN-1', by: 'erp-sync', kind: 'credited', creditMinor: 25_000, reason: 'two items returned' });
    await handle.signal(invoiceAdjustedSignal, { adjustmentId: 'CN-1', by: 'erp-sync', kind: 'credited', creditMinor: 25_000, reason: 'two items returned' });
    await env.sleep('1 hour');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(100_000); // the repeat counted once
    await handle.signal(invoiceAdjustedSignal, { adjustmentId: 'CANCEL-1', by: 'erp-sync', kind: 'cancelled', reason: 'order withdrawn' });
    expect(await handle.result()).toMatchObject({ outcome: 'cancelled' });
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice?.status).toBe('cancelled');
  });

  it('closes as paid, not cancelled, when a credit note clears what payments left owing', async () => {
    const { payload, handle } = await register(0);
    expect((await pay(payload.externalId, 'most-of-it', 100_000)).statusCode).toBe(201);
    await env.sleep('1 hour');
    await handle.signal(invoiceAdjustedSignal, { adjustmentId: 'CN-rest', by: 'erp-sync', kind: 'credited', creditMinor: 25_000, reason: 'early payment discount' });
    expect(await handle.result()).toMatchObject({ outcome: 'paid', amountOutstandingMinor: 0 });
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice?.status).toBe('paid');
    await replayAndRecord(handle, 'credit-after-payment-closes-paid-v1');
  });

  it('continues as new through a whole escalation without losing state, payments or history', async () => {
    // The default ladder, but a fresh run every 40 events: the state is handed over many times.
    const shortHistory = policySchema.parse({ ...defaultPolicy, name: 'short-history', continueAsNewAfterEvents: 40 });
    await h.db.db.insert(collectionPolicies).values({ name: 'short-history', version: 1, definition: shortHistory, createdBy: 'test' });
    const now = new Date(await env.currentTimeMs());
    const payload = { ...invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now) }), policy: 'short-history' };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    const firstRun = (await handle.describe()).runId;

    for (const [day, reference] of [[4, 'p1'], [20, 'p2'], [40, 'p3']] as const) {
      await env.sleep(`${day === 4 ? 4 : day === 20 ? 16 : 20} days`);
      await pay(payload.externalId, reference, 10_000);
    }
    await env.sleep('22 days'); // day 62: the agency referral waits for approval
    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ stage: 'AwaitingApproval', amountOutstandingMinor: 95_000 });
    expect((await handle.describe()).runId).not.toBe(firstRun);
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: status.pendingApproval!.approvalId, decision: 'approve', reason: 'no reply', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    // The handover notice waits for the debtor's contact window (after a weekend, days away),
    // and goes out before the money below (a notice that found the invoice paid would not be sent).
    const noticeKey = `${handle.workflowId}:${status.pendingApproval!.stepId}-notice:email`;
    const noticeSent = () => h.sendgrid.messages.some((m) => m.body.custom_args?.idempotencyKey === noticeKey);
    for (let i = 0; i < 7 * 96 && !noticeSent(); i++) await env.sleep('15 minutes');
    // A payment already counted in an earlier run is still counted once.
    await pay(payload.externalId, 'p1', 10_000);
    await pay(payload.externalId, 'rest', 95_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 4, overpaidMinor: 0 });
    const c = await caseRow(handle.workflowId);
    expect(await contacts(handle.workflowId)).toEqual([
      'courtesy_reminder:email:sent',
      'reminder_letter:letter:queued',
      'firm_reminder:email:sent',
      'final_notice:email:sent',
      'final_notice:letter:queued',
      'approval_request:email:sent',
      'agency_referral_handover:email:sent',
      'agency_referral:email:sent',
    ]);
    expect(c).toMatchObject({ stage: 'Closed', outcome: 'paid' });
  });

  it('follows a payment plan: a reminder before each instalment, closed when all are paid', async () => {
    const { payload, handle } = await register(0, { email: 'plan@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const today = new Date(await env.currentTimeMs());
    const instalments = [
      { dueDate: isoDate(10, today), amountMinor: 62_500 },
      { dueDate: isoDate(40, today), amountMinor: 62_500 },
    ];
    await handle.signal(paymentPlanSignal, { by: 'collector', instalments });
    await env.sleep('10 days'); // past the first reminder (3 days before, moved into business hours)
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'PaymentPlan' });
    const reminders = () => emailsTo('plan@muster.example', handle.workflowId).filter((m) => m.body.custom_args?.idempotencyKey?.includes(':plan-'));
    expect(reminders()).toHaveLength(1);
    expect(reminders()[0]?.body.content.find((p) => p.type === 'text/plain')?.value).toContain('625,00');
    await pay(payload.externalId, 'instalment-1', 62_500);
    await env.sleep('31 days'); // just before the second instalment: its reminder went out, no ladder step
    expect(reminders()).toHaveLength(2);
    expect(await contacts(handle.workflowId)).not.toContain('reminder_letter:letter:queued');
    await pay(payload.externalId, 'instalment-2', 62_500);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 2 });
  });

  it('returns the case to the ladder where it left off when an instalment is missed', async () => {
    const { handle } = await register(0, { email: 'missed@muster.example' });
    await env.sleep('4 days'); // past day 1, even when it fell on a weekend
    const today = new Date(await env.currentTimeMs());
    await handle.signal(paymentPlanSignal, { by: 'collector', instalments: [{ dueDate: isoDate(5, today), amountMinor: 62_500 }, { dueDate: isoDate(35, today), amountMinor: 62_500 }] });
    await env.sleep('10 days'); // due + 3 days' grace passed, nothing paid
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'Scheduled' });
    const events = await h.db.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.caseId, (await caseRow(handle.workflowId)).id));
    expect(events.map((e) => e.type)).toContain('plan.broken');
    // Day 7's letter, held while the plan ran, follows.
    await env.sleep('4 days');
    expect(await contacts(handle.workflowId)).toContain('reminder_letter:letter:queued');
  });

  it('settles for a reduced lump sum once an approver accepts the offer and the money arrives', async () => {
    const { payload, handle } = await register(0, { email: 'settle@muster.example' });
    await env.sleep('4 days');
    const payBy = isoDate(10, new Date(await env.currentTimeMs()));
    await handle.signal(proposeSettlementSignal, { by: 'Carl', amountMinor: 100_000, payBy, waiveFees: true });
    await env.sleep('1 hour');
    const { pendingApproval } = await handle.query(caseStatusQuery);
    expect(pendingApproval).toMatchObject({ kind: 'settlement', amountMinor: 100_000, costMinor: 25_000, requestedBy: 'Carl' });

    // Carl may not approve his own offer, even with an approver key.
    const self = handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: pendingApproval!.approvalId, decision: 'approve', reason: 'mine', decidedBy: { name: 'Carl', role: 'approver' } }],
    });
    await expect(self).rejects.toThrow();
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: pendingApproval!.approvalId, decision: 'approve', reason: 'keeps the customer', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    await env.sleep('1 hour');
    expect(await caseRow(handle.workflowId)).toMatchObject({ stage: 'SettlementAgreed' });
    await pay(payload.externalId, 'lump-sum', 100_000);
    expect(await handle.result()).toMatchObject({ outcome: 'settled', amountOutstandingMinor: 25_000 });
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(invoice?.status).toBe('settled');
  });

  it('counts toward a settlement the money the debtor paid after the offer, before an approver accepted it', async () => {
    const { payload, handle } = await register(0, { email: 'settle-early@muster.example' });
    await env.sleep('4 days');
    const payBy = isoDate(10, new Date(await env.currentTimeMs()));
    await handle.signal(proposeSettlementSignal, { by: 'Carl', amountMinor: 100_000, payBy, waiveFees: true });
    await env.sleep('1 hour');
    const { pendingApproval } = await handle.query(caseStatusQuery);
    expect(pendingApproval).toMatchObject({ kind: 'settlement', amountMinor: 100_000 });
    // The debtor pays the agreed sum at once; the approver decides the next day.
    expect((await pay(payload.externalId, 'lump-sum-early', 100_000)).statusCode).toBe(201);
    await env.sleep('1 day');
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: pendingApproval!.approvalId, decision: 'approve', reason: 'keeps the customer', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    expect(await handle.result()).toMatchObject({ outcome: 'settled', amountOutstandingMinor: 25_000 });
    await replayAndRecord(handle, 'settlement-counts-money-since-offer-v1');
  });

  it('handles messages that arrive together: a pause, a dispute opened and resolved, and a resume, none lost', async () => {
    const { handle } = await register(0, { email: 'burst@muster.example' });
    await env.sleep('4 days');
    await handle.signal(pauseSignal, { by: 'ops', reason: 'checking' });
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'wrong quantity' });
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'customer_favour', note: 'credit CN-9', creditMinor: 25_000 });
    await handle.signal(resumeSignal, { by: 'ops', reason: 'done' });
    await env.sleep('1 hour');
    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ stage: 'Scheduled', amountOutstandingMinor: 100_000, pausedReason: null, dispute: null });
    const [row] = await h.db.db.select().from(disputes).where(eq(disputes.caseId, (await caseRow(handle.workflowId)).id));
    expect(row).toMatchObject({ resolution: 'customer_favour', creditMinor: 25_000 });
  });

  it('stops retrying an e-mail the moment the invoice is paid: nothing goes out after the payment', async () => {
    const { payload, handle } = await register(0, { email: 'retrying@muster.example' });
    h.sendgrid.failNext(1000, 503, {}, undefined, 'retrying@muster.example');
    await env.sleep('4 days'); // day 1's e-mail is being retried
    expect(h.sendgrid.requests.length).toBeGreaterThan(0);
    await pay(payload.externalId, 'while-retrying', 125_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
    h.sendgrid.reset();
    await env.sleep('2 days');
    expect(emailsTo('retrying@muster.example')).toEqual([]);
    expect(await contacts(handle.workflowId)).toEqual(['courtesy_reminder:email:queued']);
  });

  /**
   * A bank webhook taken while Temporal was away: stored, answered 200, and waiting for the
   * payment dispatcher's next attempt, held back until `release()`, which waits until it is applied.
   */
  async function storeUnappliedPayment(externalId: string, amountMinor: number) {
    const eventId = `evt-in-flight-${externalId}`;
    const [event] = await h.db.db
      .insert(webhookEvents)
      .values({
        source: 'bank',
        eventId,
        type: 'payment.succeeded',
        invoiceExternalId: externalId,
        moneyId: eventId,
        amountMinor,
        currency: 'EUR',
        payload: {},
        nextAttemptAt: new Date(Date.now() + 24 * 3_600_000),
      })
      .returning();
    const byId = eq(webhookEvents.id, event!.id);
    return {
      async release() {
        await h.db.db.update(webhookEvents).set({ nextAttemptAt: new Date(Date.now() - 1000) }).where(byId);
        await until('the payment applied', async () => (await h.db.db.select().from(webhookEvents).where(byId))[0]?.status === 'applied');
      },
    };
  }

  it('contacts nobody while a payment for the invoice is stored and not yet applied, and closes without a reminder once it is', async () => {
    const { payload, handle } = await register(0, { email: 'paid-in-flight@muster.example' });
    const payment = await storeUnappliedPayment(payload.externalId, 125_000);
    await env.sleep('4 days'); // day 1's e-mail came due and was held
    expect(emailsTo('paid-in-flight@muster.example')).toEqual([]);
    // Held through the step's retries: the case waits for operations, saying why.
    const held = await handle.query(caseStatusQuery);
    expect(held.stage).toBe('Blocked');
    expect(held.blockedReason).toContain('is stored and not yet applied');

    await payment.release();
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 1 });
    await env.sleep('2 days');
    expect(emailsTo('paid-in-flight@muster.example')).toEqual([]);
    expect(await contacts(handle.workflowId)).toEqual([]);
  });

  /**
   * A correction the API stored while Temporal was away: recorded (the invoice credited or
   * cancelled) and waiting for the adjustment dispatcher's next attempt, held back until
   * `release()`, which waits until it is forwarded.
   */
  async function storeUnforwardedAdjustment(externalId: string, adjustment: { kind: 'cancellation' } | { kind: 'credit_note'; amountMinor: number }) {
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, externalId));
    const [row] = await h.db.db
      .insert(invoiceAdjustments)
      .values({
        invoiceId: invoice!.id,
        adjustmentId: `in-flight-${externalId}`,
        reason: 'issued in error',
        recordedBy: 'accounting',
        ...(adjustment.kind === 'credit_note' ? { kind: 'credit_note', amountMinor: adjustment.amountMinor, currency: 'EUR' } : { kind: 'cancellation' }),
        attempts: 1,
        nextAttemptAt: new Date(Date.now() + 24 * 3_600_000),
      })
      .returning();
    await h.db.db
      .update(invoices)
      .set(adjustment.kind === 'cancellation' ? { status: 'cancelled' } : { amountCreditedMinor: adjustment.amountMinor })
      .where(eq(invoices.id, invoice!.id));
    const byId = eq(invoiceAdjustments.id, row!.id);
    return {
      async release() {
        await h.db.db.update(invoiceAdjustments).set({ nextAttemptAt: new Date(Date.now() - 1000) }).where(byId);
        await until('the correction forwarded', async () => (await h.db.db.select().from(invoiceAdjustments).where(byId))[0]?.forwardedAt);
      },
    };
  }

  it('contacts nobody about an invoice cancelled while Temporal was away, and closes as cancelled once the cancellation is forwarded', async () => {
    const address = 'cancelled-in-flight@muster.example';
    const { payload, handle } = await register(0, { email: address });
    const cancellation = await storeUnforwardedAdjustment(payload.externalId, { kind: 'cancellation' });
    await env.sleep('4 days'); // day 1's e-mail came due and was held
    expect(emailsTo(address)).toEqual([]);
    const held = await handle.query(caseStatusQuery);
    expect(held.stage).toBe('Blocked');
    expect(held.blockedReason).toContain('is cancelled, and its case has not heard of it yet');

    await cancellation.release();
    expect(await handle.result()).toMatchObject({ outcome: 'cancelled' });
    await env.sleep('2 days');
    expect(emailsTo(address)).toEqual([]);
    expect(await contacts(handle.workflowId)).toEqual([]);
  });

  /**
   * A dispute or a request to cease contact a collector sent while Temporal was away: stored and
   * waiting for the command dispatcher's next attempt, held back until `release()`, which waits
   * until it is delivered.
   */
  async function storeUndeliveredCommand(externalId: string, name: 'dispute' | 'cease-communication') {
    const [row] = await h.db.db
      .select({ caseId: collectionCases.id, invoiceId: collectionCases.invoiceId })
      .from(collectionCases)
      .where(eq(collectionCases.workflowId, collectionWorkflowId(externalId)));
    const [command] = await h.db.db
      .insert(commandOutbox)
      .values({
        ...row!,
        name,
        messageId: `${name}:in-flight-${externalId}`,
        body: { reason: 'never ordered this' },
        requestedBy: 'collector',
        attempts: 1,
        nextAttemptAt: new Date(Date.now() + 24 * 3_600_000),
      })
      .returning();
    const byId = eq(commandOutbox.id, command!.id);
    return {
      async release() {
        await h.db.db.update(commandOutbox).set({ nextAttemptAt: new Date(Date.now() - 1000) }).where(byId);
        await until(`the ${name} delivered`, async () => (await h.db.db.select().from(commandOutbox).where(byId))[0]?.outcome);
      },
    };
  }

  it.each(['dispute', 'cease-communication'] as const)('contacts nobody while a %s is stored and not yet delivered, and goes on, not left blocked, once it arrives', async (name) => {
    const address = `${name}-in-flight@muster.example`;
    const { payload, handle } = await register(0, { email: address });
    await until('the case row', async () => (await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId)))[0]);
    const command = await storeUndeliveredCommand(payload.externalId, name);
    await env.sleep('4 days'); // day 1's e-mail came due and was held
    expect(emailsTo(address)).toEqual([]);
    const held = await handle.query(caseStatusQuery);
    expect(held.stage).toBe('Blocked');
    expect(held.blockedReason).toContain(`${name} command`);

    await command.release();
    // No one resumed it: the command's arrival ended the held step.
    const after = await until('the case unblocked', async () => {
      const status = await handle.query(caseStatusQuery);
      return status.stage !== 'Blocked' && status;
    });
    expect(after.blockedReason).toBeNull();
    if (name === 'dispute') expect(after).toMatchObject({ stage: 'Disputed', dispute: { reason: 'never ordered this' } });
    else expect(after.communicationCeased).toBe(true);
    await env.sleep('2 days');
    expect(emailsTo(address)).toEqual([]);
    expect(await contacts(handle.workflowId)).toEqual([]);
    const timeline = (await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('viewer') })).json().timeline as { type: string }[];
    expect(timeline.map((e) => e.type)).not.toContain('command.resume');
    // The new path (patched: a case blocked before it waits for a person as it did) replays.
    if (name === 'dispute') await replayAndRecord(handle, 'blocked-by-dispute-in-flight-v1');
  });

  it('contacts nobody in the moment between a dispute reaching the case and the case stopping the step', async () => {
    const address = 'dispute-arriving@muster.example';
    const { payload, handle } = await register(0, { email: address });
    const row = await until('the case row', async () => (await h.db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, handle.workflowId)))[0]);
    // The API has delivered the dispute (after the step began), and the case has not acted on it
    // yet: an attempt of the e-mail that starts now must not go out.
    const deliveredAt = new Date((await env.currentTimeMs()) + 10 * 86_400_000);
    const messageId = 'dispute:arriving';
    await h.db.db.insert(commandOutbox).values({
      caseId: row.id,
      invoiceId: row.invoiceId,
      name: 'dispute',
      messageId,
      body: { reason: 'never ordered this' },
      requestedBy: 'collector',
      outcome: 'applied',
      deliveredAt,
    });
    await env.sleep('4 days'); // day 1's e-mail came due and was held
    expect(emailsTo(address)).toEqual([]);
    expect((await handle.query(caseStatusQuery)).blockedReason).toContain('reached the case after this step began');
    // The case acts on it: the step stops, the case is disputed, and still no e-mail.
    await handle.signal(openDisputeSignal, { messageId, by: 'collector', reason: 'never ordered this' });
    await until('the case disputed', async () => (await handle.query(caseStatusQuery)).stage === 'Disputed');
    await env.sleep('2 days');
    expect(emailsTo(address)).toEqual([]);
    expect(payload.customer.email).toBe(address);
  });

  it('states no credited amount: a contact waits for a credit note the case has not had yet', async () => {
    const address = 'credited-in-flight@muster.example';
    const { payload, handle } = await register(0, { email: address });
    const credit = await storeUnforwardedAdjustment(payload.externalId, { kind: 'credit_note', amountMinor: 25_000 });
    const nextAction = await until('the first step scheduled', async () => (await handle.query(caseStatusQuery)).nextAction ?? undefined);
    await env.sleep(Date.parse(nextAction.at) - (await env.currentTimeMs()) + 60_000); // day 1's e-mail is due, and held
    expect(emailsTo(address)).toEqual([]);

    await credit.release();
    await env.sleep('1 minute'); // the step's next retry
    const [email, ...more] = emailsTo(address);
    expect(more).toEqual([]);
    const text = email?.body.content.find((p) => p.type === 'text/plain')?.value;
    expect(text).toContain('1.000,00');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(100_000);
  });

  it('tries a step blocked by a credit note in flight again when it is forwarded, stating what is left', async () => {
    const address = 'credit-blocked@muster.example';
    const { payload, handle } = await register(0, { email: address });
    const credit = await storeUnforwardedAdjustment(payload.externalId, { kind: 'credit_note', amountMinor: 25_000 });
    await env.sleep('4 days'); // held through the step's retries
    expect((await handle.query(caseStatusQuery)).stage).toBe('Blocked');

    await credit.release();
    // No operator resumes it: the credit note does, and the e-mail waits for the debtor's window.
    for (let i = 0; i < 7 * 96 && emailsTo(address).length === 0; i++) await env.sleep('15 minutes');
    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ amountOutstandingMinor: 100_000, blockedReason: null });
    const [email, ...more] = emailsTo(address);
    expect(more).toEqual([]);
    expect(email?.body.content.find((p) => p.type === 'text/plain')?.value).toContain('1.000,00');
    await replayAndRecord(handle, 'blocked-by-credit-in-flight-v1');
  });

  it('tries a step blocked by a payment in flight again when a part payment arrives, stating what is left', async () => {
    const { payload, handle } = await register(0, { email: 'part-in-flight@muster.example' });
    const payment = await storeUnappliedPayment(payload.externalId, 100_000);
    await env.sleep('4 days');
    expect((await handle.query(caseStatusQuery)).stage).toBe('Blocked');

    await payment.release();
    // No operator resumes it: the payment does, and the e-mail waits for the debtor's contact
    // window (after a weekend, days away).
    for (let i = 0; i < 7 * 96 && emailsTo('part-in-flight@muster.example').length === 0; i++) await env.sleep('15 minutes');
    const status = await handle.query(caseStatusQuery);
    expect(status).toMatchObject({ amountOutstandingMinor: 25_000, blockedReason: null });
    expect(status.stage).not.toBe('Blocked');
    const [email, ...more] = emailsTo('part-in-flight@muster.example');
    expect(more).toEqual([]);
    const text = email?.body.content.find((p) => p.type === 'text/plain')?.value;
    expect(text).toContain('250,00');
    expect(text).not.toContain('1.250,00');
    await replayAndRecord(handle, 'blocked-by-payment-in-flight-v1');
  });

  it('sends no dispute verification to a debtor who asked not to be contacted while it waited for their business hours', async () => {
    const address = 'verify-then-cease@muster.example';
    const { handle } = await register(0, { email: address });
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'pallet arrived damaged' });
    await env.sleep('1 hour');
    await sleepToOutsideContactWindow();
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'business_favour', note: 'delivery photos show intact pallet' });
    await env.sleep('10 minutes');
    await handle.signal(ceaseCommunicationSignal, { by: 'collector', reason: 'debtor: write to our lawyer only' });
    await env.sleep('4 days');
    expect(emailsTo(address)).toEqual([]);
    const { history } = await handle.query(caseStatusQuery);
    expect(history).toContainEqual(expect.objectContaining({ kind: 'cancelled', detail: 'dispute-1-verification' }));
    await replayAndRecord(handle, 'contact-in-window-stopped-by-commands-v1');
  });

  it('hands a case over to the agency but sends the debtor no notice after they asked, while it waited for business hours, not to be contacted', async () => {
    const { handle } = await register(0, { email: 'handover-then-cease@muster.example' });
    await env.sleep('61 days');
    const pending = (await handle.query(caseStatusQuery)).pendingApproval!;
    expect(pending).toMatchObject({ kind: 'agency_referral' });
    await sleepToOutsideContactWindow();
    await handle.executeUpdate(decideApprovalUpdate, {
      args: [{ approvalId: pending.approvalId, decision: 'approve', reason: 'no reply to five contacts', decidedBy: { name: 'Anna', role: 'approver' } }],
    });
    await env.sleep('10 minutes');
    await handle.signal(ceaseCommunicationSignal, { by: 'collector', reason: 'debtor: write to our lawyer only' });
    await env.sleep('4 days');
    const noticeKey = `${handle.workflowId}:${pending.stepId}-notice:email`;
    expect(h.sendgrid.messages.filter((m) => m.body.custom_args?.idempotencyKey === noticeKey)).toEqual([]);
    const c = await caseRow(handle.workflowId);
    expect(await h.db.db.select().from(handovers).where(eq(handovers.caseId, c.id))).toHaveLength(1);
    const { history } = await handle.query(caseStatusQuery);
    expect(history).toContainEqual(expect.objectContaining({ kind: 'cancelled', detail: `${pending.stepId}-notice` }));
  });

  it('sends no dispute verification while a new dispute, opened as it waited for business hours, is open', async () => {
    const address = 'verify-then-dispute@muster.example';
    const { handle } = await register(0, { email: address });
    await handle.signal(openDisputeSignal, { messageId: 'd1', by: 'collector', reason: 'pallet arrived damaged' });
    await env.sleep('1 hour');
    await sleepToOutsideContactWindow();
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'business_favour', note: 'delivery photos show intact pallet' });
    await env.sleep('10 minutes');
    await handle.signal(openDisputeSignal, { messageId: 'd2', by: 'collector', reason: 'the invoice names the wrong VAT number' });
    await env.sleep('4 days');
    expect(emailsTo(address)).toEqual([]);
    expect(await handle.query(caseStatusQuery)).toMatchObject({ stage: 'Disputed', dispute: { reason: 'the invoice names the wrong VAT number' } });
  });

  it('cancels a dispute verification being retried when the invoice is paid in full meanwhile', async () => {
    const address = 'verify-then-paid@muster.example';
    const { payload, handle } = await register(0, { email: address });
    await handle.signal(openDisputeSignal, { by: 'collector', reason: 'pallet arrived damaged' });
    await env.sleep('1 hour');
    h.sendgrid.outage(503);
    await handle.signal(resolveDisputeSignal, { by: 'ops', resolution: 'business_favour', note: 'delivery photos show intact pallet' });
    // The verification waits for the debtor's contact window (after a weekend, it may be days
    // away), then SendGrid refuses it.
    for (let i = 0; i < 7 * 96 && !h.sendgrid.requests.some((r) => r.to === address); i++) await env.sleep('15 minutes');
    expect(h.sendgrid.requests.some((r) => r.to === address)).toBe(true);
    expect((await pay(payload.externalId, 'while-verifying', 125_000)).statusCode).toBe(201);
    expect(await handle.result()).toMatchObject({ outcome: 'paid' });
    h.sendgrid.outage(null);
    await env.sleep('1 day');
    expect(emailsTo(address)).toEqual([]);
    const { history } = await handle.query(caseStatusQuery);
    expect(history).toContainEqual(expect.objectContaining({ kind: 'cancelled', detail: 'dispute-1-verification' }));
    expect(history.map((a) => a.kind)).not.toContain('contact_failed');
    await replayAndRecord(handle, 'contact-cancelled-on-payment-v1');
  });

  it('states the balance after a part payment that arrived while the e-mail was being retried', async () => {
    const address = 'part-paid-while-retrying@muster.example';
    const { payload, handle } = await register(0, { email: address });
    const nextAction = await until('the first step scheduled', async () => (await handle.query(caseStatusQuery)).nextAction ?? undefined);
    h.sendgrid.outage(503);
    await env.sleep(Date.parse(nextAction.at) - (await env.currentTimeMs()) + 60_000); // day 1's e-mail is being retried
    expect(h.sendgrid.requests.some((r) => r.to === address)).toBe(true);
    expect((await pay(payload.externalId, 'part-while-retrying', 100_000)).statusCode).toBe(201);
    h.sendgrid.outage(null);
    await env.sleep('2 hours');
    const [email, ...more] = emailsTo(address);
    expect(more).toEqual([]);
    const text = email?.body.content.find((p) => p.type === 'text/plain')?.value;
    expect(text).toContain('250,00');
    expect(text).not.toContain('1.250,00');
    expect((await handle.query(caseStatusQuery)).amountOutstandingMinor).toBe(25_000);
    // The case's record of the e-mail is what was sent.
    const [row] = await h.db.db.select().from(communications).where(eq(communications.caseId, (await caseRow(handle.workflowId)).id));
    expect(row).toMatchObject({ status: 'sent', body: text });
  });

  it('changes nothing when a message is delivered again with the same id, even after it was handled', async () => {
    const { handle } = await register(0);
    const open = { messageId: 'ticket-41:open', by: 'collector', reason: 'invoice sent twice' };
    const resolve = { messageId: 'ticket-41:resolve', by: 'ops', resolution: 'business_favour' as const, note: 'only one delivery' };
    await handle.signal(openDisputeSignal, open);
    await env.sleep('1 hour');
    await handle.signal(resolveDisputeSignal, resolve);
    await env.sleep('3 days');
    await handle.signal(openDisputeSignal, open); // redelivered after the dispute was handled
    await handle.signal(resolveDisputeSignal, resolve);
    await env.sleep('1 hour');
    const rows = await h.db.db.select().from(disputes).where(eq(disputes.caseId, (await caseRow(handle.workflowId)).id));
    expect(rows).toHaveLength(1);
    expect((await handle.query(caseStatusQuery)).dispute).toBeNull();
  });
});
