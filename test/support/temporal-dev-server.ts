// vitest globalSetup: one Temporal dev server (the real CLI) for the whole run, shared by the
// end-to-end tests; each test isolates itself by its own task queue and workflow ids.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import { allSearchAttributeKeys } from '../../workflows/messages';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}

export default async function setup(project: TestProject) {
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: resolveServerExecutable('cli'), searchAttributes: allSearchAttributeKeys },
  });
  project.provide('temporalAddress', env.address);
  return async () => {
    await env.teardown();
  };
}
