// SendGrid answering 500 to every send during a storm, then 200: the sends are retried with
// backoff (the case waits, it is not blocked), and once SendGrid is back every debtor gets
// the e-mail exactly once: a 500 means SendGrid took nothing, so a retry cannot duplicate.
import { expect, it } from 'vitest';
import { collectionCases } from '../../db/schema';
import { until } from '../support/until';
import { afterTheEmail, expectStormDelivered, registerStorm, report, untilAllInStage, useFaultStack } from './support';

const cases = 100;
const faultStack = useFaultStack();

it('delivers every e-mail exactly once after SendGrid answers 500 for a while', async () => {
  const stack = faultStack();
  const { h } = stack;
  const prefix = `sg500-${Date.now()}`;
  const workflowIds = await registerStorm(h, cases, prefix);
  const recipients = workflowIds.map((_, i) => `${prefix}-${i}@debtor.example`);
  const refusals = (to: string) => h.sendgrid.requests.filter((r) => r.to === to && r.status === 500).length;

  h.sendgrid.outage(500);
  const outageFrom = Date.now();
  await stack.startWorker();
  // Down until every debtor's e-mail has been refused twice: the retry policy, not luck, brings them through.
  await until('every e-mail refused twice', async () => recipients.every((to) => refusals(to) >= 2), 180_000);

  // Meanwhile the cases wait for the retry: none is blocked, none has moved on without its e-mail.
  const during = await h.db.db.select({ stage: collectionCases.stage }).from(collectionCases);
  expect(during.filter((c) => c.stage !== 'Scheduled')).toEqual([]);

  h.sendgrid.outage(null);
  const liftedAt = Date.now();
  const deliveredAt = await untilAllInStage(h, workflowIds, afterTheEmail, 180_000);

  const duplicates = await expectStormDelivered(h, workflowIds, afterTheEmail);
  expect(duplicates).toEqual([]);
  expect(h.sendgrid.messages).toHaveLength(cases);
  const refused = h.sendgrid.requests.filter((r) => r.status === 500).length;

  await report('SendGrid 500 then 200', {
    cases,
    outageSeconds: Math.round((liftedAt - outageFrom) / 1000),
    refused500: refused,
    emailsAccepted: h.sendgrid.messages.length,
    duplicates: duplicates.length,
    secondsToDeliverAllAfterRecovery: Math.round((deliveredAt - liftedAt) / 1000),
  });
});
