import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { and, asc, eq, gt, isNotNull, isNull, lte, ne, notInArray } from 'drizzle-orm';
import { restartCollection, type RestartMemo, type StoredCase } from '../cases/collection-start';
import { goneAs, goneReason, mapInBatches, viewWorkflow, type WorkflowView } from '../cases/workflow-view';
import { auditEvents, collectionCases, commandOutbox, customers, invoiceAdjustments, invoices, webhookEvents } from '../db/schema';
import { collectionWorkflowId } from '../domain/collection';
import { listApprovals } from './approval-service';
import type { Caller } from './auth';
import { findInvoice, isTemporalUnreachable, temporalUiLink, temporalUnavailable, type ServiceDeps } from './invoice-service';
import { HttpProblem } from './problem';

export const stuckKinds = [
  'activity_failing',
  'blocked',
  'approval_overdue',
  'paused_too_long',
  'restarted_paused',
  'payment_unfinished',
  'adjustment_unfinished',
  'command_unfinished',
  'start_failing',
  'workflow_missing',
  'workflow_ended',
] as const;
export type StuckKind = (typeof stuckKinds)[number];

/**
 * What an operator can do from a stuck case: resume retries a blocked step or ends a pause (also
 * one a restart began with); decide an overdue approval; finish applies a half-handled payment;
 * restart starts a lost or ended workflow again, paused; withdraw drops a case command that
 * keeps failing to reach its case.
 */
export const stuckActions = ['resume', 'decide', 'finish', 'restart', 'withdraw'] as const;

export type StuckCase = {
  kind: StuckKind;
  invoiceExternalId: string;
  customerName: string;
  workflowId: string;
  stage: string;
  /** What is wrong, in words an operator can act on. */
  reason: string;
  /** Since when (the step's due time, the approval's deadline, the last change of a paused case). */
  since: string | null;
  /** For a failing activity: its attempt number. */
  attempts: number | null;
  /** The approval a person is late deciding. */
  approvalId: string | null;
  /** What an operator can do from here (see stuckActions). */
  action: (typeof stuckActions)[number] | null;
  /** For an unfinished payment: the webhook event. */
  webhookEventId: string | null;
  /** For an unfinished case command: the stored command. */
  commandId: string | null;
  temporalUiUrl: string;
};

export type StuckOptions = {
  /** A pending activity on this attempt or later counts as failing again and again. */
  minAttempts: number;
  /** A case paused for longer than this many days is listed. */
  pausedForDays: number;
  /** At most this many cases are asked about their activities (each is one describe call). */
  describeLimit: number;
};

/**
 * Cases that will not move on by themselves, and why. Blocked, paused and overdue approvals come
 * from the database. A failing activity only shows in Temporal: the cases whose next action is
 * due (so something should be running) are described, and any pending activity past its
 * first retries is reported with its last failure.
 */
