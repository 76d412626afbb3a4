import { isCancellation, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { StartDueCasesResult, SweepCounts, SweepCursor } from '../activities/sweep';

// A page is retried a few times (its starts are idempotent); a run that still fails leaves
// its cases to the next run, which looks at every due case again.
const { startDueCases, checkOpenCases } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
});

export type OverdueSweepInput = {
  /** Cases per activity call (default 100). */
  pageSize?: number;
  /** At most this many cases per run (default 1,000); the rest wait for the next run. */
  maxCases?: number;
  /** Open cases whose workflow is checked per run, the longest unchecked first (default 500, at most 5,000). */
  checkCases?: number;
};

export type OverdueSweepResult = SweepCounts & {
  /** The run's "now": cases due to start by then were looked at. */
  asOf: string;
  pages: number;
  /** The run stopped at maxCases, so due cases may be left for the next run. */
  more: boolean;
  /** Up to 20 invoices whose start failed (the activity log has the errors). */
  failedInvoices: string[];
  /** Open cases whose workflow was checked this run. */
  casesChecked?: number;
  /** Open cases Temporal did not answer about (a batch all unanswered ends the check early). */
  casesUnanswered?: number;
  /** Up to 20 invoices whose open case's workflow is gone (on the stuck list, to restart). */
  workflowsGone?: string[];
  /** The check failed (its activity's retries ran out); the next run checks again. */
  checkFailed?: boolean;
};

const positiveInt = (value: number | undefined, fallback: number) => (Number.isSafeInteger(value) && value! > 0 ? value! : fallback);

/**
 * The overdue sweep, run by a Temporal Schedule (worker/sweep-schedule.ts): starts the
 * collection case of every open invoice whose start time has come and whose workflow is not
 * running, page by page, a bounded batch per run. It is level-triggered: each run looks at
 * everything due by its own time, so a missed run or a failed start is made good by the next.
 * Each run then checks a batch of open cases for a workflow that is gone (checkOpenCases). The
 * counts are its result, shown in the Temporal UI.
 */
export async function overdueSweep(input: OverdueSweepInput = {}): Promise<OverdueSweepResult> {
  const pageSize = positiveInt(input.pageSize, 100);
  const maxCases = positiveInt(input.maxCases, 1_000);
  // Workflow time: the schedule's action time (and the test server's clock in tests).
  const asOf = new Date().toISOString();
  const result: OverdueSweepResult = { asOf, started: 0, alreadyRunning: 0, failed: 0, pages: 0, more: false, failedInvoices: [] };
  let after: SweepCursor | null = null;
  let seen = 0;
  for (;;) {
    const page: StartDueCasesResult = await startDueCases({ asOf, after, limit: Math.min(pageSize, maxCases - seen) });
    result.pages += 1;
    result.started += page.started;
    result.alreadyRunning += page.alreadyRunning;
    result.failed += page.failed;
    result.failedInvoices = [...result.failedInvoices, ...page.failedInvoices].slice(0, 20);
    seen += page.started + page.alreadyRunning + page.failed;
    after = page.next;
    if (!after) break;
    if (seen >= maxCases) {
      result.more = true;
      break;
    }
  }
  // Then a batch of open cases, to find any whose workflow Temporal lost or that ended without
  // closing the case: nothing else would ever move them again.
  if (patched('sweep-checks-open-cases')) {
    try {
      const check = await checkOpenCases({ asOf, limit: Math.min(positiveInt(input.checkCases, 500), 5_000) });
      result.casesChecked = check.checked;
      result.casesUnanswered = check.unanswered;
      result.workflowsGone = check.gone.slice(0, 20);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // The starts above stand; the next run checks these cases again.
      result.checkFailed = true;
    }
  }
  return result;
}
