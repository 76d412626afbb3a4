// The worker's database goes silent (its connections stay open and nothing is answered, as when
// a server hangs or a network drops packets) while a storm of cases starts, and the worker is
// stopped as a deployment stops it (SIGTERM): its work in hand never ends, yet the process
// exits within its stop limit instead of hanging the deploy. Once the database answers again,
// a new worker sends every debtor the e-mail once, and every case is where it should be.
import { expect, it } from 'vitest';
import { workerStopLimitMs } from '../../worker/create-worker';
import { afterTheEmail, expectStormDelivered, registerStorm, report, untilAllInStage, useFaultStack } from './support';

const cases = 20;
const faultStack = useFaultStack();

it('stops a worker whose database went silent within its stop limit, and loses nothing', async () => {
  const stack = faultStack();
  const { h, proxy } = stack;
  const first = await stack.startWorker();
  proxy.freeze();
  const workflowIds = await registerStorm(h, cases, `silent-${Date.now()}`);
  // The cases' first state writes and e-mails now wait on the silent database.
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  expect(h.sendgrid.messages, 'e-mails sent while the database was silent').toEqual([]);

  const stopAskedAt = Date.now();
  const code = await Promise.race([first.kill('SIGTERM'), new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), workerStopLimitMs + 5_000))]);
  const stopMs = Date.now() - stopAskedAt;
  // Not a clean stop (work was left in hand), but a stop.
  expect(code, `the worker after SIGTERM; its log ends:\n${first.output().slice(-4_000)}`).not.toBe('still running');
  expect(code).not.toBe(0);

  proxy.thaw();
  const restartedAt = Date.now();
  await stack.startWorker();
  const recoveredAt = await untilAllInStage(h, workflowIds, afterTheEmail, 240_000);
  const duplicates = await expectStormDelivered(h, workflowIds, afterTheEmail);
  expect(duplicates, 'e-mails sent twice').toEqual([]);
  expect(h.sendgrid.messages).toHaveLength(cases);

  await report('worker database silent, then SIGTERM', {
    cases,
    stopSeconds: Math.round(stopMs / 1000),
    exitCode: code,
    emailsAccepted: h.sendgrid.messages.length,
    duplicates: duplicates.length,
    secondsToDeliverAfterRestart: Math.round((recoveredAt - restartedAt) / 1000),
  });
});
