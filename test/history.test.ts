// History size of a long case, and replay of recorded histories: a change to the workflow
// that would break running cases fails here (wrap such changes in patched()).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectionWorkflowId } from '../domain/collection';
import { caseStatusQuery, decideApprovalUpdate } from '../workflows/messages';
import { invoicePayload, isoDate } from './support/fixtures';
import { historiesDir, replayAndRecord, workflowsPath } from './support/histories';
import { startTimeSkippingHarness } from './support/harness';

let env: TestWorkflowEnvironment;
let h: Awaited<ReturnType<typeof startTimeSkippingHarness>>;

beforeAll(async () => {
  h = await startTimeSkippingHarness();
  env = h.env;
});

afterAll(async () => {
  await h?.stop();
});

describe('workflow history', () => {
  it('keeps a 120-day escalation with two approvals and three partial payments far below Temporal limits, and replays it', async () => {
    const now = new Date(await env.currentTimeMs());
    const payload = invoicePayload({ issueDate: isoDate(-30, now), dueDate: isoDate(0, now), amountTotalMinor: 500_000 });
    await h.app.inject({ method: 'POST', url: '/invoices', headers: h.auth('collector'), payload });
    const handle = env.client.workflow.getHandle(collectionWorkflowId(payload.externalId));
    const pay = (reference: string, amountMinor: number) =>
      h.app.inject({
        method: 'POST',
        url: `/invoices/${payload.externalId}/payments`,
        headers: h.auth('collector'),
        payload: { reference, amountMinor, currency: 'EUR' },
      });
    const decide = async (decision: 'approve' | 'reject') => {
      const { pendingApproval } = await handle.query(caseStatusQuery);
      await handle.executeUpdate(decideApprovalUpdate, {
        args: [{ approvalId: pendingApproval!.approvalId, decision, reason: 'test', decidedBy: { name: 'Anna', role: 'approver' } }],
      });
    };

    await env.sleep('10 days');
    await pay('part-1', 50_000);
    await env.sleep('25 days');
    await pay('part-2', 50_000);
    await env.sleep('26 days'); // day 61: agency referral requested
    await decide('reject'); // continue in-house
    await env.sleep('10 days');
    await pay('part-3', 50_000);
    await env.sleep('20 days'); // day 91: legal action requested
    await decide('approve');
    await env.sleep('29 days'); // day 120
    await pay('rest', 350_000);
    expect(await handle.result()).toMatchObject({ outcome: 'paid', paymentsApplied: 4 });

    // Same code, same history: the workflow is deterministic.
    const history = await replayAndRecord(handle, 'full-escalation-v7');
    const events = history.events?.length ?? 0;
    const largestPayload = Math.max(...(history.events ?? []).map((e) => JSON.stringify(e).length));
    console.log(`full escalation: ${events} events, largest event ${largestPayload} bytes (limits: 50,000 events, 2 MB payload)`);
    expect(events).toBeLessThan(1_000);
    expect(largestPayload).toBeLessThan(64 * 1024);

  });

  it('replays every recorded history with the current workflow code', async () => {
    // Binary protobuf (History.encode), as recorded with RECORD_HISTORIES=1 (test/support/histories.ts).
    const files = existsSync(historiesDir) ? readdirSync(historiesDir).filter((f) => f.endsWith('.bin')) : [];
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const history = temporal.api.history.v1.History.decode(readFileSync(path.join(historiesDir, file)));
      await Worker.runReplayHistory({ workflowsPath }, history, file);
    }
  });
});
