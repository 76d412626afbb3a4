// The bad-input sweep over the OpenAPI contract: every route that changes state gets random
// bodies, and valid bodies with one field broken (wrong type, negative, fractional, huge,
// missing), with real and made-up path parameters. None may answer 5xx, every refusal is
// problem+json, and a refused request changes nothing in the database.
import fc from 'fast-check';
import { and, count, eq, notLike } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as schema from '../db/schema';
import { invoicePayload, isoDate } from './support/fixtures';
import { startDevServerHarness } from './support/harness';

let h: Awaited<ReturnType<typeof startDevServerHarness>>;
let target: string;

beforeAll(async () => {
  h = await startDevServerHarness();
  const payload = invoicePayload();
  target = payload.externalId;
  expect((await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('admin'), payload })).statusCode).toBe(201);
});

afterAll(async () => {
  await h?.stop();
});

// The target case's own workflow writes in the background (its state, audit events by
// "workflow", and the disputes list in the name of whoever opened one), so audit events
// are counted for what the API writes in the caller's name.
const tables: Record<string, PgTable> = {
  customers: schema.customers,
  invoices: schema.invoices,
  payments: schema.payments,
  collection_cases: schema.collectionCases,
  webhook_events: schema.webhookEvents,
  invoice_adjustments: schema.invoiceAdjustments,
  approvals: schema.approvals,
  api_keys: schema.apiKeys,
  sessions: schema.sessions,
};

async function rowCounts(): Promise<Record<string, number>> {
  const entries = await Promise.all(Object.entries(tables).map(async ([name, table]) => [name, (await h.db.db.select({ n: count() }).from(table))[0]!.n] as const));
  const [audit] = await h.db.db.select({ n: count() }).from(schema.auditEvents).where(and(eq(schema.auditEvents.actor, 'test-admin'), notLike(schema.auditEvents.type, 'dispute.%')));
  return { ...Object.fromEntries(entries), audit_events_by_caller: audit!.n };
}

/** A valid body per route, so that one broken field is the only thing wrong with it. */
function validBody(path: string): Record<string, unknown> | undefined {
  const examples: Record<string, Record<string, unknown>> = {
    '/invoices': invoicePayload() as unknown as Record<string, unknown>,
    '/invoices/{externalId}/payments': { reference: `fuzz-${Math.random()}`, amountMinor: 100, currency: 'EUR' },
    '/invoices/{externalId}/dispute': { reason: 'goods damaged' },
    '/invoices/{externalId}/promise': { promisedDate: isoDate(10), amountMinor: 1000 },
    '/invoices/{externalId}/payment-plan': { instalments: [{ dueDate: isoDate(10), amountMinor: 1000 }] },
    '/invoices/{externalId}/settlement': { amountMinor: 1000, payBy: isoDate(10) },
    '/invoices/{externalId}/pause': { reason: 'customer in administration' },
    '/invoices/{externalId}/credit-notes': { amountMinor: 100, currency: 'EUR', reason: 'two pallets damaged' },
    '/approvals/{id}/decision': { decision: 'approve', reason: 'no answer to five contacts' },
    '/webhook-events/{id}/match': { invoiceExternalId: 'INV-1' },
  };
  return examples[path];
}

const brokenValue = fc.oneof(
  fc.constant(null),
  fc.constant(-1),
  fc.constant(12.5),
  fc.constant(Number.MAX_SAFE_INTEGER + 2),
  fc.constant(''),
  fc.constant('x'.repeat(5000)),
  fc.constant('EURO'),
  // Valid JSON that PostgreSQL cannot store (text and jsonb hold no U+0000).
  fc.constant('nul \u0000 inside'),
  fc.constant('2026-13-45'),
  fc.constant([]),
  fc.constant({}),
  fc.string(),
  fc.integer(),
  fc.boolean(),
);

function bodyFor(path: string) {
  const valid = validBody(path);
  const random = fc.oneof(fc.object(), fc.jsonValue(), fc.array(fc.jsonValue()));
  if (!valid) return random;
  const keys = Object.keys(valid);
  const broken = fc.record({ key: fc.constantFrom(...keys), value: brokenValue, drop: fc.boolean() }).map(({ key, value, drop }) => {
    const copy: Record<string, unknown> = { ...valid };
    if (drop) delete copy[key];
    else copy[key] = value;
    return copy;
  });
  return fc.oneof(broken, random);
}

const paramValue = (name: string) =>
  name === 'externalId'
    ? fc.oneof(fc.constant(() => target), fc.string({ minLength: 1, maxLength: 80 }).map((s) => () => s))
    : fc.oneof(fc.uuid().map((u) => () => u), fc.string({ minLength: 1, maxLength: 40 }).map((s) => () => s));

/** Waits until the row counts have not changed for half a second (at most 10 s). */
async function quiet(): Promise<void> {
  let last = JSON.stringify(await rowCounts());
  for (const giveUpAt = Date.now() + 10_000; Date.now() < giveUpAt; ) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = JSON.stringify(await rowCounts());
    if (now === last) return;
    last = now;
  }
}

it('answers random and broken input on every state-changing route without a 5xx, and a refusal changes nothing', async () => {
  const doc = (await h.app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, { requestBody?: unknown }>> };
  const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.keys(methods)
      .filter((m) => m === 'post' || m === 'patch')
      .map((method) => ({ path, method: method.toUpperCase() as 'POST' | 'PATCH' })),
  );
  expect(operations.length).toBeGreaterThan(15);
  let requests = 0;
  for (const { path, method } of operations) {
    const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    await fc.assert(
      fc.asyncProperty(bodyFor(path), fc.tuple(...params.map(paramValue)), async (body, values) => {
        let url = path;
        params.forEach((name, i) => (url = url.replace(`{${name}}`, encodeURIComponent(values[i]!()))));
        const before = await rowCounts();
        const res = await h.app.inject({
          method,
          url,
          headers: { ...h.auth('admin'), 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        });
        requests++;
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(body).slice(0, 300)} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
        if (res.statusCode >= 400) {
          expect(res.headers['content-type'], `${method} ${url}`).toContain('application/problem+json');
          expect(await rowCounts(), `${method} ${url} ${JSON.stringify(body).slice(0, 300)} → ${res.statusCode}`).toEqual(before);
        } else {
          // An accepted command has effects that follow it (a settlement's approval request):
          // they must not land in the next refusal's before-and-after.
          await quiet();
        }
      }),
      { numRuns: 25 },
    );
  }
  expect(requests).toBeGreaterThan(400);
}, 300_000);
