/**
 * What Temporal says of an open case's workflow, for the stuck list, the restart, and the
 * sweep's check of open cases.
 */
import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { restartMemoSchema, type RestartMemo } from './collection-start';

/**
 * Running (with its pending activities), gone (the server has no record of it), ended without
 * closing the case (terminated from the UI, failed, timed out), or completed (the case closed;
 * its database row catches up).
 */
export type WorkflowView =
  | {
      state: 'running';
      pendingActivities: NonNullable<WorkflowExecutionDescription['raw']['pendingActivities']>;
      /** The run described. */
      runId: string;
      /** The first run of the running chain (continued-as-new runs share it), if the server says. */
      chainRunId?: string;
      /** When a start after a loss began the chain: its memo (restartCollection). */
      restart?: RestartMemo;
    }
  | { state: 'missing' }
  | { state: 'ended'; status: string }
  | { state: 'completed' };

/** Describes the workflow (3 s at most); throws if Temporal does not answer. */
export async function viewWorkflow(temporal: Client, workflowId: string): Promise<WorkflowView> {
  try {
    const handle = temporal.workflow.getHandle(workflowId);
    const description = await temporal.connection.withDeadline(Date.now() + 3000, () => handle.describe());
    const status = description.status.name;
    if (status === 'RUNNING' || status === 'CONTINUED_AS_NEW') {
      // The memo is anyone's to set (the Temporal UI, the CLI): read only what parses.
      const memo = restartMemoSchema.safeParse(description.memo);
      const firstRunId = description.raw.workflowExecutionInfo?.firstRunId;
      return {
        state: 'running',
        // Continued as new: described between two runs; the next one runs, and has nothing pending yet.
        pendingActivities: status === 'RUNNING' ? (description.raw.pendingActivities ?? []) : [],
        runId: description.runId,
        ...(firstRunId ? { chainRunId: firstRunId } : {}),
        ...(memo.success ? { restart: memo.data } : {}),
      };
    }
    return status === 'COMPLETED' ? { state: 'completed' } : { state: 'ended', status };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { state: 'missing' };
    throw err;
  }
}

/** How a gone workflow is named on the case: 'lost', or its end ('terminated', 'failed', …). */
export function goneAs(view: Extract<WorkflowView, { state: 'missing' | 'ended' }>): string {
  return view.state === 'missing' ? 'lost' : view.status.toLowerCase();
}

/** Runs `fn` over `items`, at most `size` at a time: describes must not flood Temporal. */
export async function mapInBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) results.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return results;
}

/** What the stuck list says of a case whose workflow is gone. */
export function goneReason(gone: string): string {
  return (
    (gone === 'lost' ? 'Temporal has no record of its workflow (its execution was lost)' : `Its workflow ended (${gone}) without closing the case`) +
    ', so nothing will happen to it: restart it (it comes back paused, to be resumed once its timeline is checked)'
  );
}
