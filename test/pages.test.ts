// The pages in a real headless Chromium, against the real app on a real port, a real database
// and the real Temporal dev server: approvals created by real workflows, decided by clicking.
// Each run leaves a screenshot of every page in test-results/screenshots/.
import { eq } from 'drizzle-orm';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvals, callTasks, collectionCases, collectionPolicies, commandOutbox, invoices } from '../db/schema';
import { policySchema } from '../domain/policy';
import { overdueSweep } from '../workflows/overdue-sweep';
import { launchBrowser, screenshot } from './support/browser';
import { afternoonZone, anyDay, emailFirstPolicy, invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';
import { until } from './support/until';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  h = await startDevServerHarness();
  baseUrl = await h.app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
  await h.db.db.insert(collectionPolicies).values([
    {
      name: 'agency-first',
      version: 1,
      createdBy: 'test',
      definition: policySchema.parse({
        name: 'agency-first',
        version: 1,
        contactWindow: anyDay,
        steps: [{ id: 'agency', offsetDays: 1, action: 'agency_referral', template: 'agency_referral', tone: 'final', approval: { deadlineDays: 5 } }],
      }),
    },
    emailFirstPolicy('email-first'),
    {
      name: 'call-first',
      version: 1,
      createdBy: 'test',
      definition: policySchema.parse({
        name: 'call-first',
        version: 1,
        contactWindow: anyDay,
        steps: [{ id: 'call', offsetDays: 1, action: 'call_task', template: 'first_call', tone: 'firm' }],
      }),
    },
  ]);
});

afterAll(async () => {
  await browser?.close();
  await h?.stop();
});

async function signIn(role: 'approver' | 'collector' | 'admin', next = '/ui/approvals'): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}${next}`);
  // Not signed in: the sign-in page, which remembers where we were going.
  await page.getByLabel('Your API key').fill(h.keys[role]);
  await screenshot(page, 'sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${baseUrl}${next}`);
  return page;
}

/** An invoice whose case asks for agency referral at once (due 5 days ago, the step is day 1). */
async function caseAwaitingApproval(name: string) {
  const payload = invoicePayload({ dueDate: isoDate(-5), policy: 'agency-first', amountTotalMinor: 250_000 });
  payload.customer = { ...payload.customer, name, email: `${payload.externalId.toLowerCase()}@debtor.example`, timeZone: afternoonZone() };
  const response = await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
  expect(response.statusCode, response.body).toBe(201);
  const approval = await until(`the approval request for ${name}`, async () => {
    const [row] = await h.db.db
      .select({ approval: approvals })
      .from(approvals)
      .innerJoin(collectionCases, eq(collectionCases.id, approvals.caseId))
      .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
      .where(eq(invoices.externalId, payload.externalId));
    return row?.approval;
  });
  return { externalId: payload.externalId, number: payload.number, approvalId: approval.id };
}

async function caseStage(externalId: string) {
  const [row] = await h.db.db
    .select({ stage: collectionCases.stage })
    .from(collectionCases)
    .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
    .where(eq(invoices.externalId, externalId));
  return row?.stage;
}

