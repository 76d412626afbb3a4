// The case-start benchmark's second baseline (bench/case-start.ts): the smallest workflow that
// does work on a worker, one activity that does nothing. Bundled by the benchmark's own worker.
import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '10 seconds' });

export async function oneActivityWorkflow(): Promise<void> {
  await noop();
}
