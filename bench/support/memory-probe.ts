// Loaded into the worker's process (`node --expose-gc --import tsx --import <this file>`) by the
// sleeping-population benchmark: on "memory" from the parent over the IPC channel, it collects
// garbage and answers with the process's memory, so garbage not yet collected does not count as
// memory the cases hold. The worker itself runs unchanged.
import v8 from 'node:v8';

export type WorkerMemory = { rssBytes: number; heapUsedBytes: number; externalBytes: number; heapLimitBytes: number };

if (process.send) {
  process.on('message', (message) => {
    if (message !== 'memory') return;
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    const heap = v8.getHeapStatistics();
    process.send!({ rssBytes: m.rss, heapUsedBytes: heap.used_heap_size, externalBytes: m.external, heapLimitBytes: heap.heap_size_limit } satisfies WorkerMemory);
  });
  // The channel must not keep the worker alive once it has shut down.
  process.channel?.unref();
}