export async function findStuckCases(deps: ServiceDeps, options: StuckOptions): Promise<StuckCase[]> {
  const now = await deps.clock();
  const selectCases = () =>
    deps.db
      .select({ caseRow: collectionCases, invoiceExternalId: invoices.externalId, customerName: customers.name })
      .from(collectionCases)
      .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
      .innerJoin(customers, eq(customers.id, invoices.customerId));
  type Row = Awaited<ReturnType<typeof selectCases>>[number];
  const base = (row: Row) => ({
    invoiceExternalId: row.invoiceExternalId,
    customerName: row.customerName,
    workflowId: row.caseRow.workflowId,
    stage: row.caseRow.stage,
    temporalUiUrl: temporalUiLink(deps, row.caseRow.workflowId),
    attempts: null,
    approvalId: null,
    webhookEventId: null,
    commandId: null,
  });

  const [blocked, paused, restartedPaused, due, overdueApprovals, unfinished, unforwarded, undelivered, gone, unstarted] = await Promise.all([
    selectCases().where(eq(collectionCases.stage, 'Blocked')).orderBy(asc(collectionCases.updatedAt)).limit(200),
    selectCases()
      // A restarted case and a gone one are listed as such, not (also) as paused too long.
      .where(
        and(
          eq(collectionCases.stage, 'Paused'),
          lte(collectionCases.updatedAt, new Date(now.getTime() - options.pausedForDays * 86_400_000)),
          eq(collectionCases.pausedAfterRestart, false),
          isNull(collectionCases.workflowGone),
        ),
      )
      .orderBy(asc(collectionCases.updatedAt))
      .limit(200),
    // Started again after a loss, paused (by an operator's restart or by a message), and not
    // resumed since, as its workflow reports: someone has to check the timeline, however recent
    // the restart. (Gone again, it is listed as gone instead.)
    selectCases()
      .where(and(eq(collectionCases.pausedAfterRestart, true), ne(collectionCases.stage, 'Closed'), isNull(collectionCases.workflowGone)))
      .orderBy(asc(collectionCases.stateRunStartedAt))
      .limit(200),
    selectCases()
      .where(and(notInArray(collectionCases.stage, ['Closed', 'Blocked', 'Paused', 'NotStarted']), lte(collectionCases.nextActionAt, now), ne(collectionCases.stage, 'AwaitingApproval')))
      .orderBy(asc(collectionCases.nextActionAt))
      .limit(options.describeLimit),
    listApprovals(deps, { status: 'pending', deadlineBefore: now, limit: 200 }),
    // A payment event the dispatcher has not managed to apply for 5 minutes (Temporal down?).
    deps.db
      .select()
      .from(webhookEvents)
      .where(and(eq(webhookEvents.status, 'received'), lte(webhookEvents.receivedAt, new Date(now.getTime() - 5 * 60_000))))
      .orderBy(asc(webhookEvents.receivedAt))
      .limit(200),
    // A credit note or cancellation its case has not had for 5 minutes: its forwarding keeps failing.
    deps.db
      .select({ caseRow: collectionCases, invoiceExternalId: invoices.externalId, customerName: customers.name, adjustment: invoiceAdjustments })
      .from(invoiceAdjustments)
      .innerJoin(invoices, eq(invoices.id, invoiceAdjustments.invoiceId))
      .innerJoin(customers, eq(customers.id, invoices.customerId))
      .innerJoin(collectionCases, eq(collectionCases.invoiceId, invoices.id))
      .where(and(isNotNull(invoiceAdjustments.nextAttemptAt), gt(invoiceAdjustments.attempts, 0), lte(invoiceAdjustments.createdAt, new Date(now.getTime() - 5 * 60_000))))
      .orderBy(asc(invoiceAdjustments.createdAt))
      .limit(200),
    // A case command its case has not had for 5 minutes: its delivery keeps failing (or waits behind one that does).
    deps.db
      .select({ caseRow: collectionCases, invoiceExternalId: invoices.externalId, customerName: customers.name, command: commandOutbox })
      .from(commandOutbox)
      .innerJoin(collectionCases, eq(collectionCases.id, commandOutbox.caseId))
      .innerJoin(invoices, eq(invoices.id, collectionCases.invoiceId))
      .innerJoin(customers, eq(customers.id, invoices.customerId))
      .where(and(isNotNull(commandOutbox.nextAttemptAt), lte(commandOutbox.createdAt, new Date(now.getTime() - 5 * 60_000))))
      .orderBy(asc(commandOutbox.createdAt))
      .limit(200),
    // The overdue sweep's check of open cases found their workflows gone.
    selectCases()
      .where(and(isNotNull(collectionCases.workflowGone), notInArray(collectionCases.stage, ['Closed', 'NotStarted'])))
      .orderBy(asc(collectionCases.workflowGoneSince))
      .limit(200),
    // The sweep starts a case within minutes of its start time; an hour late means its start keeps failing.
    selectCases()
      .where(and(eq(collectionCases.stage, 'NotStarted'), lte(collectionCases.startsAt, new Date(now.getTime() - 3_600_000))))
      .orderBy(asc(collectionCases.startsAt))
      .limit(200),
  ]);

  const goneEntry = (row: Row, how: string) => ({
    ...base(row),
    kind: how === 'lost' ? ('workflow_missing' as const) : ('workflow_ended' as const),
    reason: goneReason(how),
    attempts: null,
    action: 'restart' as const,
  });

  // Described just now and found running (or completed): an older mark of the sweep's check is stale.
  const seenRunning = new Set<string>();
  const failing = await mapInBatches(
    due,
    8,
    async (row): Promise<StuckCase | undefined> => {
      let view: WorkflowView;
      try {
        view = await viewWorkflow(deps.temporal, row.caseRow.workflowId);
      } catch {
        return undefined; // Temporal did not answer for this one; the others still count.
      }
      const since = row.caseRow.nextActionAt?.toISOString() ?? null;
      if (view.state === 'missing' || view.state === 'ended') return { ...goneEntry(row, goneAs(view)), since };
      seenRunning.add(row.caseRow.workflowId);
      if (view.state !== 'running') return undefined;
      const worst = view.pendingActivities
        // A contact held until the debtor's window opens is waiting, not failing.
        .filter((a) => (a.attempt ?? 0) >= options.minAttempts && a.lastFailure?.applicationFailureInfo?.type !== 'OutsideContactWindow')
        .sort((a, b) => (b.attempt ?? 0) - (a.attempt ?? 0))[0];
      if (!worst) return undefined;
      const failure = worst.lastFailure?.message ?? 'no failure message';
      return {
        ...base(row),
        kind: 'activity_failing',
        reason: `${worst.activityType?.name ?? 'an activity'} failed ${(worst.attempt ?? 1) - 1} times; last: ${failure}`,
        since,
        attempts: worst.attempt ?? null,
        action: null,
      };
    },
  );

  const found = failing.filter((c): c is StuckCase => c !== undefined);
  const listed = new Set(found.map((c) => c.workflowId));
  return [
    ...found,
    ...gone
      .filter((row) => !listed.has(row.caseRow.workflowId) && !seenRunning.has(row.caseRow.workflowId))
      .map((row) => ({ ...goneEntry(row, row.caseRow.workflowGone!), since: row.caseRow.workflowGoneSince?.toISOString() ?? null })),
    ...blocked.map((row) => ({
      ...base(row),
      kind: 'blocked' as const,
      reason: row.caseRow.blockedReason ?? 'Blocked',
      since: row.caseRow.updatedAt.toISOString(),
      action: 'resume' as const,
    })),
    ...overdueApprovals.map((approval) => ({
      kind: 'approval_overdue' as const,
      invoiceExternalId: approval.invoice.externalId,
      customerName: approval.customer.name,
      workflowId: approval.workflowId,
      stage: 'AwaitingApproval',
      reason: `${approval.kind.replace('_', ' ')} waits for a decision; the deadline passed`,
      since: approval.deadlineAt,
      attempts: null,
      approvalId: approval.id,
      webhookEventId: null,
      commandId: null,
      action: 'decide' as const,
      temporalUiUrl: temporalUiLink(deps, approval.workflowId),
    })),
    ...restartedPaused.map((row) => ({
      ...base(row),
      kind: 'restarted_paused' as const,
      // The pause's own reason says who restarted it (or which message did) and to check the timeline.
      reason: `Started again after its workflow was lost or ended, and paused until someone resumes it: ${row.caseRow.pausedReason ?? 'check its timeline, then resume'}`,
      // Since its run started: the restart's (or a run it continued as new into, while paused).
      since: (row.caseRow.stateRunStartedAt ?? row.caseRow.updatedAt).toISOString(),
      action: 'resume' as const,
    })),
    ...paused.map((row) => ({
      ...base(row),
      kind: 'paused_too_long' as const,
      reason: `Paused for more than ${options.pausedForDays} days`,
      since: row.caseRow.updatedAt.toISOString(),
      action: 'resume' as const,
    })),
    ...unstarted.map((row) => ({
      ...base(row),
      kind: 'start_failing' as const,
      reason: 'Its start time passed over an hour ago and the sweep has not started it: see the overdue sweep under Schedules in the Temporal UI',
      since: row.caseRow.startsAt.toISOString(),
      action: null,
    })),
    ...unforwarded.map((row) => ({
      ...base(row),
      kind: 'adjustment_unfinished' as const,
      reason:
        `${row.adjustment.kind === 'cancellation' ? 'Cancellation' : 'Credit note'} ${row.adjustment.adjustmentId} is stored but its case does not have it yet ` +
        `after ${row.adjustment.attempts} attempts (last: ${row.adjustment.lastError ?? 'unknown'}); it is retried automatically`,
      since: row.adjustment.createdAt.toISOString(),
      action: null,
    })),
    ...undelivered.map((row) => ({
      ...base(row),
      kind: 'command_unfinished' as const,
      reason:
        `The ${row.command.name} command sent by ${row.command.requestedBy} is stored but its case does not have it yet` +
        (row.command.attempts > 0
          ? `; retried automatically, ${row.command.attempts} ${row.command.attempts === 1 ? 'attempt' : 'attempts'} so far (last: ${row.command.lastError ?? 'unknown'})`
          : ': it waits behind an earlier command of the case, or for its first attempt'),
      since: row.command.createdAt.toISOString(),
      commandId: row.command.id,
      action: 'withdraw' as const,
    })),
    ...unfinished.map((event) => ({
      kind: 'payment_unfinished' as const,
      invoiceExternalId: event.invoiceExternalId ?? '?',
      customerName: '',
      workflowId: collectionWorkflowId(event.invoiceExternalId ?? '?'),
      stage: '',
      reason:
        `${event.source} payment ${event.eventId} is stored but not yet applied` +
        (event.attempts > 0 ? ` after ${event.attempts} attempts (last: ${event.lastError ?? 'unknown'}); it is retried automatically` : ''),
      since: event.receivedAt.toISOString(),
      attempts: null,
      approvalId: null,
      webhookEventId: event.id,
      commandId: null,
      action: 'finish' as const,
      temporalUiUrl: temporalUiLink(deps, collectionWorkflowId(event.invoiceExternalId ?? '?')),
    })),
  ];
}

