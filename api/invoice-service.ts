import { isGrpcServiceError } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import { and, asc, eq, isNull, or } from 'drizzle-orm';
import { signalCollection, startCollection, type CaseStartDeps, type StoredCase } from '../cases/collection-start';
import { latestPolicy } from '../cases/policies';
import type { Database } from '../db/client';
import { auditEvents, collectionCases, collectionPolicies, commandOutbox, communications, customers, invoices } from '../db/schema';
import { collectionStartsAt, collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery, type CaseStatus } from '../workflows/messages';
import type { Caller } from './auth';
import { HttpProblem } from './problem';
import type { RegisterInvoice } from './schemas';

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

export type ServiceDeps = CaseStartDeps & {
  /** Where failures hidden from the caller (Temporal errors behind a 503) are logged. */
  log?: { error(obj: object, msg: string): void };
  temporalUiUrl: string;
  /**
   * The time registration compares a case's start time with: the wall clock in production,
   * the test server's clock in time-skipping tests (where workflow time runs ahead).
   */
  clock: () => Promise<Date>;
};

type InvoiceRow = typeof invoices.$inferSelect;
type CaseRow = typeof collectionCases.$inferSelect;

export function temporalUiLink(deps: ServiceDeps, workflowId: string): string {
  return `${deps.temporalUiUrl}/namespaces/${encodeURIComponent(deps.temporal.options.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export function caseView(deps: ServiceDeps, row: CaseRow) {
  return {
    workflowId: row.workflowId,
    stage: row.stage,
    outcome: row.outcome,
    amountOutstandingMinor: row.amountOutstandingMinor,
    nextActionAt: row.nextActionAt?.toISOString() ?? null,
    blockedReason: row.blockedReason,
    pausedReason: row.pausedReason,
    pausedAfterRestart: row.pausedAfterRestart,
    startsAt: row.startsAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    closedAt: row.closedAt?.toISOString() ?? null,
    workflowGone: row.workflowGone,
    temporalUiUrl: temporalUiLink(deps, row.workflowId),
  };
}

export function invoiceView(row: InvoiceRow, customerExternalId: string) {
  return {
    id: row.id,
    externalId: row.externalId,
    number: row.number,
    currency: row.currency,
    amountTotalMinor: row.amountTotalMinor,
    amountOutstandingMinor: row.amountOutstandingMinor,
    amountCreditedMinor: row.amountCreditedMinor,
    issueDate: row.issueDate,
    dueDate: row.dueDate,
    status: row.status,
    customerExternalId,
  };
}

type CustomerRow = typeof customers.$inferSelect;

/** A 503 for Temporal not answering, with the cause logged (the caller sees only the detail). */
export function temporalUnavailable(deps: ServiceDeps, title: string, detail: string, err: unknown): HttpProblem {
  deps.log?.error({ err }, title);
  return new HttpProblem(503, 'temporal-unavailable', title, detail, undefined, err);
}

/** gRPC status codes (the client's @grpc/grpc-js is not a dependency of ours). */
const grpcDeadlineExceeded = 4;
const grpcUnavailable = 14;

/**
 * Whether a Temporal client call failed because the server could not be reached (gRPC
 * UNAVAILABLE or DEADLINE_EXCEEDED, after the client's own retries) or this process's
 * connection is closed: an outage that ends, not a fault of the request.
 */
export function isTemporalUnreachable(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e) && (e.code === grpcUnavailable || e.code === grpcDeadlineExceeded)) return true;
    if (e.message === 'Channel has been shut down') return true;
  }
  return false;
}

type CustomerInput = RegisterInvoice['customer'];

/** JSON with sorted keys: jsonb columns come back with their keys reordered. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/**
 * Finds or creates the customer. Details that differ from what is stored are updated and the
 * change is audited, so a repeated registration with the same data changes nothing.
 */
async function upsertCustomer(tx: Transaction, input: CustomerInput, actor: string): Promise<CustomerRow> {
  const values = {
    name: input.name,
    email: input.email ?? null,
    phone: input.phone ?? null,
    postalAddress: input.postalAddress ?? null,
    timeZone: input.timeZone,
    locale: input.locale,
    country: input.country ?? null,
    kind: input.kind,
  };
  const [inserted] = await tx
    .insert(customers)
    .values({ externalId: input.externalId, ...values })
    .onConflictDoNothing({ target: customers.externalId })
    .returning();
  if (inserted) return inserted;
  const [existing] = await tx.select().from(customers).where(eq(customers.externalId, input.externalId)).for('update');
  const changed = (Object.keys(values) as (keyof typeof values)[]).filter(
    (field) => canonicalJson(existing![field]) !== canonicalJson(values[field]),
  );
  if (changed.length === 0) return existing!;
  const [updated] = await tx.update(customers).set({ ...values, updatedAt: new Date() }).where(eq(customers.id, existing!.id)).returning();
  await tx.insert(auditEvents).values({ actor, type: 'customer.updated', data: { customerExternalId: input.externalId, changed } });
  return updated!;
}

/**
 * Registers an invoice (idempotent by external id) and opens its collection case: customer,
 * invoice, case row and audit event in one transaction. The case's workflow starts at once if
 * its start time (a day before the policy's first step) has come; otherwise the overdue sweep
 * starts it then. If the start fails, the stored case is kept: registering again, or the
 * sweep, starts it.
 */
export async function registerInvoice(deps: ServiceDeps, input: RegisterInvoice, caller: Caller) {
  const outstanding = input.amountOutstandingMinor ?? input.amountTotalMinor;
  const workflowId = collectionWorkflowId(input.externalId);
  const policy = await latestPolicy(deps.db, input.policy);
  if (!policy) throw new HttpProblem(422, 'unknown-policy', 'Unknown collection policy', `No collection policy named "${input.policy}".`);
  const { invoice, customer, caseRow, created } = await deps.db.transaction(async (tx) => {
    const customer = await upsertCustomer(tx, input.customer, caller.name);

    const [inserted] = await tx
      .insert(invoices)
      .values({
        externalId: input.externalId,
        customerId: customer.id,
        number: input.number,
        currency: input.currency,
        amountTotalMinor: input.amountTotalMinor,
        amountOutstandingMinor: outstanding,
        issueDate: input.issueDate,
        dueDate: input.dueDate,
        status: outstanding === 0 ? 'paid' : 'open',
      })
      .onConflictDoNothing({ target: invoices.externalId })
      .returning();
    const invoice = inserted ?? (await tx.select().from(invoices).where(eq(invoices.externalId, input.externalId)))[0]!;
    let [caseRow] = await tx.select().from(collectionCases).where(eq(collectionCases.invoiceId, invoice.id));
    if (!inserted) {
      const [pinned] = caseRow?.policyId ? await tx.select({ name: collectionPolicies.name }).from(collectionPolicies).where(eq(collectionPolicies.id, caseRow.policyId)) : [];
      assertSameInvoice(invoice, input, customer.id, { openingMinor: caseRow?.openingAmountMinor ?? invoice.amountOutstandingMinor, policy: pinned?.name });
    }
    if (!caseRow && invoice.status === 'open') {
      [caseRow] = await tx
        .insert(collectionCases)
        .values({
          invoiceId: invoice.id,
          workflowId,
          stage: 'NotStarted',
          amountOutstandingMinor: invoice.amountOutstandingMinor,
          openingAmountMinor: invoice.amountOutstandingMinor,
          policyId: policy.id,
          startsAt: collectionStartsAt(policy.definition, invoice.dueDate),
        })
        .returning();
    }
    if (inserted) {
      await tx.insert(auditEvents).values({
        invoiceId: invoice.id,
        caseId: caseRow?.id ?? null,
        actor: caller.name,
        type: 'invoice.registered',
        data: { externalId: invoice.externalId, amountOutstandingMinor: invoice.amountOutstandingMinor, currency: invoice.currency },
      });
    }
    return { invoice, customer, caseRow, created: Boolean(inserted) };
  });

  const current = await startIfDue(deps, { invoice, customer, caseRow });
  return { created, invoice: invoiceView(invoice, customer.externalId), case: current ? caseView(deps, current) : null };
}

/**
 * Starts a case's workflow if its start time has come, and returns the case row as it stands
 * then. A failed start keeps the case waiting for the next try (or the overdue sweep): 503.
 */
export async function startIfDue(
  deps: ServiceDeps,
  stored: Omit<StoredCase, 'caseRow'> & { caseRow: CaseRow | null | undefined },
): Promise<CaseRow | null | undefined> {
  const { caseRow } = stored;
  const now = await deps.clock();
  // A cancelled invoice's case is never started, even if its start time has come.
  if (stored.invoice.status !== 'open' || caseRow?.stage !== 'NotStarted' || caseRow.startsAt > now) return caseRow;
  try {
    await startCollection(deps, { ...stored, caseRow }, now);
  } catch (err) {
    throw temporalUnavailable(
      deps,
      'Collection could not start',
      `Invoice ${stored.invoice.externalId} is stored, but its collection workflow could not be started. Send the request again to retry, or leave it to the overdue sweep; nothing is duplicated.`,
      err,
    );
  }
  const [after] = await deps.db.select().from(collectionCases).where(eq(collectionCases.id, caseRow.id));
  return after;
}

/**
 * A registration sent again must match what was registered, or the caller would believe a change
 * was made that was not: a lower amount outstanding (money the accounting system recorded) goes
 * through the payments route, a new due date or number through PATCH.
 */
function assertSameInvoice(existing: InvoiceRow, input: RegisterInvoice, customerId: string, registered: { openingMinor: number; policy?: string }): void {
  const differences = [
    existing.customerId !== customerId && 'customer',
    existing.currency !== input.currency && 'currency',
    existing.amountTotalMinor !== input.amountTotalMinor && 'amountTotalMinor',
    input.amountOutstandingMinor !== undefined && input.amountOutstandingMinor !== registered.openingMinor && 'amountOutstandingMinor',
    existing.issueDate !== input.issueDate && 'issueDate',
    existing.dueDate !== input.dueDate && 'dueDate',
    existing.number !== input.number && 'number',
    input.policy !== undefined && registered.policy !== undefined && registered.policy !== input.policy && 'policy',
  ].filter(Boolean);
  if (differences.length > 0) {
    throw new HttpProblem(
      409,
      'invoice-conflict',
      'Invoice already registered with other details',
      `Invoice ${existing.externalId} is already registered; these fields differ: ${differences.join(', ')}.`,
    );
  }
}

/**
 * Delivers a stored message to its case (signal-with-start: see signalCollection). 'applied'
 * when the case has it; 'case_closed' when the case had ended. A Temporal failure is a 503
 * that tells the caller to send it again.
 */
export async function deliverToCase<Message>(
  deps: ServiceDeps,
  stored: StoredCase,
  signal: SignalDefinition<[Message]>,
  message: Message,
  failure: { title: string; detail: string },
): Promise<'applied' | 'case_closed'> {
  try {
    return (await signalCollection(deps, stored, signal, message, await deps.clock())) === 'delivered' ? 'applied' : 'case_closed';
  } catch (err) {
    throw temporalUnavailable(deps, failure.title, failure.detail, err);
  }
}

/** The invoice with its customer and case row (null when it has none), or undefined if unknown. */
export async function lookupInvoice(deps: ServiceDeps, externalId: string) {
  const [row] = await deps.db
    .select({ invoice: invoices, customer: { externalId: customers.externalId, timeZone: customers.timeZone }, caseRow: collectionCases })
    .from(invoices)
    .innerJoin(customers, eq(customers.id, invoices.customerId))
    .leftJoin(collectionCases, eq(collectionCases.invoiceId, invoices.id))
    .where(eq(invoices.externalId, externalId));
  return row;
}
export type FoundInvoice = NonNullable<Awaited<ReturnType<typeof lookupInvoice>>>;

/** As lookupInvoice, but 404 if unknown. */
export async function findInvoice(deps: ServiceDeps, externalId: string): Promise<FoundInvoice> {
  const row = await lookupInvoice(deps, externalId);
  if (!row) throw new HttpProblem(404, 'invoice-not-found', 'Unknown invoice', `No invoice with external id ${externalId}.`);
  return row;
}

/** The invoice with its case: the database copy, the workflow's live status, and the timeline. */
export async function getInvoiceDetail(deps: ServiceDeps, externalId: string) {
  const { invoice, customer, caseRow } = await findInvoice(deps, externalId);
  let live: CaseStatus | null = null;
  // A case that has not started has no workflow to ask.
  if (caseRow && caseRow.stage !== 'NotStarted') {
    try {
      const handle = deps.temporal.workflow.getHandle(caseRow.workflowId);
      // A query needs a live worker; don't let a page wait on one that is down.
      live = await deps.temporal.connection.withDeadline(Date.now() + 3000, () => handle.query(caseStatusQuery));
    } catch {
      live = null; // Temporal unreachable or the workflow's start failed: the database copy still answers.
    }
  }
  const [timeline, comms, queued] = await Promise.all([
    // Workflow activities write some events with the case id only (approval decisions, handovers).
    deps.db
      .select()
      .from(auditEvents)
      .where(caseRow ? or(eq(auditEvents.invoiceId, invoice.id), eq(auditEvents.caseId, caseRow.id)) : eq(auditEvents.invoiceId, invoice.id))
      .orderBy(asc(auditEvents.id)),
    caseRow
      ? deps.db.select().from(communications).where(eq(communications.caseId, caseRow.id)).orderBy(asc(communications.createdAt))
      : Promise.resolve([]),
    // Commands stored but not yet delivered (Temporal away): on the timeline once their case has them.
    caseRow
      ? deps.db
          .select()
          .from(commandOutbox)
          .where(and(eq(commandOutbox.caseId, caseRow.id), isNull(commandOutbox.outcome)))
          .orderBy(asc(commandOutbox.createdAt), asc(commandOutbox.id))
      : Promise.resolve([]),
  ]);
  return {
    invoice: invoiceView(invoice, customer.externalId),
    case: caseRow ? caseView(deps, caseRow) : null,
    live,
    communications: comms.map((c) => ({
      id: c.id,
      channel: c.channel,
      template: c.template,
      recipient: c.recipient,
      subject: c.subject,
      body: c.body,
      status: c.status,
      createdAt: c.createdAt.toISOString(),
    })),
    timeline: timeline.map((e) => ({ at: e.occurredAt.toISOString(), actor: e.actor, type: e.type, data: e.data })),
    queuedCommands: queued.map((c) => ({
      id: c.id,
      command: c.name,
      messageId: c.messageId,
      requestedBy: c.requestedBy,
      at: c.createdAt.toISOString(),
      attempts: c.attempts,
      lastError: c.lastError,
    })),
  };
}
