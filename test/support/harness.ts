// vitest-side harnesses: the stack of ./stack.ts on the run's shared dev server or on a
// time-skipping test server of its own.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { inject } from 'vitest';
import { temporalClientChannelArgs } from '../../config';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import { startHarness, type HarnessOptions } from './stack';

export { startHarness, webhookSecrets, type Harness, type HarnessOptions } from './stack';

/** The harness on the run's shared Temporal dev server (started by the vitest globalSetup). */
export async function startDevServerHarness(options: HarnessOptions = {}) {
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address, channelArgs: temporalClientChannelArgs });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const harness = await startHarness({ client, connection, nativeConnection }, options);
  return {
    ...harness,
    client,
    async stop() {
      await harness.stop();
      await nativeConnection.close();
      await connection.close();
    },
  };
}

/**
 * The harness on its own time-skipping test server (months of a case in seconds); stop() tears
 * both down. The API's clock is the test server's, which runs ahead as tests skip time.
 */
export async function startTimeSkippingHarness() {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: resolveServerExecutable('test-server') },
  });
  const harness = await startHarness(env, { clock: async () => new Date(await env.currentTimeMs()) });
  return {
    ...harness,
    env,
    async stop() {
      await harness.stop();
      await env.teardown();
    },
  };
}
