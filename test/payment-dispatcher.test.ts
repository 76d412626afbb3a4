// The payment dispatcher's scheduling on its own: how many stored events it applies at once,
// and that it yields to a busy process without ever stopping. (Applying for real, with the
// database and Temporal, is in webhooks.test.ts and the outage tests.)
import { describe, expect, it } from 'vitest';
import { startDispatcher } from '../api/payment-dispatcher';

/** Applies that finish only when the test says so, counting how many run at once. */
function heldApplies() {
  const waiting: (() => void)[] = [];
  const applied: string[] = [];
  return {
    applied,
    running: () => waiting.length,
    apply: (claim: { id: string }) =>
      new Promise<void>((resolve) => {
        waiting.push(() => {
          applied.push(claim.id);
          resolve();
        });
      }),
    /** Finishes the oldest apply and lets the dispatcher react. */
    async finishOne() {
      waiting.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

const claims = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ id: `event-${from + i}`, token: 'token' }));

describe('payment dispatcher', () => {
  it('applies up to its concurrency at once, one at a time while the process is busy, and catches up after', async () => {
    const work = heldApplies();
    let busy = false;
    const dispatcher = startDispatcher({ apply: work.apply, claimDue: async () => [] }, { concurrency: 4, isBusy: () => busy });
    for (const claim of claims(0, 6)) dispatcher.wake(claim);
    expect(work.running()).toBe(4);

    // A burst of requests: what is running finishes, and then one event at a time.
    busy = true;
    for (const claim of claims(6, 4)) dispatcher.wake(claim);
    const runningWhileBusy: number[] = [];
    for (let i = 0; i < 6; i++) {
      await work.finishOne();
      runningWhileBusy.push(work.running());
    }
    expect(runningWhileBusy).toEqual([3, 2, 1, 1, 1, 1]);
    expect(work.applied).toHaveLength(6);

    // The burst is over: the rest go at full concurrency again.
    busy = false;
    await work.finishOne();
    expect(work.running()).toBe(3);
    while (work.running() > 0) await work.finishOne();
    expect(work.applied).toEqual(claims(0, 10).map((c) => c.id));
    await dispatcher.close();
  });
});
