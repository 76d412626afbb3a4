// Loaded into the worker's process (`node --expose-gc --require <this file>`) by the
// sleeping-population benchmark: on "memory" from the parent over the IPC channel, it collects
// garbage on the main thread and answers with the process's memory ({ rssBytes, heapUsedBytes,
// externalBytes, heapLimitBytes }), so the main thread's uncollected garbage does not count as
// memory the cases hold. (The workflows live in the SDK's workflow thread, whose heap is in the
// RSS as it is: its garbage is collected on its own schedule.)
// The worker itself runs unchanged. Plain JavaScript: Node options reach the SDK's workflow
// thread too, where a TypeScript loader is not registered (there, process.send is absent).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain CommonJS preload (see above)
const v8 = require('node:v8');

if (process.send) {
  process.on('message', (message) => {
    if (message !== 'memory') return;
    if (global.gc) global.gc();
    const m = process.memoryUsage();
    const heap = v8.getHeapStatistics();
    process.send({ rssBytes: m.rss, heapUsedBytes: heap.used_heap_size, externalBytes: m.external, heapLimitBytes: heap.heap_size_limit });
  });
  // The channel must not keep the worker alive once it has shut down.
  if (process.channel) process.channel.unref();
}
