// The HTTP contract: authentication, validation as problem+json, conflicts, health, OpenAPI.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../api/app';
import { apiKeys, auditEvents, collectionPolicies, customers, invoices } from '../db/schema';
import { defaultPolicy } from '../domain/policy';
import { createTestDb } from './support/db';
import { invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';

const execFileAsync = promisify(execFile);

let h: Awaited<ReturnType<typeof startDevServerHarness>>;

beforeAll(async () => {
  h = await startDevServerHarness();
});

afterAll(async () => {
  await h?.stop();
});

const register = (headers: Record<string, string>, payload: unknown) =>
  h.app.inject({ method: 'POST', url: '/invoices', headers, payload: payload as object });

type ProblemBody = { status: number; type: string; detail: string; errors: { path: string; message: string }[] };

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, type: string) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json() as ProblemBody;
  expect(body).toMatchObject({ status, type: `urn:arrears:problem:${type}` });
  expect(typeof body.detail).toBe('string');
  expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/); // never a stack trace
  return body;
}

async function invoiceCount(externalId: string) {
  return (await h.db.db.select().from(invoices).where(eq(invoices.externalId, externalId))).length;
}

describe('authentication and roles', () => {
  it('refuses a request without an API key, with an unknown key, or with a revoked key', async () => {
    const payload = invoicePayload();
    expectProblem(await register({}, payload), 401, 'unauthenticated');
    expectProblem(await register({ authorization: 'Bearer arr_not-a-key' }, payload), 401, 'unauthenticated');

    await h.db.db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.name, 'test-approver'));
    expectProblem(await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('approver') }), 401, 'unauthenticated');
    expect(await invoiceCount(payload.externalId)).toBe(0);
  });

  it('creates, lists and revokes keys with the CLI, showing a key only once', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'arrears-keys-'));
    const keys = async (...args: string[]) => {
      const { stdout } = await execFileAsync('npx', ['tsx', 'api/keys-cli.ts', ...args], { env: { ...process.env, DATABASE_URL: '', DATA_DIR: dataDir } });
      return stdout.trim();
    };
    try {
      const key = await keys('create', '--role', 'approver', '--name', 'Dana Approver');
      expect(key).toMatch(/^arr_[A-Za-z0-9_-]{43}$/);
      const listed = await keys('list');
      expect(listed).toContain('Dana Approver');
      expect(listed).not.toContain(key);
      const id = listed.split(/\s+/)[0]!;
      expect(await keys('revoke', '--id', id)).toContain(`revoked ${id}`);
      expect(await keys('list')).toMatch(/revoked \d{4}-/);
      await expect(keys('revoke', '--id', id)).rejects.toThrow(/No active key/);
      await expect(keys('create', '--role', 'superuser', '--name', 'x')).rejects.toThrow(/--role/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    // Six CLI processes, each starting the embedded database: slow on a busy machine.
  }, 180_000);

  it('lets viewers read but not register invoices or record payments', async () => {
    const payload = invoicePayload();
    const body = expectProblem(await register(h.auth('viewer'), payload), 403, 'forbidden');
    expect(body.detail).toContain('viewer');
    expect(await invoiceCount(payload.externalId)).toBe(0);

    expect((await register(h.auth('collector'), payload)).statusCode).toBe(201);
    expect((await h.app.inject({ url: `/invoices/${payload.externalId}`, headers: h.auth('viewer') })).statusCode).toBe(200);
    const pay = await h.app.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/payments`,
      headers: h.auth('viewer'),
      payload: { reference: 'x', amountMinor: 100, currency: 'EUR' },
    });
    expectProblem(pay, 403, 'forbidden');
  });

  it('checks the API key before reading the body: no key and a bad body is 401, not 400', async () => {
    expectProblem(await register({}, { nonsense: true }), 401, 'unauthenticated');
  });

  it('records who registered the invoice in the audit trail', async () => {
    const payload = invoicePayload();
    const res = await register(h.auth('admin'), payload);
    const events = await h.db.db.select().from(auditEvents).where(eq(auditEvents.invoiceId, res.json().invoice.id));
    expect(events.find((e) => e.type === 'invoice.registered')?.actor).toBe('test-admin');
  });
});

describe('validation', () => {
  it('explains every invalid field and stores nothing', async () => {
    const payload = { ...invoicePayload(), currency: 'EUX', amountTotalMinor: 12.5, number: undefined };
    const body = expectProblem(await register(h.auth('collector'), payload), 400, 'validation');
    const paths = body.errors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['body.currency', 'body.amountTotalMinor', 'body.number']));
    expect(body.detail).toContain('unknown currency "EUX"');
    expect(await invoiceCount(payload.externalId)).toBe(0);
  });

  it('rejects negative amounts, a due date before the issue date and an unknown time zone', async () => {
    const base = invoicePayload();
    const payload = { ...base, amountTotalMinor: -5, dueDate: '2020-01-01', customer: { ...base.customer, timeZone: 'Mars/Olympus' } };
    const body = expectProblem(await register(h.auth('collector'), payload), 400, 'validation');
    expect(body.errors.map((e) => e.path)).toEqual(
      expect.arrayContaining(['body.amountTotalMinor', 'body.customer.timeZone']),
    );
  });

  it('answers malformed JSON, an oversized body and an unknown route with problem+json', async () => {
    const malformed = await h.app.inject({
      method: 'POST',
      url: '/invoices',
      headers: { ...h.auth('collector'), 'content-type': 'application/json' },
      payload: '{"externalId": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.headers['content-type']).toContain('application/problem+json');

    const huge = await h.app.inject({
      method: 'POST',
      url: '/invoices',
      headers: { ...h.auth('collector'), 'content-type': 'application/json' },
      payload: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(huge.statusCode).toBe(413);
    expect(huge.headers['content-type']).toContain('application/problem+json');

    expectProblem(await h.app.inject({ url: '/nowhere' }), 404, 'not-found');
  });
});

describe('invoices and payments', () => {
  it('refuses to re-register an external id with different details (409) and keeps the original', async () => {
    const payload = invoicePayload();
    await register(h.auth('collector'), payload);
    const body = expectProblem(await register(h.auth('collector'), { ...payload, amountTotalMinor: 1 }), 409, 'invoice-conflict');
    expect(body.detail).toContain('amountTotalMinor');
    // The accounting system sends it again after recording a part payment: not silently ignored.
    const lower = expectProblem(await register(h.auth('collector'), { ...payload, amountOutstandingMinor: 40_000 }), 409, 'invoice-conflict');
    expect(lower.detail).toContain('amountOutstandingMinor');
    expect(expectProblem(await register(h.auth('collector'), { ...payload, issueDate: isoDate(-29) }), 409, 'invoice-conflict').detail).toContain('issueDate');
    await h.db.db.insert(collectionPolicies).values({ name: 'gentle', version: 1, definition: { ...defaultPolicy, name: 'gentle' }, createdBy: 'test' }).onConflictDoNothing();
    expect(expectProblem(await register(h.auth('collector'), { ...payload, policy: 'gentle' }), 409, 'invoice-conflict').detail).toContain('policy');
    // The same details, with the default amount outstanding and policy spelled out, are the same registration.
    expect((await register(h.auth('collector'), { ...payload, amountOutstandingMinor: payload.amountTotalMinor, policy: 'default' })).statusCode).toBe(200);
    const [stored] = await h.db.db.select().from(invoices).where(eq(invoices.externalId, payload.externalId));
    expect(stored?.amountTotalMinor).toBe(payload.amountTotalMinor);
  });

  it('changes nothing on a repeated registration, and audits changed customer details', async () => {
    const payload = invoicePayload();
    await register(h.auth('collector'), payload);
    const again = await register(h.auth('collector'), payload);
    expect(again.statusCode).toBe(200);
    const customerEvents = async () =>
      (await h.db.db.select().from(auditEvents).where(eq(auditEvents.type, 'customer.updated'))).filter(
        (e) => e.data.customerExternalId === payload.customer.externalId,
      );
    expect(await customerEvents()).toEqual([]);

    const moved = invoicePayload({ customer: { ...payload.customer, email: 'new-ap@muster.example' } });
    expect((await register(h.auth('collector'), moved)).statusCode).toBe(201);
    const events = await customerEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: 'test-collector', data: { changed: ['email'] } });
    const [customer] = await h.db.db.select().from(customers).where(eq(customers.externalId, payload.customer.externalId));
    expect(customer?.email).toBe('new-ap@muster.example');
  });

  it('answers 404 for an unknown invoice and 422 for a payment in another currency', async () => {
    expectProblem(await h.app.inject({ url: '/invoices/INV-unknown', headers: h.auth('viewer') }), 404, 'invoice-not-found');
    const payload = invoicePayload();
    await register(h.auth('collector'), payload);
    const res = await h.app.inject({
      method: 'POST',
      url: `/invoices/${payload.externalId}/payments`,
      headers: h.auth('collector'),
      payload: { reference: 'usd-1', amountMinor: 100, currency: 'USD' },
    });
    expectProblem(res, 422, 'currency-mismatch');
  });
});

describe('case list', () => {
  it('lists a customer cases largest first, filtered by amount and days overdue, paginated', async () => {
    const base = invoicePayload();
    const customer = { ...base.customer, externalId: `LIST-${base.customer.externalId}` };
    for (const [amount, dueIn] of [[50_000, -40], [300_000, -5], [120_000, -70]] as const) {
      const res = await register(h.auth('collector'), invoicePayload({ amountTotalMinor: amount, dueDate: isoDate(dueIn), issueDate: isoDate(-100), customer }));
      expect(res.statusCode).toBe(201);
    }
    const list = async (query: string) => (await h.app.inject({ url: `/cases?customer=${customer.externalId}&${query}`, headers: h.auth('viewer') })).json();
    const all = await list('');
    expect(all.total).toBe(3);
    expect(all.cases.map((c: { amountOutstandingMinor: number }) => c.amountOutstandingMinor)).toEqual([300_000, 120_000, 50_000]);
    expect(all.cases[1]).toMatchObject({ daysOverdue: 70, customerName: 'Muster GmbH', currency: 'EUR' });
    expect((await list('minAmountMinor=100000')).total).toBe(2);
    expect((await list('minDaysOverdue=30')).cases.map((c: { daysOverdue: number }) => c.daysOverdue)).toEqual([70, 40]);
    const page = await list('limit=1&offset=1');
    expect(page).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.cases[0].amountOutstandingMinor).toBe(120_000);
    expectProblem(await h.app.inject({ url: '/cases?minAmountMinor=5&maxAmountMinor=1', headers: h.auth('viewer') }), 400, 'validation');
    // Days that would make a date the database cannot hold are refused, not a 500.
    for (const query of ['minDaysOverdue=800000', 'maxDaysOverdue=-3000000', 'minDaysOverdue=200000000']) {
      expectProblem(await h.app.inject({ url: `/cases?${query}`, headers: h.auth('viewer') }), 400, 'validation');
    }
    expectProblem(await h.app.inject({ url: '/approvals?minAgeDays=200000000', headers: h.auth('viewer') }), 400, 'validation');
  });
});

describe('health and contract', () => {
  it('reports liveness without dependencies and readiness with them', async () => {
    expect((await h.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await h.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });

  it('answers /readyz with 503 naming the database when it is unreachable', async () => {
    const db = await createTestDb();
    const app = await buildApp({ db, temporal: h.client, taskQueue: 'unused', temporalUiUrl: 'http://localhost:8233' });
    await db.dispose();
    const body = expectProblem(await app.inject({ url: '/readyz' }), 503, 'not-ready');
    expect(body.detail).toContain('database');
    await app.close();
  });

  it('publishes an OpenAPI 3.1 document covering every route, and its UI at /docs', async () => {
    const doc = (await h.app.inject({ url: '/docs/json' })).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/readyz',
        '/invoices',
        '/invoices/{externalId}',
        '/invoices/{externalId}/payments',
        '/invoices/{externalId}/dispute',
        '/approvals',
        '/approvals/{id}/decision',
        '/cases',
        '/webhooks/stripe',
        '/webhooks/{source}',
        '/webhook-events',
        '/webhook-events/{id}',
        '/webhook-events/{id}/match',
      ]),
    );
    expect(doc.paths['/invoices'].post.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['externalId', 'currency', 'amountTotalMinor', 'dueDate', 'customer']),
    );
    // Valid against the OpenAPI 3.1 schema, and every operation documents its success and error bodies.
    const validation = await new Validator().validate(doc);
    expect(validation.errors ?? []).toEqual([]);
    expect(validation.valid).toBe(true);
    type Response = { content?: Record<string, { schema: { required?: string[] } }>; description?: string };
    for (const [route, operations] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, Response> }>>)) {
      for (const [method, operation] of Object.entries(operations)) {
        const codes = Object.keys(operation.responses ?? {});
        expect(codes.some((c) => c.startsWith('2')), `${method} ${route}`).toBe(true);
        if (route !== '/healthz') expect(codes.some((c) => /^[45]/.test(c)), `${method} ${route}`).toBe(true);
        // Each error says when it happens, not "Default Response".
        for (const code of codes.filter((c) => /^[45]/.test(c))) {
          expect(operation.responses[code]!.description, `${method} ${route} ${code}`).not.toBe('Default Response');
          // Documented with the content type it is sent with, so a generated client parses it as a problem.
          expect(Object.keys(operation.responses[code]!.content ?? {}), `${method} ${route} ${code}`).toEqual(['application/problem+json']);
          expect(operation.responses[code]!.content!['application/problem+json']!.schema.required, `${method} ${route} ${code}`).toEqual(
            expect.arrayContaining(['type', 'title', 'status', 'detail']),
          );
        }
      }
    }
    expect(doc.paths['/invoices/{externalId}/payments'].post.responses['202'].description).toContain('queued');
    expect(doc.paths['/invoices/{externalId}/credit-notes'].post.responses['202'].description).toContain('queued');
    expect(doc.paths['/invoices/{externalId}/restart'].post.responses['202'].description).toContain('paused');
    const ui = await h.app.inject({ url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toContain('text/html');
  });
});
