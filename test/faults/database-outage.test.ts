// The worker's database unreachable for 30 s in the middle of a storm of e-mails: the
// activities that read the case and write communications and case state fail while it is
// away and are retried; once it is back, every step is done, every debtor has the e-mail
// once, and every case is where it should be.
import { expect, it } from 'vitest';
import { until } from '../support/until';
import { afterTheEmail, expectStormDelivered, markedSent, registerStorm, report, untilAllInStage, useFaultStack } from './support';

const cases = 100;
const outageMs = 30_000;
const faultStack = useFaultStack();

it('completes every step once after the worker loses its database for 30 s mid-storm', async () => {
  const stack = faultStack();
  const { h, proxy } = stack;
  const workflowIds = await registerStorm(h, cases, `dbout-${Date.now()}`);
  h.sendgrid.latency(200);
  const worker = await stack.startWorker();
  await until('a fifth of the storm sent', async () => h.sendgrid.messages.length >= cases / 5, 120_000);

  await proxy.cut();
  const cutAt = Date.now();
  const acceptedAtCut = h.sendgrid.messages.length;
  const sentAtCut = (await markedSent(h)).size;
  // The 30 s are the requirement; nothing is checked during them but what the worker may not do.
  await new Promise((resolve) => setTimeout(resolve, outageMs));
  const sentDuringOutage = (await markedSent(h)).size - sentAtCut;
  const acceptedDuringOutage = h.sendgrid.messages.length - acceptedAtCut;
  await proxy.restore();
  const restoredAt = Date.now();

  const recoveredAt = await untilAllInStage(h, workflowIds, afterTheEmail, 240_000);
  const duplicates = await expectStormDelivered(h, workflowIds, afterTheEmail);
  expect(sentDuringOutage).toBe(0);
  expect(duplicates, 'e-mails sent twice').toEqual([]);
  expect(h.sendgrid.messages).toHaveLength(cases);
  expect(worker.isRunning(), 'the worker survived the outage').toBe(true);

  await report('worker database unreachable 30 s', {
    cases,
    outageSeconds: Math.round((restoredAt - cutAt) / 1000),
    acceptedBeforeCut: acceptedAtCut,
    acceptedDuringOutage,
    emailsAccepted: h.sendgrid.messages.length,
    duplicates: duplicates.length,
    secondsToRecoverAfterRestore: Math.round((recoveredAt - restoredAt) / 1000),
  });
});
