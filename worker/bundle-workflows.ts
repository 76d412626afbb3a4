// `npm run build` step: bundles the workflow code once, so production workers start fast
// and run exactly the code that was built.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundleOptions } from './create-worker';

// Run from source by tsx (worker/), writing where dist/worker/create-worker.js looks for it.
const workflowBundlePath = path.resolve(__dirname, '..', 'dist', 'workflow-bundle.js');

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode(workflowBundleOptions);
  mkdirSync(path.dirname(workflowBundlePath), { recursive: true });
  writeFileSync(workflowBundlePath, code);
  console.log(`workflow bundle written to ${workflowBundlePath} (${Math.round(code.length / 1024)} KiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
