// The production worker (worker/main.ts) in a child process of its own, for the fault tests
// that kill it (spawned by ./service-process.ts): the same start-up and configuration, with
// the workflow code bundled from source as in the other tests, so no build is needed.
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { runWorker } from '../../worker/main';

// INFO: the worker's state changes (stopping, draining, drained) show where a slow stop waited.
Runtime.install({ logger: new DefaultLogger('INFO') });
runWorker('source').then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