/**
 * Starts an open case's workflow again when Temporal lost it or it ended without closing the
 * case (see restartCollection): refused while it runs, and for one that completed. The new run
 * comes up paused, and the restart is on the case's timeline with who did it and why.
 */
export async function restartCase(deps: ServiceDeps, externalId: string, reason: string, caller: Caller) {
  const stored = await findInvoice(deps, externalId);
  const { caseRow } = stored;
  if (!caseRow || caseRow.stage === 'Closed' || caseRow.stage === 'NotStarted') {
    throw new HttpProblem(
      409,
      'case-not-restartable',
      'Nothing to restart',
      `Invoice ${externalId} has ${!caseRow ? 'no collection case' : caseRow.stage === 'Closed' ? 'a closed case' : 'a case that has not started yet (the overdue sweep starts it)'}.`,
    );
  }
  const storedCase = { ...stored, caseRow };
  const unavailable = (err: unknown) => temporalUnavailable(deps, 'Temporal did not answer', 'Send it again: if the restart landed meanwhile, it is answered as done.', err);
  const clearGoneMark = () => deps.db.update(collectionCases).set({ workflowGone: null, workflowGoneSince: null }).where(eq(collectionCases.id, caseRow.id));
  const restarted = async (runId: string) => {
    await clearGoneMark();
    return { restarted: true as const, runId, stage: 'Paused' as const };
  };
  let view: WorkflowView;
  try {
    view = await viewWorkflow(deps.temporal, caseRow.workflowId);
  } catch (err) {
    throw unavailable(err);
  }
  // Whether the restarted run still waits to be resumed: as its row says, or, before the run has
  // written to it, from the start.
  const waitsForResume = view.state === 'running' && (caseRow.stateRunId !== view.runId || caseRow.pausedAfterRestart);
  // A restart whose start reached Temporal but whose answer was lost (a 503), sent again while
  // its run still waits to be resumed: answered as the restart it was, and put on the timeline
  // as it was asked for (its memo), which it is not yet.
  if (
    view.state === 'running' &&
    view.chainRunId &&
    view.restart &&
    isOperatorRestart(view.restart) &&
    waitsForResume &&
    (await auditRestart(deps, storedCase, view.chainRunId, view.restart))
  ) {
    return restarted(view.chainRunId);
  }
  if (view.state === 'running' || view.state === 'completed') {
    // Not gone after all: a mark of the sweep's check is stale.
    if (caseRow.workflowGone) await clearGoneMark();
    throw notRestartable(externalId, view, waitsForResume);
  }
  const restart = { restartedBy: caller.name, restartReason: reason, previously: goneAs(view) };
  let runId: string;
  try {
    runId = await restartCollection(deps, storedCase, restart);
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new HttpProblem(409, 'case-running', 'The case\'s workflow runs', `A run of invoice ${externalId}'s workflow started (or completed) meanwhile: there is nothing to restart.`);
    }
    if (isTemporalUnreachable(err)) throw unavailable(err);
    throw err;
  }
  await auditRestart(deps, storedCase, runId, restart);
  return restarted(runId);
}