describe('approver inbox', () => {
  it('signs in, approves an agency referral with a reason, and sees the case handed over', async () => {
    const target = await caseAwaitingApproval('Approve Me GmbH');
    const page = await signIn('approver');
    const item = page.locator(`[data-approval-id="${target.approvalId}"]`);
    await expect.poll(() => item.count()).toBe(1);
    // The facts to decide on.
    const facts = await item.innerText();
    expect(facts).toContain('Approve Me GmbH');
    expect(facts).toContain('€2,500.00');
    expect(facts).toMatch(/Days overdue\s+5/);
    expect(facts).toContain('Agency commission €625.00 against €2,500.00 (25 %)');
    // The e-mail to the approvers is not a contact with the debtor.
    expect(facts).toMatch(/Tried so far\s+No contact yet/);
    await screenshot(page, 'approvals-inbox');

    await item.getByLabel('Reason for your decision').fill('No answer to any contact; above court costs');
    await item.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => page.getByRole('status').innerText()).toContain('Approved: Agency referral for Approve Me GmbH');
    expect(await page.locator(`[data-approval-id="${target.approvalId}"]`).count()).toBe(0);
    await screenshot(page, 'approvals-after-approve');

    await until('the case to be handed over', async () => (await caseStage(target.externalId)) === 'HandedOver');
    await page.goto(`${baseUrl}/ui/cases/${target.externalId}`);
    const caseText = await page.locator('main').innerText();
    expect(caseText).toContain('HandedOver');
    // Who did what: the approver's decision is on the timeline under their name.
    expect(caseText).toMatch(/test-approver\s+approval\.approved/);
    expect(await page.getByRole('link', { name: 'Open the workflow in the Temporal UI' }).getAttribute('href')).toContain(
      `/workflows/collection-${target.externalId}`,
    );
    await screenshot(page, 'case-page');
    await page.close();
  });

  it('rejects with a reason: the request leaves the list and the case stays in house', async () => {
    const target = await caseAwaitingApproval('Reject Me KG');
    const page = await signIn('approver');
    const item = page.locator(`[data-approval-id="${target.approvalId}"]`);
    await item.getByLabel('Reason for your decision').fill('Customer called; give them two more weeks');
    await item.getByRole('button', { name: 'Reject' }).click();
    await expect.poll(() => page.getByRole('status').innerText()).toContain('Rejected: Agency referral for Reject Me KG');
    expect(await page.locator(`[data-approval-id="${target.approvalId}"]`).count()).toBe(0);
    await screenshot(page, 'approvals-after-reject');
    const [row] = await h.db.db.select().from(approvals).where(eq(approvals.id, target.approvalId));
    expect(row).toMatchObject({ status: 'rejected', decidedBy: 'test-approver', decisionReason: 'Customer called; give them two more weeks' });
    await until('the case to leave AwaitingApproval', async () => (await caseStage(target.externalId)) !== 'AwaitingApproval');
    expect(await caseStage(target.externalId)).not.toBe('HandedOver');
    await page.close();
  });

  it('says why when the decision lost a race, and requires a reason', async () => {
    const target = await caseAwaitingApproval('Race Condition AG');
    const page = await signIn('approver');
    const item = page.locator(`[data-approval-id="${target.approvalId}"]`);
    // An empty reason: the browser itself refuses (required), nothing is sent.
    const posts: string[] = [];
    page.on('request', (r) => r.method() === 'POST' && posts.push(r.url()));
    await item.getByRole('button', { name: 'Approve' }).click();
    expect(await item.getByLabel('Reason for your decision').evaluate((el) => (el as unknown as { validity: { valueMissing: boolean } }).validity.valueMissing)).toBe(true);
    expect(posts).toEqual([]);
    expect(await page.getByRole('alert').count()).toBe(0);

    // Meanwhile an admin decides it through the API.
    const api = await h.app.inject({
      method: 'POST',
      url: `/approvals/${target.approvalId}/decision`,
      headers: h.auth('admin'),
      payload: { decision: 'reject', reason: 'settled by phone' },
    });
    expect(api.statusCode, api.body).toBe(200);

    await item.getByLabel('Reason for your decision').fill('Go ahead');
    await item.getByRole('button', { name: 'Approve' }).click();
    const alert = await page.getByRole('alert').innerText();
    expect(alert).toContain('Your decision was not recorded');
    expect(await page.locator(`[data-approval-id="${target.approvalId}"]`).count()).toBe(0);
    await screenshot(page, 'approvals-lost-race');
    await page.close();
  });

  it('keeps collectors out of the inbox and signed-out users on the sign-in page', async () => {
    const anonymous = await browser.newPage();
    const response = await anonymous.goto(`${baseUrl}/ui/operations`);
    expect(anonymous.url()).toBe(`${baseUrl}/ui/login?next=%2Fui%2Foperations`);
    expect(response?.status()).toBe(200);
    await anonymous.getByLabel('Your API key').fill('arr_not-a-key');
    await anonymous.getByRole('button', { name: 'Sign in' }).click();
    expect(await anonymous.getByRole('alert').innerText()).toContain('unknown or revoked');
    await anonymous.close();

    // A sign-in posted from another site (without the form's cookie) is refused.
    const forged = await fetch(`${baseUrl}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: h.keys.approver, next: '/ui/approvals', login: 'guessed' }).toString(),
      redirect: 'manual',
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.getSetCookie().some((c) => c.startsWith('arrears_session='))).toBe(false);

    const collector = await signIn('collector', '/ui/operations');
    const forbidden = await collector.goto(`${baseUrl}/ui/approvals`);
    expect(forbidden?.status()).toBe(403);
    await collector.close();
  });
});

describe('operations view', () => {
  it('lists an approval past its deadline and a case paused too long, through the API and the page', async () => {
    const late = await caseAwaitingApproval('Slow Approver GmbH');
    // The API filters pending requests by kind, amount and age.
    const pendingIds = async (query: string) =>
      (await h.app.inject({ url: `/approvals?${query}`, headers: h.auth('approver') })).json().approvals.map((a: { id: string }) => a.id);
    expect(await pendingIds('kind=agency_referral&minAmountMinor=250000&minAgeDays=0')).toContain(late.approvalId);
    expect(await pendingIds('minAgeDays=1')).not.toContain(late.approvalId);
    expect(await pendingIds('kind=legal_action')).not.toContain(late.approvalId);
    expect(await pendingIds('minAmountMinor=250001')).not.toContain(late.approvalId);
    // Five days pass without a decision.
    await h.db.db.update(approvals).set({ deadlineAt: new Date(Date.now() - 3_600_000) }).where(eq(approvals.id, late.approvalId));

    const paused = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    paused.customer = { ...paused.customer, timeZone: afternoonZone() };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: paused })).statusCode).toBe(201);
    // Let its only step (the day-1 e-mail) finish first, so no late state write follows the pause.
    await until('the ladder to finish', async () => (await caseStage(paused.externalId)) === 'AwaitingPayment');
    const pause = await h.app.inject({ method: 'POST', url: `/invoices/${paused.externalId}/pause`, headers: h.auth('collector'), payload: { reason: 'customer in administration' } });
    expect(pause.statusCode).toBe(202);
    await until('the case to be paused', async () => (await caseStage(paused.externalId)) === 'Paused');
    // Three weeks pass.
    const [pausedInvoice] = await h.db.db.select({ id: invoices.id }).from(invoices).where(eq(invoices.externalId, paused.externalId));
    await h.db.db.update(collectionCases).set({ updatedAt: new Date(Date.now() - 21 * 86_400_000) }).where(eq(collectionCases.invoiceId, pausedInvoice!.id));

    const stuck = (await h.app.inject({ method: 'GET', url: '/operations/stuck', headers: h.auth('viewer') })).json().cases;
    expect(stuck).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'approval_overdue', invoiceExternalId: late.externalId, approvalId: late.approvalId, action: 'decide' }),
        expect.objectContaining({ kind: 'paused_too_long', invoiceExternalId: paused.externalId, action: 'resume' }),
      ]),
    );
    const recent = (await h.app.inject({ method: 'GET', url: '/operations/stuck?pausedForDays=30', headers: h.auth('viewer') })).json().cases;
    expect(recent.map((c: { invoiceExternalId: string }) => c.invoiceExternalId)).not.toContain(paused.externalId);

    const page = await signIn('admin', '/ui/operations');
    const pausedRow = page.locator(`tr[data-workflow-id="collection-${paused.externalId}"]`);
    expect(await pausedRow.innerText()).toContain('Paused too long');
    expect(await page.locator(`tr[data-workflow-id="collection-${late.externalId}"]`).getByRole('link', { name: 'Decide' }).count()).toBe(1);
    await screenshot(page, 'operations-overdue-and-paused');
    await pausedRow.getByLabel('Reason').fill('Administrator confirmed the claim');
    await pausedRow.getByRole('button', { name: 'Resume' }).click();
    expect(await page.getByRole('status').innerText()).toContain(`Sent to invoice ${paused.externalId}`);
    await until('the case to resume', async () => (await caseStage(paused.externalId)) !== 'Paused');
    await page.close();
  });

  it('lists a case whose e-mail keeps failing, and a blocked one that a click retries', async () => {
    const failing = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    failing.customer = { ...failing.customer, name: 'Flaky Mail Ltd', email: 'flaky@debtor.example', timeZone: afternoonZone() };
    h.sendgrid.failNext(1000, 500, {}, undefined, 'flaky@debtor.example');
    const blocked = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    blocked.customer = { ...blocked.customer, name: 'Bounced Address SA', email: 'bounced@debtor.example', timeZone: afternoonZone() };
    h.sendgrid.failNext(1, 400, {}, { errors: [{ message: 'Does not contain a valid address.', field: 'personalizations.0.to' }] }, 'bounced@debtor.example');
    for (const payload of [failing, blocked]) {
      expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    }

    const page = await signIn('collector', '/ui/operations');
    // The e-mail activity retries (5 s, 10 s, ...): it is listed once on its third attempt.
    const failingRow = page.locator(`tr[data-workflow-id="collection-${failing.externalId}"]`);
    await until(
      'the failing case in the list',
      async () => {
        await page.reload();
        return (await failingRow.count()) === 1;
      },
      45_000,
    );
    const failingText = await failingRow.innerText();
    expect(failingText).toContain('Activity failing');
    expect(failingText).toMatch(/deliverEmail failed \d+ times; last: .*500/);
    expect(await failingRow.getByRole('link', { name: 'Temporal UI' }).getAttribute('href')).toContain(`collection-${failing.externalId}`);

    const blockedRow = page.locator(`tr[data-workflow-id="collection-${blocked.externalId}"]`);
    expect(await blockedRow.innerText()).toContain('Blocked');
    await screenshot(page, 'operations-stuck');

    // The address is fixed upstream; the collector retries the step from the list.
    await blockedRow.getByLabel('Reason').fill('Address corrected in the CRM');
    await blockedRow.getByRole('button', { name: 'Retry the step' }).click();
    expect(await page.getByRole('status').innerText()).toContain(`Sent to invoice ${blocked.externalId}`);
    await until('the retried e-mail to go out', async () => h.sendgrid.messages.some((m) => m.body.personalizations[0]?.to[0]?.email === 'bounced@debtor.example'));
    await until('the case to leave Blocked', async () => (await caseStage(blocked.externalId)) !== 'Blocked');
    await screenshot(page, 'operations-after-retry');

    // The same list through the API.
    const api = await h.app.inject({ method: 'GET', url: '/operations/stuck', headers: h.auth('viewer') });
    expect(api.statusCode).toBe(200);
    expect(api.json().cases).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'activity_failing', invoiceExternalId: failing.externalId })]));
    h.sendgrid.reset();
    await page.close();
  }, 90_000);

  it('lists a call to make with what to say, and records its outcome with a click', async () => {
    const payload = invoicePayload({ dueDate: isoDate(-3), policy: 'call-first' });
    payload.customer = { ...payload.customer, name: 'Phone First GmbH', timeZone: afternoonZone() };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const page = await signIn('collector', '/ui/calls');
    const row = page.locator('tr', { hasText: payload.externalId });
    await until('the call on the list', async () => {
      await page.reload();
      return (await row.count()) === 1;
    });
    const text = await row.innerText();
    expect(text).toContain('Phone First GmbH');
    expect(text).toContain('+49 30 1234567');
    expect(text).toContain('1.250,00');
    await screenshot(page, 'calls');

    await row.getByLabel('Outcome').fill('Spoke to AP: payment run on Friday');
    await row.getByRole('button', { name: 'Record' }).click();
    expect(await page.getByRole('status').innerText()).toContain(payload.externalId);
    expect(await row.count()).toBe(0);
    const [task] = await h.db.db
      .select({ status: callTasks.status, outcome: callTasks.outcome, assignedTo: callTasks.assignedTo })
      .from(callTasks)
      .innerJoin(collectionCases, eq(collectionCases.id, callTasks.caseId))
      .where(eq(collectionCases.workflowId, `collection-${payload.externalId}`));
    expect(task).toMatchObject({ status: 'done', outcome: 'Spoke to AP: payment run on Friday' });
    await page.close();
  });

  it('restarts, paused, a case whose workflow Temporal lost, with a click', async () => {
    const lost = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    lost.customer = { ...lost.customer, name: 'Lost Workflow BV', timeZone: afternoonZone() };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload: lost })).statusCode).toBe(201);
    await until('the ladder to finish', async () => (await caseStage(lost.externalId)) === 'AwaitingPayment');
    const workflowId = `collection-${lost.externalId}`;
    await h.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId } });
    // Its next action comes due, and nothing takes it.
    await h.db.db.update(collectionCases).set({ nextActionAt: new Date(Date.now() - 60_000) }).where(eq(collectionCases.workflowId, workflowId));

    // The sweep's check marks it; its page says so and offers the restart.
    await h.client.workflow.execute(overdueSweep, { taskQueue: h.taskQueue, workflowId: `sweep-${lost.externalId}`, args: [{ checkCases: 10_000 }] });
    const casePage = await signIn('collector', `/ui/cases/${lost.externalId}`);
    expect(await casePage.getByRole('region', { name: 'Case' }).innerText()).toContain('Gone (lost)');
    expect(await casePage.getByRole('button', { name: 'Restart, paused' }).count()).toBe(1);
    await screenshot(casePage, 'case-workflow-gone');
    await casePage.close();

    const page = await signIn('collector', '/ui/operations');
    const row = page.locator(`tr[data-workflow-id="${workflowId}"]`);
    await until(
      'the lost case in the list',
      async () => {
        await page.reload();
        return (await row.count()) === 1 && (await row.innerText()).includes('Workflow missing');
      },
      20_000,
    );
    expect(await row.innerText()).toContain('no record of its workflow');
    await screenshot(page, 'operations-workflow-missing');
    await row.getByLabel('Reason').fill('Temporal lost it in the storage incident');
    await row.getByRole('button', { name: 'Restart, paused' }).click();
    expect(await page.getByRole('status').innerText()).toContain(`The case of invoice ${lost.externalId} runs again, paused`);
    await until('the case to be paused', async () => (await caseStage(lost.externalId)) === 'Paused');
    // Listed now as waiting for a resume, and its page says why it is paused and what to check.
    const waiting = page.locator(`tr[data-workflow-id="${workflowId}"]`);
    await until('the restarted case in the list', async () => {
      await page.reload();
      return (await waiting.count()) === 1 && (await waiting.innerText()).includes('Restarted paused');
    });
    expect(await waiting.getByRole('button', { name: 'Resume' }).count()).toBe(1);
    await page.close();
    const restartedPage = await signIn('collector', `/ui/cases/${lost.externalId}`);
    expect(await restartedPage.getByRole('region', { name: 'Case' }).innerText()).toMatch(/Paused\s+restarted after its workflow was lost: Temporal lost it in the storage incident.*since its restart: the disputes, promises and plans the old run knew of are on the timeline below/s);
    await restartedPage.close();
  });
});

describe('case page', () => {
  /** Keeps this app's command dispatcher (it polls) off the invoice's queued commands: Temporal is back here, and the page must see them waiting. */
  async function holdQueuedCommands(externalId: string) {
    const [invoice] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, externalId));
    await h.db.db.update(commandOutbox).set({ nextAttemptAt: new Date(Date.now() + 24 * 3_600_000) }).where(eq(commandOutbox.invoiceId, invoice!.id));
    return invoice!;
  }

  it('shows a command waiting to reach its case while Temporal is away, and on the timeline once delivered', async () => {
    const payload = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    payload.customer = { ...payload.customer, name: 'Queued Command GmbH', timeZone: afternoonZone() };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const pause = { method: 'POST' as const, url: `/invoices/${payload.externalId}/pause`, headers: { ...h.auth('collector'), 'idempotency-key': `page-pause-${payload.externalId}` }, payload: { reason: 'customer on holiday' } };
    const cutOff = await h.appWithoutTemporal();
    expect((await cutOff.inject(pause)).json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    await holdQueuedCommands(payload.externalId);

    const page = await signIn('collector', `/ui/cases/${payload.externalId}`);
    const waiting = page.getByRole('heading', { name: 'Waiting to reach the case' });
    expect(await waiting.count()).toBe(1);
    expect(await page.locator('ul', { has: page.getByText('pause by') }).innerText()).toMatch(/pause by \S+ at .+\(1 attempt; last: .*retried automatically/);
    await screenshot(page, 'case-command-queued');

    // Sent again with Temporal back: delivered, and on the timeline instead.
    expect((await h.app.inject(pause)).json()).toMatchObject({ delivery: 'applied' });
    await page.reload();
    expect(await waiting.count()).toBe(0);
    expect(await page.getByRole('cell', { name: 'command.pause' }).count()).toBe(1);
    await page.close();
  });

  it('withdraws, with a click, a queued command that has waited too long', async () => {
    const payload = invoicePayload({ dueDate: isoDate(-3), policy: 'email-first' });
    payload.customer = { ...payload.customer, name: 'Withdrawn Command SA', timeZone: afternoonZone() };
    expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload })).statusCode).toBe(201);
    const cutOff = await h.appWithoutTemporal();
    const dispute = await cutOff.inject({ method: 'POST', url: `/invoices/${payload.externalId}/dispute`, headers: h.auth('collector'), payload: { reason: 'sent to the wrong case' } });
    expect(dispute.json()).toMatchObject({ delivery: 'queued' });
    await cutOff.close();
    const invoice = await holdQueuedCommands(payload.externalId);
    await h.db.db.update(commandOutbox).set({ createdAt: new Date(Date.now() - 6 * 60_000) }).where(eq(commandOutbox.invoiceId, invoice.id));

    const page = await signIn('collector', '/ui/operations');
    const row = page.locator(`tr[data-workflow-id="collection-${payload.externalId}"]`, { hasText: 'Command unfinished' });
    expect(await row.innerText()).toContain('The dispute command sent by');
    await screenshot(page, 'operations-command-unfinished');
    await row.getByLabel('Reason').fill('the customer meant another invoice');
    await row.getByRole('button', { name: 'Withdraw the command' }).click();
    expect(await page.getByRole('status').innerText()).toContain('The dispute command was withdrawn');
    expect(await row.count()).toBe(0);
    const [stored] = await h.db.db.select().from(commandOutbox).where(eq(commandOutbox.invoiceId, invoice!.id));
    expect(stored).toMatchObject({ outcome: 'withdrawn', nextAttemptAt: null });
    await page.close();
  });
});
