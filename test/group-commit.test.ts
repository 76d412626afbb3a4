// Group commit on its own, with a write that records what it was given: the webhook tests
// (webhooks.test.ts) prove it end to end against the database.
import { describe, expect, it } from 'vitest';
import { groupCommit } from '../api/group-commit';

/** Lets the writes asked for so far begin (each is called from a promise). */
const tick = () => new Promise((r) => setTimeout(r, 0));

/** A write that holds each call until released, recording the batches it was given. */
function heldWrite(fail: (item: number) => boolean = () => false) {
  const batches: number[][] = [];
  const pending: (() => void)[] = [];
  const write = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      batches.push(items);
      pending.push(() => (items.some(fail) ? reject(new Error(`bad item in ${items.join(',')}`)) : resolve(items.map((i) => `stored ${i}`))));
    });
  const releaseAll = async () => {
    await tick();
    while (pending.length > 0) {
      pending.splice(0).forEach((release) => release());
      await tick();
    }
  };
  return { write, batches, releaseAll };
}

describe('group commit', () => {
  it('writes a call at once when nothing is in flight, and the calls that arrive meanwhile together', async () => {
    const w = heldWrite();
    const store = groupCommit(w.write, { maxBatch: 3, maxInFlight: 1 });
    const results = [1, 2, 3, 4, 5, 6].map((i) => store(i));
    await tick();
    expect(w.batches).toEqual([[1]]);
    await w.releaseAll();
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4, 5, 6].map((i) => `stored ${i}`));
    expect(w.batches).toEqual([[1], [2, 3, 4], [5, 6]]);
  });

  it('keeps up to maxInFlight writes going at once', async () => {
    const w = heldWrite();
    const store = groupCommit(w.write, { maxBatch: 100, maxInFlight: 2 });
    const results = [1, 2, 3, 4].map((i) => store(i));
    await tick();
    expect(w.batches).toEqual([[1], [2]]);
    await w.releaseAll();
    await Promise.all(results);
    expect(w.batches).toEqual([[1], [2], [3, 4]]);
  });

  it('writes each item of a failed batch again on its own, so only the bad one fails', async () => {
    const w = heldWrite((i) => i === 3);
    const store = groupCommit(w.write, { maxBatch: 10, maxInFlight: 1 });
    const results = Promise.allSettled([1, 2, 3, 4].map((i) => store(i)));
    await w.releaseAll();
    const settled = await results;
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : 'failed'))).toEqual(['stored 1', 'stored 2', 'failed', 'stored 4']);
    expect(w.batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
  });

  it('fails the whole batch at once when the failure is not the items\' fault', async () => {
    const w = heldWrite(() => true);
    const store = groupCommit(w.write, { maxBatch: 10, maxInFlight: 1, retryAlone: () => false });
    const results = Promise.allSettled([1, 2, 3].map((i) => store(i)));
    await w.releaseAll();
    expect((await results).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(w.batches).toEqual([[1], [2, 3]]);
  });

  it('rejects, not throws, when the write throws before it returns a promise', async () => {
    const store = groupCommit<number, string>(
      () => {
        throw new Error('no connection');
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    await expect(store(1)).rejects.toThrow('no connection');
  });
});
