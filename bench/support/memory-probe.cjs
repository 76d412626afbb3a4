// Loaded into the worker's process (`node --expose-gc --require <this file>`) by the
// sleeping-population benchmark: on "memory" from the parent over the IPC channel, it collects
// garbage on every thread and answers with the process's memory ({ rssBytes, heapUsedBytes,
// externalBytes, heapLimitBytes, heapTotalBytes, threadHeapUsedBytes, threadHeapTotalBytes }: the
// totals are what V8 has committed, used or not), so uncollected garbage does not count
// as memory the cases hold.
// The workflows live in the SDK's workflow thread (a worker thread with a V8 heap of its own).
// Node options reach that thread too, so this file runs there as well: there it answers the main
// thread over a BroadcastChannel with its own heap, after its own garbage collection.
// The worker itself runs unchanged. Plain JavaScript: no TypeScript loader is registered in the
// workflow thread.
/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS preload (see above) */
const { readFileSync } = require('node:fs');
const v8 = require('node:v8');
const { isMainThread, threadId, BroadcastChannel } = require('node:worker_threads');

const channelName = 'arrears-memory-probe';
/** How long the main thread waits for the other threads' answers. */
const threadAnswerMs = 2000;

if (!isMainThread) {
  const channel = new BroadcastChannel(channelName);
  channel.onmessage = (event) => {
    if (event.data !== 'collect') return;
    if (global.gc) global.gc();
    const heap = v8.getHeapStatistics();
    channel.postMessage({ threadId, heapUsedBytes: heap.used_heap_size, heapTotalBytes: heap.total_heap_size });
  };
  channel.unref();
} else if (process.send) {
  process.on('message', async (message) => {
    if (message !== 'memory') return;
    const threadHeaps = await collectThreads();
    if (global.gc) global.gc();
    const m = process.memoryUsage();
    const heap = v8.getHeapStatistics();
    process.send({
      rssBytes: m.rss,
      heapUsedBytes: heap.used_heap_size,
      externalBytes: m.external,
      heapLimitBytes: heap.heap_size_limit,
      heapTotalBytes: heap.total_heap_size,
      threadHeapUsedBytes: threadHeaps.reduce((sum, t) => sum + t.heapUsedBytes, 0),
      threadHeapTotalBytes: threadHeaps.reduce((sum, t) => sum + t.heapTotalBytes, 0),
      // 0 would mean the workflow thread did not answer in time (busy): its heap is then not counted.
      threadsAnswered: threadHeaps.length,
      rssByKind: rssByKind(),
    });
  });
  // The channel must not keep the worker alive once it has shut down.
  if (process.channel) process.channel.unref();
}

/** Asks every other thread to collect its garbage; their heaps as they answer within threadAnswerMs. */
function collectThreads() {
  return new Promise((resolve) => {
    const channel = new BroadcastChannel(channelName);
    const answers = [];
    channel.onmessage = (event) => {
      if (event.data && typeof event.data === 'object') answers.push(event.data);
    };
    channel.postMessage('collect');
    setTimeout(() => {
      channel.close();
      resolve(answers);
    }, threadAnswerMs);
  });
}

/**
 * The process's resident memory by the kind of mapping it is in (/proc/self/smaps, Linux):
 * - v8Pages: anonymous mappings of exactly 256 KiB, the size of a V8 heap page (every thread's
 *   heap is made of them; a large object gets a page of its own size and counts as other);
 * - mallocHeap: glibc's main arena ([heap]), where native code's small allocations go (the SDK's
 *   core, V8's own structures, Node);
 * - files: pages of mapped files, mostly the code of the node binary and of the SDK's native core
 *   read in as it first runs (clean pages the kernel can drop and read again);
 * - otherAnonymous: the rest (glibc's other arenas, thread stacks, large objects, V8's code space).
 */
function rssByKind() {
  const kinds = { v8Pages: 0, mallocHeap: 0, files: 0, otherAnonymous: 0 };
  let kind = 'otherAnonymous';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const mapping = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      const size = parseInt(mapping[2], 16) - parseInt(mapping[1], 16);
      const name = mapping[3];
      kind = name.startsWith('/') ? 'files' : name === '[heap]' ? 'mallocHeap' : name === '' && size === 256 * 1024 ? 'v8Pages' : 'otherAnonymous';
    } else if (line.startsWith('Rss:')) {
      kinds[kind] += Number(line.split(/\s+/)[1]) * 1024;
    }
  }
  return kinds;
}
