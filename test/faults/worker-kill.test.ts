// kill -9 of the worker in the middle of a storm of e-mails, then a new worker: no case is
// lost, every debtor gets the e-mail, and the only e-mails sent twice are ones SendGrid had
// accepted but the dead worker had not yet marked sent (the documented at-least-once window).
import { expect, it } from 'vitest';
import { until } from '../support/until';
import { acceptedByKey, afterTheEmail, expectStormDelivered, markedSent, registerStorm, report, untilAllInStage, useFaultStack } from './support';

const cases = 150;
const faultStack = useFaultStack();

it('loses no case and re-sends only the e-mails in flight when the worker is killed mid-storm', async () => {
  const stack = faultStack();
  const { h } = stack;
  // Registered with no worker polling, so every first e-mail is due at once when one starts.
  const workflowIds = await registerStorm(h, cases, `kill-${Date.now()}`);
  // SendGrid takes a moment to answer, as the real one does: sends are in flight at the kill.
  h.sendgrid.latency(200);

  let worker = await stack.startWorker();
  const firstStartMs = worker.startMs;
  await until('a third of the storm sent', async () => h.sendgrid.messages.length >= cases / 3, 120_000);
  await worker.kill('SIGKILL');
  const killedAt = Date.now();

  // The window: accepted by SendGrid, not marked sent by the dead worker. Nothing changes
  // either set until a worker runs again.
  const acceptedAtKill = new Set(acceptedByKey(h).keys());
  const sentAtKill = await markedSent(h);
  const inFlightAtKill = [...acceptedAtKill].filter((key) => !sentAtKill.has(key));

  worker = await stack.startWorker();
  const recoveredAt = await untilAllInStage(h, workflowIds, afterTheEmail, 240_000);

  const duplicates = await expectStormDelivered(h, workflowIds, afterTheEmail);
  expect(duplicates.filter((key) => !inFlightAtKill.includes(key)), 'e-mails sent twice outside the window').toEqual([]);
  expect(h.sendgrid.messages).toHaveLength(cases + duplicates.length);

  await report('worker kill -9', {
    cases,
    emailsAccepted: h.sendgrid.messages.length,
    acceptedBeforeKill: acceptedAtKill.size,
    acceptedNotMarkedAtKill: inFlightAtKill.length,
    duplicates: duplicates.length,
    workerStartMs: { first: firstStartMs, restart: worker.startMs },
    recoverySeconds: Math.round((recoveredAt - killedAt) / 1000),
  });
});
