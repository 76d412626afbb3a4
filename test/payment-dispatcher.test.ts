// The payment dispatcher's scheduling on its own: how many stored events it applies at once,
// and that it yields to a busy process without ever stopping. (Applying for real, with the
// database and Temporal, is in webhooks.test.ts and the outage tests.)
import { describe, expect, it } from 'vitest';
import { eventLoopLoad, startDispatcher } from '../api/payment-dispatcher';

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
    const dispatcher = startDispatcher({ what: 'test row', apply: work.apply, claimDue: async () => [] }, { concurrency: 4, isBusy: () => busy });
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

  it('stops yielding to a burst that lasts, once an event has waited longer than maxYieldMs', async () => {
    const work = heldApplies();
    const dispatcher = startDispatcher({ what: 'test row', apply: work.apply, claimDue: async () => [] }, { concurrency: 4, isBusy: () => true, maxYieldMs: 100 });
    for (const claim of claims(0, 8)) dispatcher.wake(claim);
    expect(work.running()).toBe(1);
    await work.finishOne();
    expect(work.running()).toBe(1); // still yielding: nothing has waited 100 ms yet
    await new Promise((resolve) => setTimeout(resolve, 150));
    await work.finishOne();
    expect(work.running()).toBe(4);
    while (work.running() > 0) await work.finishOne();
    expect(work.applied).toHaveLength(8);
    await dispatcher.close();
  });
});

describe('event-loop load', () => {
  const block = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // the event loop is busy, as with a burst of requests
    }
  };
  const sampled = () => new Promise((resolve) => setTimeout(resolve, 120));
  // The sampler's interval fell due during the block, so it runs before a timer set now.
  const afterSample = () => new Promise((resolve) => setTimeout(resolve, 0));

  it('is busy only while requests arrive and the event loop is mostly used', async () => {
    let arrived = true;
    const load = eventLoopLoad(0.5, 50, () => arrived);
    try {
      block(200);
      await afterSample();
      expect(load.isBusy()).toBe(true);
      await sampled(); // an idle window: the loop waited
      expect(load.isBusy()).toBe(false);
      arrived = false;
      block(200);
      await afterSample();
      expect(load.isBusy()).toBe(false); // busy, but with nothing arriving: applying may go at full speed
    } finally {
      load.stop();
    }
  });
});