/** The restart on the case's timeline, once per run it started; false if it is there already. */
async function auditRestart(deps: ServiceDeps, { invoice, caseRow }: StoredCase, runId: string, restart: Required<RestartMemo>): Promise<boolean> {
  const inserted = await deps.db
    .insert(auditEvents)
    .values({
      caseId: caseRow.id,
      invoiceId: invoice.id,
      actor: restart.restartedBy,
      type: 'case.restarted',
      data: { reason: restart.restartReason, previously: restart.previously, runId },
      dedupeKey: `${caseRow.workflowId}:restart:${runId}`,
    })
    .onConflictDoNothing({ target: auditEvents.dedupeKey })
    .returning({ id: auditEvents.id });
  return inserted.length > 0;
}

/** The 409 for a restart of a workflow that runs (a restarted one says what to do instead) or completed. */
function notRestartable(externalId: string, view: Extract<WorkflowView, { state: 'running' | 'completed' }>, waitsForResume: boolean): HttpProblem {
  if (view.state === 'completed') {
    return new HttpProblem(409, 'case-completed', 'The case\'s workflow completed', `The workflow of invoice ${externalId} completed, which closed the case; a closed case is never started again.`);
  }
  const detail =
    view.restart && waitsForResume
      ? `The workflow of invoice ${externalId} runs again since it was started after its loss (by ${view.restart.restartedBy}): check its timeline, then resume it.`
      : `The workflow of invoice ${externalId} is running: there is nothing to restart (see GET /operations/stuck for why it may not move).`;
  return new HttpProblem(409, 'case-running', 'The case\'s workflow runs', detail);
}

/** An operator's restart (restartCollection), not a message's start after a loss. */
function isOperatorRestart(memo: RestartMemo): memo is Required<RestartMemo> {
  return typeof memo.restartReason === 'string' && typeof memo.previously === 'string';
}
