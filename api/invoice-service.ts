import { asc, eq, or } from 'drizzle-orm';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Database } from '../db/client';
import { auditEvents, collectionCases, communications, customers, invoices } from '../db/schema';
import { collectionWorkflowId, type CollectionInput } from '../domain/collection';
import type { Currency } from '../domain/money';
import { caseStatusQuery, searchAttributes, type CaseStatus } from '../workflows/messages';
import type { Caller } from './auth';
import { latestPolicy, pinnedPolicy } from './policies';
import { HttpProblem } from './problem';
import type { RegisterInvoice } from './schemas';

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

export type ServiceDeps = {
  db: Database;
  /** Where failures hidden from the caller (Temporal errors behind a 503) are logged. */
  log?: { error(obj: object, msg: string): void };
  temporal: Client;
  taskQueue: string;
  temporalUiUrl: string;
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
    startedAt: row.startedAt.toISOString(),
    closedAt: row.closedAt?.toISOString() ?? null,
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
    issueDate: row.issueDate,
    dueDate: row.dueDate,
    status: row.status,
    customerExternalId,
  };
}

type CustomerRow = typeof customers.$inferSelect;

/** The workflow's input: the stored invoice, the balance its case starts with, and its pinned policy. */
export async function collectionInput(deps: ServiceDeps, invoice: InvoiceRow, customer: Pick<CustomerRow, 'externalId' | 'timeZone'>, caseRow: CaseRow): Promise<CollectionInput> {
  const policy = caseRow.policyId ? await pinnedPolicy(deps.db, caseRow.policyId) : await latestPolicy(deps.db);
  return {
    invoiceId: invoice.id,
    invoiceExternalId: invoice.externalId,
    invoiceNumber: invoice.number,
    customerExternalId: customer.externalId,
    customerTimeZone: customer.timeZone,
    currency: invoice.currency as Currency,
    amountOutstandingMinor: caseRow.amountOutstandingMinor,
    dueDate: invoice.dueDate,
    policyId: policy.id,
    policy: policy.definition,
  };
}

/**
 * How every case's workflow is started, by registration or by a payment that finds it not yet
 * started: the id derived from the invoice, and a closed case never started again.
 */
export function startOptions(deps: ServiceDeps, input: CollectionInput) {
  return {
    workflowId: collectionWorkflowId(input.invoiceExternalId),
    taskQueue: deps.taskQueue,
    args: [input] as [CollectionInput],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: [
      { key: searchAttributes.invoiceId, value: input.invoiceExternalId },
      { key: searchAttributes.customerId, value: input.customerExternalId },
      { key: searchAttributes.currency, value: input.currency },
      { key: searchAttributes.stage, value: 'Scheduled' },
      { key: searchAttributes.amountOutstanding, value: input.amountOutstandingMinor },
    ],
  };
}

export function temporalUnavailable(deps: ServiceDeps, title: string, detail: string, err: unknown): HttpProblem {
  deps.log?.error({ err }, title);
  return new HttpProblem(503, 'temporal-unavailable', title, detail);
}

type CustomerInput = RegisterInvoice['customer'];

/** JSON with sorted keys: jsonb columns come back with their keys reordered. */
function canonicalJson(value: unknown): string {
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
 * invoice, case row and audit event in one transaction, then the workflow start. If the start
 * fails, the stored case is kept and registering again starts it.
 */
export async function registerInvoice(deps: ServiceDeps, input: RegisterInvoice, caller: Caller) {
  const outstanding = input.amountOutstandingMinor ?? input.amountTotalMinor;
  const workflowId = collectionWorkflowId(input.externalId);
  const policy = await latestPolicy(deps.db, input.policy);
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
    if (!inserted) assertSameInvoice(invoice, input, customer.id);

    let [caseRow] = await tx.select().from(collectionCases).where(eq(collectionCases.invoiceId, invoice.id));
    if (!caseRow && invoice.status === 'open') {
      [caseRow] = await tx
        .insert(collectionCases)
        .values({
          invoiceId: invoice.id,
          workflowId,
          stage: 'Scheduled',
          amountOutstandingMinor: invoice.amountOutstandingMinor,
          policyId: policy.id,
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

  if (caseRow && caseRow.stage !== 'Closed') {
    const collection = await collectionInput(deps, invoice, customer, caseRow);
    try {
      await deps.temporal.workflow.start('invoiceCollection', startOptions(deps, collection));
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
        throw temporalUnavailable(
          deps,
          'Collection could not start',
          `Invoice ${invoice.externalId} is stored, but its collection workflow could not be started. Register it again to retry; nothing is duplicated.`,
          err,
        );
      }
    }
  }
  return { created, invoice: invoiceView(invoice, customer.externalId), case: caseRow ? caseView(deps, caseRow) : null };
}

function assertSameInvoice(existing: InvoiceRow, input: RegisterInvoice, customerId: string): void {
  const differences = [
    existing.customerId !== customerId && 'customer',
    existing.currency !== input.currency && 'currency',
    existing.amountTotalMinor !== input.amountTotalMinor && 'amountTotalMinor',
    existing.dueDate !== input.dueDate && 'dueDate',
    existing.number !== input.number && 'number',
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

/** The invoice with its customer and case, or undefined if no invoice has that external id. */
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

export async function findInvoice(deps: ServiceDeps, externalId: string): Promise<FoundInvoice> {
  const row = await lookupInvoice(deps, externalId);
  if (!row) throw new HttpProblem(404, 'invoice-not-found', 'Unknown invoice', `No invoice with external id ${externalId}.`);
  return row;
}

/** The invoice with its case: the database copy, the workflow's live status, and the timeline. */
export async function getInvoiceDetail(deps: ServiceDeps, externalId: string) {
  const { invoice, customer, caseRow } = await findInvoice(deps, externalId);
  let live: CaseStatus | null = null;
  if (caseRow) {
    try {
      const handle = deps.temporal.workflow.getHandle(caseRow.workflowId);
      // A query needs a live worker; don't let a page wait on one that is down.
      live = await deps.temporal.connection.withDeadline(Date.now() + 3000, () => handle.query(caseStatusQuery));
    } catch {
      live = null; // Temporal unreachable or workflow not started: the database copy still answers.
    }
  }
  const [timeline, comms] = await Promise.all([
    // Workflow activities write some events with the case id only (approval decisions, handovers).
    deps.db
      .select()
      .from(auditEvents)
      .where(caseRow ? or(eq(auditEvents.invoiceId, invoice.id), eq(auditEvents.caseId, caseRow.id)) : eq(auditEvents.invoiceId, invoice.id))
      .orderBy(asc(auditEvents.id)),
    caseRow
      ? deps.db.select().from(communications).where(eq(communications.caseId, caseRow.id)).orderBy(asc(communications.createdAt))
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
  };
}
