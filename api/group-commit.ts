/**
 * Group commit: calls made while a write is in flight wait and go out together in the next
 * one. With nothing in flight a call is written at once, so a quiet system waits for nothing;
 * under a burst, one statement and one commit (one WAL flush) serve many requests instead of
 * one each (BENCHMARKS.md, webhook ingest).
 */
export type GroupCommitOptions = {
  /** The most items in one write. */
  maxBatch: number;
  /** Writes in flight at once: more than one keeps the pool's connections busy. */
  maxInFlight: number;
  /**
   * Whether a failed write of several items is tried again item by item (default: always).
   * Not when the failure is not the items' fault (the database is away): each would fail too.
   */
  retryAlone?: (error: unknown) => boolean;
};

type Waiting<In, Out> = { item: In; resolve: (out: Out) => void; reject: (err: unknown) => void };

/**
 * `write` takes items and returns one result per item, in their order. If a write of several
 * items fails, each is written again on its own, so that one bad item fails alone.
 */
export function groupCommit<In, Out>(write: (items: In[]) => Promise<Out[]>, options: GroupCommitOptions): (item: In) => Promise<Out> {
  const queue: Waiting<In, Out>[] = [];
  let inFlight = 0;

  // Called through a promise, so that a write that throws at once rejects like one that fails later.
  const run = (items: In[]) => Promise.resolve().then(() => write(items));

  const writeOne = (w: Waiting<In, Out>) =>
    run([w.item]).then(
      ([out]) => w.resolve(out!),
      (err: unknown) => w.reject(err),
    );

  const writeBatch = async (batch: Waiting<In, Out>[]) => {
    if (batch.length === 1) return writeOne(batch[0]!);
    let outs: Out[];
    try {
      outs = await run(batch.map((w) => w.item));
    } catch (err) {
      if (options.retryAlone?.(err) === false) batch.forEach((w) => w.reject(err));
      else await Promise.all(batch.map(writeOne));
      return;
    }
    batch.forEach((w, i) => w.resolve(outs[i]!));
  };

  const pump = () => {
    while (inFlight < options.maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch);
      inFlight++;
      void writeBatch(batch).finally(() => {
        inFlight--;
        pump();
      });
    }
  };

  return (item) =>
    new Promise<Out>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      pump();
    });
}
