// The production API process (api/main.ts, what `npm run start:api` runs) in a process of its
// own: configured from the environment alone, serving HTTP, applying webhooks with its own
// payment dispatcher, and stopping cleanly when asked (a deployment's SIGTERM).
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiKey } from '../api/auth';
import { signedHeaders } from '../api/webhook-signatures';
import { createDb } from '../db/client';
import { createTestDbServer } from './support/db';
import { invoicePayload } from './support/fixtures';
import { startServiceProcess, type ServiceProcess } from './support/service-process';
import { until } from './support/until';

let server: Awaited<ReturnType<typeof createTestDbServer>>;
let api: ServiceProcess | undefined;
const bankSecret = randomBytes(24).toString('hex');
let collectorKey: string;

beforeAll(async () => {
  server = await createTestDbServer();
  // The API migrates at start; the key is made first, as `npm run keys` would.
  const setup = await createDb({ DATABASE_URL: server.url(server.port), DATA_DIR: 'memory://', poolSize: 1 });
  await setup.migrate();
  collectorKey = (await createApiKey(setup.db, { name: 'api-process-test', role: 'collector' })).key;
  await setup.close();
});

afterAll(async () => {
  await api?.kill('SIGKILL');
  await server?.dispose();
});

describe('the API process', () => {
  // Up to 90 s for the process to start (tsx compiles it on a loaded machine), within the test's 120 s.
  it('serves with its settings from the environment, applies a signed payment, and exits 0 on SIGTERM', { timeout: 120_000 }, async () => {
    api = await startServiceProcess('api', {
      env: {
        DATABASE_URL: server.url(server.port),
        // PGlite behind its socket serves one connection; the dispatcher shares it with the requests.
        DATABASE_POOL_SIZE: String(server.maxConnections),
        PAYMENT_DISPATCH_CONCURRENCY: '1',
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_TASK_QUEUE: `api-process-${randomUUID()}`,
        API_HOST: '127.0.0.1',
        API_PORT: '0',
        LOG_LEVEL: 'warn',
        WEBHOOK_SECRETS: `bank=${bankSecret}`,
      },
      startTimeoutMs: 90_000,
    });
    const auth = { authorization: `Bearer ${collectorKey}`, 'content-type': 'application/json' };

    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    const refused = await fetch(`${api.url}/invoices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');

    const invoice = invoicePayload({ amountTotalMinor: 125_000 });
    const registered = await fetch(`${api.url}/invoices`, { method: 'POST', headers: auth, body: JSON.stringify(invoice) });
    expect(registered.status, await registered.clone().text()).toBe(201);

    // No worker polls this task queue: the signal still reaches the case, and the event is applied.
    const body = JSON.stringify({ id: `evt-${randomUUID()}`, type: 'payment.succeeded', data: { invoiceExternalId: invoice.externalId, amountMinor: 50_000, currency: 'EUR' } });
    const delivered = await fetch(`${api.url}/webhooks/bank`, { method: 'POST', headers: signedHeaders(bankSecret, body), body });
    expect(delivered.status).toBe(200);
    const { event } = (await delivered.json()) as { event: { id: string; status: string } };
    expect(event.status).toBe('received');
    const handled = await until('the stored event to be applied', async () => {
      const res = await fetch(`${api!.url}/webhook-events/${event.id}`, { headers: auth });
      const view = (await res.json()) as { status: string };
      return view.status !== 'received' && view;
    });
    expect(handled).toMatchObject({ status: 'applied', paymentId: expect.any(String), attempts: 0 });

    expect(await api.kill('SIGTERM')).toBe(0);
    expect(api.isRunning()).toBe(false);
  });
});
