// A bank's signed payment webhook and what a test checks after it: shared by the outage tests.
import type { Client } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { expect } from 'vitest';
import { signedHeaders } from '../../api/webhook-signatures';
import type { Database } from '../../db/client';
import { collectionCases, invoices, webhookEvents } from '../../db/schema';
import { collectionWorkflowId } from '../../domain/collection';
import { caseStatusQuery } from '../../workflows/messages';
import { webhookSecrets } from './stack';
import { until } from './until';

/** A delivery to the harness's `bank` source, signed now. */
export function signedBankDelivery(event: object) {
  const raw = JSON.stringify(event);
  return { method: 'POST' as const, url: '/webhooks/bank', headers: signedHeaders(webhookSecrets.bank, raw), payload: raw };
}

export async function storedEvent(db: Database, eventId: string) {
  const [row] = await db.select().from(webhookEvents).where(eq(webhookEvents.eventId, eventId));
  return row;
}

/** The case closed as paid, having counted the money once (a second count would show as overpaid). */
export async function expectPaidOnce(h: { db: { db: Database }; client: Client }, externalId: string) {
  const [row] = await h.db.db.select({ id: invoices.id }).from(invoices).where(eq(invoices.externalId, externalId));
  const closed = await until('the case to close', async () => {
    const [caseRow] = await h.db.db.select().from(collectionCases).where(eq(collectionCases.invoiceId, row!.id));
    return caseRow?.stage === 'Closed' && caseRow;
  });
  expect(closed.outcome).toBe('paid');
  const counted = await h.client.workflow.getHandle(collectionWorkflowId(externalId)).query(caseStatusQuery);
  expect(counted).toMatchObject({ amountOutstandingMinor: 0, overpaidMinor: 0 });
  expect(counted.history.filter((entry) => entry.kind === 'payment')).toHaveLength(1);
}
