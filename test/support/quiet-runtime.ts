// vitest setupFiles: keep the Temporal SDK's INFO chatter (worker state changes) out of test output.
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Installed already by an earlier test file in this process.
}
