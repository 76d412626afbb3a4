// The schema's guarantees, on PGlite or the PostgreSQL server at DATABASE_URL.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordCaseState } from '../activities/case-state';
import { createDb } from '../db/client';
import { auditEvents, collectionCases, customers, invoices, payments } from '../db/schema';
import { createTestDb } from './support/db';

let db: Awaited<ReturnType<typeof createTestDb>>;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db?.dispose();
});

/** A customer and an open invoice of 1.00 EUR, with ids suffixed by `key`. */
async function seedInvoice(key: string) {
  const [customer] = await db.db.insert(customers).values({ externalId: `C-${key}`, name: 'C' }).returning();
  const [invoice] = await db.db
    .insert(invoices)
    .values({
      externalId: `I-${key}`,
      customerId: customer!.id,
      number: key,
      currency: 'EUR',
      amountTotalMinor: 100,
      amountOutstandingMinor: 100,
      issueDate: '2026-01-01',
      dueDate: '2026-01-31',
    })
    .returning();
  return invoice!;
}

describe('database schema', () => {
  it('applies the migrations again without change', async () => {
    await db.migrate();
    const tables = await db.db.execute(sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`);
    const names = (tables as unknown as { rows?: { table_name: string }[] }).rows ?? (tables as unknown as { table_name: string }[]);
    expect(names.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['customers', 'invoices', 'payments', 'collection_cases', 'approvals', 'communications', 'audit_events', 'api_keys']),
    );
  });

  it('keeps the audit trail append-only: updates and deletes are refused', async () => {
    await db.db.insert(auditEvents).values({ actor: 'test', type: 'test.event' });
    const refusal = (err: unknown) => /append-only/.test(String((err as Error).cause ?? err));
    await expect(db.db.update(auditEvents).set({ actor: 'someone else' })).rejects.toSatisfy(refusal);
    await expect(db.db.delete(auditEvents)).rejects.toSatisfy(refusal);
    expect((await db.db.select().from(auditEvents)).map((e) => e.actor)).toEqual(['test']);
  });

  it('stores one payment per provider event id', async () => {
    const invoice = await seedInvoice('db');
    const payment = {
      invoiceId: invoice.id,
      provider: 'stripe',
      providerEventId: 'evt_1',
      amountMinor: 100,
      currency: 'EUR',
      receivedAt: new Date(),
      recordedBy: 'test',
    };
    await db.db.insert(payments).values(payment);
    await expect(db.db.insert(payments).values(payment)).rejects.toThrow();
    const again = await db.db.insert(payments).values(payment).onConflictDoNothing().returning();
    expect(again).toEqual([]);
  });

  it('ignores a case state that arrives after a newer one (a late retry never reopens a case), keeps the invoice status until an outcome, and puts every state on the timeline once', async () => {
    const invoice = await seedInvoice('seq');
    await db.db.insert(collectionCases).values({ invoiceId: invoice.id, workflowId: 'wf-seq', stage: 'Scheduled', amountOutstandingMinor: 100, openingAmountMinor: 100, startsAt: new Date() });
    const state = (seq: number, stage: 'Scheduled' | 'Closed', amount: number) => ({
      workflowId: 'wf-seq',
      seq,
      stage,
      outcome: stage === 'Closed' ? ('paid' as const) : null,
      amountOutstandingMinor: amount,
      nextActionAt: null,
      blockedReason: null,
      at: new Date().toISOString(),
      event: `test.${seq}`,
      data: {},
    });
    // A newer state without an outcome moves the invoice's balance and leaves its status.
    await recordCaseState({ db: db.db }, state(2, 'Scheduled', 60));
    expect((await db.db.select().from(invoices).where(eq(invoices.id, invoice.id)))[0]).toMatchObject({ status: invoice.status, amountOutstandingMinor: 60 });
    await recordCaseState({ db: db.db }, state(5, 'Closed', 0));
    await recordCaseState({ db: db.db }, state(3, 'Scheduled', 100));
    const [row] = await db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, 'wf-seq'));
    expect(row).toMatchObject({ stage: 'Closed', outcome: 'paid', amountOutstandingMinor: 0, stateSeq: 5 });
    const [inv] = await db.db.select().from(invoices).where(eq(invoices.id, invoice.id));
    expect(inv).toMatchObject({ status: 'paid', amountOutstandingMinor: 0 });
    // Both are on the timeline, each once (a retry adds nothing); a state for no case is an error.
    await recordCaseState({ db: db.db }, state(3, 'Scheduled', 100));
    const events = await db.db.select().from(auditEvents).where(eq(auditEvents.caseId, row!.id));
    expect(events.map((e) => [e.type, e.actor, e.invoiceId, e.data]).sort()).toEqual([
      ['test.2', 'workflow', invoice.id, { stage: 'Scheduled', amountOutstandingMinor: 60 }],
      ['test.3', 'workflow', invoice.id, { stage: 'Scheduled', amountOutstandingMinor: 100 }],
      ['test.5', 'workflow', invoice.id, { stage: 'Closed', amountOutstandingMinor: 0 }],
    ]);
    await expect(recordCaseState({ db: db.db }, { ...state(6, 'Closed', 0), workflowId: 'wf-none' })).rejects.toThrow('no collection case for workflow wf-none');
  });

  it('takes the state of a run started afresh (its predecessor gone from Temporal), whose seq starts again at 1, and ignores the predecessor after', async () => {
    const invoice = await seedInvoice('rerun');
    await db.db.insert(collectionCases).values({ invoiceId: invoice.id, workflowId: 'wf-rerun', stage: 'Scheduled', amountOutstandingMinor: 100, openingAmountMinor: 100, startsAt: new Date() });
    const runs = { 'run-a': '2026-11-02T09:00:00.000Z', 'run-b': '2026-11-02T09:05:00.000Z' };
    const state = (seq: number, stage: 'Scheduled' | 'Closed', runId: keyof typeof runs) => ({
      workflowId: 'wf-rerun',
      seq,
      stage,
      outcome: stage === 'Closed' ? ('cancelled' as const) : null,
      amountOutstandingMinor: 100,
      nextActionAt: null,
      blockedReason: null,
      at: new Date().toISOString(),
      event: stage === 'Closed' ? 'case.closed' : 'case.scheduled',
      data: {},
      runId,
      runStartedAt: runs[runId],
    });
    for (const seq of [1, 2, 3]) await recordCaseState({ db: db.db }, state(seq, 'Scheduled', 'run-a'));
    // The server loses the first run; a signal-with-start begins another, which closes at its seq 2.
    await recordCaseState({ db: db.db }, state(1, 'Scheduled', 'run-b'));
    await recordCaseState({ db: db.db }, state(2, 'Closed', 'run-b'));
    // A late retry of the new run's own first write changes nothing.
    await recordCaseState({ db: db.db }, state(1, 'Scheduled', 'run-b'));
    // Nor does the lost run, should the server still fire a timer of it (the dev server did, after a SIGKILL).
    await recordCaseState({ db: db.db }, state(4, 'Scheduled', 'run-a'));
    // Nor a worker on an older bundle that does not date its runs.
    await recordCaseState({ db: db.db }, { ...state(5, 'Scheduled', 'run-a'), runStartedAt: undefined });
    const [row] = await db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, 'wf-rerun'));
    expect(row).toMatchObject({ stage: 'Closed', outcome: 'cancelled', stateSeq: 2, stateRunId: 'run-b' });
    const [inv] = await db.db.select().from(invoices).where(eq(invoices.id, invoice.id));
    expect(inv?.status).toBe('cancelled');
    const closed = await db.db.select().from(auditEvents).where(eq(auditEvents.dedupeKey, 'wf-rerun:run-b:state:2'));
    expect(closed).toHaveLength(1);
  });

  it('takes the state of a run reset from another (its start time is the original\'s)', async () => {
    const invoice = await seedInvoice('reset');
    await db.db.insert(collectionCases).values({ invoiceId: invoice.id, workflowId: 'wf-reset', stage: 'Scheduled', amountOutstandingMinor: 100, openingAmountMinor: 100, startsAt: new Date() });
    const write = (seq: number, stage: 'Scheduled' | 'Blocked', runId: string) =>
      recordCaseState(
        { db: db.db },
        { workflowId: 'wf-reset', seq, stage, outcome: null, amountOutstandingMinor: 100, nextActionAt: null, blockedReason: null, at: new Date().toISOString(), event: 'case.state', data: {}, runId, runStartedAt: '2026-11-02T09:00:00.000Z' },
      );
    await write(4, 'Blocked', 'run-a');
    await write(3, 'Scheduled', 'run-reset');
    const [row] = await db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, 'wf-reset'));
    expect(row).toMatchObject({ stage: 'Scheduled', stateSeq: 3, stateRunId: 'run-reset' });
  });

  it('keeps the newest of many states written at once, with each on the timeline once', async () => {
    const invoice = await seedInvoice('concurrent');
    await db.db.insert(collectionCases).values({ invoiceId: invoice.id, workflowId: 'wf-concurrent', stage: 'Scheduled', amountOutstandingMinor: 1_000, openingAmountMinor: 1_000, startsAt: new Date() });
    // Retries and late attempts of one run, all at once, in a shuffled order (on PostgreSQL, over several connections).
    const seqs = [7, 2, 9, 4, 1, 8, 3, 6, 5, 9, 2, 7];
    await Promise.all(
      seqs.map((seq) =>
        recordCaseState(
          { db: db.db },
          { workflowId: 'wf-concurrent', seq, stage: 'Scheduled', outcome: null, amountOutstandingMinor: 1_000 - seq * 100, nextActionAt: null, blockedReason: null, at: new Date().toISOString(), event: `state.${seq}`, data: {}, runId: 'run-a', runStartedAt: '2026-11-02T09:00:00.000Z' },
        ),
      ),
    );
    const [row] = await db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, 'wf-concurrent'));
    expect(row).toMatchObject({ stateSeq: 9, amountOutstandingMinor: 100 });
    expect((await db.db.select().from(invoices).where(eq(invoices.id, invoice.id)))[0]!.amountOutstandingMinor).toBe(100);
    const events = await db.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.caseId, row!.id));
    expect(events.map((e) => e.type).sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((seq) => `state.${seq}`));
  });

  it("lifts a customer's credit hold when their last two cases close at the same moment (one bank transfer paying both)", async () => {
    // On PostgreSQL the two writes run on two connections at once; each must not take the other for still open.
    for (let round = 0; round < 10; round++) {
      const [customer] = await db.db.insert(customers).values({ externalId: `C-hold-${round}`, name: 'C', creditHoldSince: new Date() }).returning();
      const workflowIds = [`wf-hold-${round}-a`, `wf-hold-${round}-b`];
      for (const workflowId of workflowIds) {
        const [invoice] = await db.db
          .insert(invoices)
          .values({ externalId: `I-${workflowId}`, customerId: customer!.id, number: workflowId, currency: 'EUR', amountTotalMinor: 100, amountOutstandingMinor: 100, issueDate: '2026-01-01', dueDate: '2026-01-31' })
          .returning();
        await db.db.insert(collectionCases).values({ invoiceId: invoice!.id, workflowId, stage: 'Scheduled', amountOutstandingMinor: 100, openingAmountMinor: 100, startsAt: new Date() });
      }
      await Promise.all(
        workflowIds.map((workflowId) =>
          recordCaseState(
            { db: db.db },
            { workflowId, seq: 1, stage: 'Closed', outcome: 'paid', amountOutstandingMinor: 0, nextActionAt: null, blockedReason: null, at: new Date().toISOString(), event: 'case.closed', data: {}, runId: 'run-a', runStartedAt: '2026-11-02T09:00:00.000Z' },
          ),
        ),
      );
      const [after] = await db.db.select().from(customers).where(eq(customers.id, customer!.id));
      expect(after!.creditHoldSince, `round ${round}: the hold stayed on a customer who owes nothing`).toBeNull();
    }
  });

  it('takes a state of another run over a row written before runs were dated', async () => {
    const invoice = await seedInvoice('undated');
    await db.db
      .insert(collectionCases)
      .values({ invoiceId: invoice.id, workflowId: 'wf-undated', stage: 'Scheduled', amountOutstandingMinor: 100, openingAmountMinor: 100, startsAt: new Date(), stateSeq: 5, stateRunId: 'run-a' });
    await recordCaseState(
      { db: db.db },
      { workflowId: 'wf-undated', seq: 1, stage: 'Closed', outcome: 'paid', amountOutstandingMinor: 0, nextActionAt: null, blockedReason: null, at: new Date().toISOString(), event: 'case.closed', data: {}, runId: 'run-b', runStartedAt: '2026-11-02T09:05:00.000Z' },
    );
    const [row] = await db.db.select().from(collectionCases).where(eq(collectionCases.workflowId, 'wf-undated'));
    expect(row).toMatchObject({ stage: 'Closed', stateSeq: 1, stateRunId: 'run-b', stateRunStartedAt: new Date('2026-11-02T09:05:00.000Z') });
  });
});

describe('embedded database', () => {
  it('refuses to open a data folder that another live process holds', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'arrears-lock-'));
    const other = spawn('sleep', ['30']);
    try {
      mkdirSync(path.join(dataDir, 'pglite'), { recursive: true });
      writeFileSync(path.join(dataDir, 'pglite', 'arrears.lock'), String(other.pid));
      await expect(createDb({ DATA_DIR: dataDir })).rejects.toThrow(/in use by process \d+ \(is `npm run dev` running\?\)/);
    } finally {
      other.kill();
    }
    // Once that process is gone, the folder opens.
    await new Promise((resolve) => other.on('exit', resolve));
    const handle = await createDb({ DATA_DIR: dataDir });
    await handle.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe('database process guard', () => {
  /** A process with the entry points' guard, where `thrown` escapes from a setImmediate. */
  function runWithGuard(thrown: string) {
    const code = `
      const { surviveClosedSocketWrites } = require(${JSON.stringify(path.resolve(__dirname, '../db/client.ts'))});
      surviveClosedSocketWrites((m) => console.log(m));
      setImmediate(() => { ${thrown} });
      setTimeout(() => console.log('still running'), 200);`;
    return spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  }

  it('keeps the process running when postgres.js writes to a connection that closed, and ends it on any other uncaught error', () => {
    // The driver's own error (porsager/postgres#1154), as thrown from its deferred write.
    const survived = runWithGuard(`
      const e = new TypeError("Cannot read properties of null (reading 'write')");
      e.stack = e.message + '\\n    at Immediate.nextWrite (/srv/node_modules/postgres/cjs/src/connection.js:255:22)';
      throw e;`);
    expect(survived.stdout).toContain('carrying on');
    expect(survived.stdout).toContain('still running');
    expect(survived.status).toBe(0);

    const other = runWithGuard(`throw new TypeError("Cannot read properties of null (reading 'write')");`);
    expect(other.stdout).not.toContain('still running');
    expect(other.status).toBe(1);
  });
});
