// Replay of a workflow's history with the current workflow code, and recorded histories kept
// for future replays (test/histories/*.bin): a change that would break running cases fails
// test/history.test.ts (wrap such changes in patched()).
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

export const historiesDir = path.resolve(__dirname, '..', 'histories');
export const workflowsPath = path.resolve(__dirname, '..', '..', 'workflows');

/**
 * Replays `handle`'s history so far with the current code (it is deterministic), and with
 * RECORD_HISTORIES=1 keeps it as test/histories/<name>.bin, for replays by future code. A
 * recorded history is never overwritten: record a new behaviour under a new name.
 */
export async function replayAndRecord(handle: WorkflowHandle, name: string): Promise<temporal.api.history.v1.IHistory> {
  const history = await handle.fetchHistory();
  await Worker.runReplayHistory({ workflowsPath }, history, handle.workflowId);
  if (process.env.RECORD_HISTORIES) {
    const file = path.join(historiesDir, `${name}.bin`);
    if (!existsSync(file)) writeFileSync(file, temporal.api.history.v1.History.encode(history).finish());
  }
  return history;
}
