// A sleeping population: N open cases, each past its first work (case row written twice: started,
// step scheduled) and waiting on a timer two months out. Measures the worker process's memory
// against the same worker idle, what each case costs in the Temporal dev server's SQLite file
// and in PostgreSQL, and how long creating them took.
//   DATABASE_URL=postgres://… npm run bench:sleeping -- 100000      (default 1000 cases)
//
// The path measured: rows written in bulk SQL (1,000 per statement), then every workflow started
// through startCollection, the product's start path (registration and the overdue sweep use it),
// 16 at a time, from this process; the worker runs as in production, in a process of its own
// (`npm run build`, then dist/worker/main.js), with bench/support/memory-probe.cjs loaded to read
// its memory.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { and, count, eq, gte, sql } from 'drizzle-orm';
import { collectionCases } from '../db/schema';
import { createTestDb } from '../test/support/db';
import { isoDate } from '../test/support/fixtures';
import { insertCases, insertPolicy, startCases, until } from './support/cases';
import { checkOpenCases } from '../activities/sweep';
import { loadAverage, machine, startBenchTemporal } from './support/env';
import { fmt } from './support/load';
import { loadConfig } from '../config';
import { startServiceProcess, type ServiceProcess } from '../test/support/service-process';

const cases = Number(process.argv[2] ?? process.env.BENCH_CASES ?? 1000);
const timeoutMinutes = Number(process.env.BENCH_TIMEOUT_MINUTES ?? 120);
/** How long the worker is left alone before its memory is read (idle, and again after the cases sleep). */
const settleMs = Number(process.env.BENCH_SETTLE_SECONDS ?? 30) * 1000;

/** What bench/support/memory-probe.cjs answers. */
type WorkerMemory = {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  heapLimitBytes: number;
  threadHeapUsedBytes: number;
  threadHeapTotalBytes: number;
  threadsAnswered: number;
  /** Resident memory by the kind of mapping it is in (see the probe). */
  rssByKind: Record<'v8Pages' | 'mallocHeap' | 'files' | 'otherAnonymous', number>;
};

const MiB = 2 ** 20;
const mib = (bytes: number) => `${fmt(bytes / MiB)} MiB`;

/** The dev server's SQLite database with its write-ahead log: what it takes on disk. */
function fileBytes(file: string): number {
  return ['', '-wal', '-shm'].reduce((sum, suffix) => {
    try {
      return sum + statSync(file + suffix).size;
    } catch {
      return sum;
    }
  }, 0);
}

/** A few readings a few seconds apart; the median, so one reading mid-task does not decide. */
async function settledMemory(worker: ServiceProcess): Promise<WorkerMemory> {
  await new Promise((r) => setTimeout(r, settleMs));
  const readings: WorkerMemory[] = [];
  for (let i = 0; i < 5; i++) {
    readings.push(await memory(worker));
    await new Promise((r) => setTimeout(r, 2000));
  }
  const median = (pick: (m: WorkerMemory) => number) => readings.map(pick).sort((a, b) => a - b)[2]!;
  const byRss = [...readings].sort((a, b) => a.rssBytes - b.rssBytes);
  return {
    ...readings[0]!,
    rssByKind: byRss[2]!.rssByKind,
    rssBytes: median((m) => m.rssBytes),
    heapUsedBytes: median((m) => m.heapUsedBytes),
    externalBytes: median((m) => m.externalBytes),
    heapTotalBytes: median((m) => m.heapTotalBytes),
    threadHeapUsedBytes: median((m) => m.threadHeapUsedBytes),
    threadHeapTotalBytes: median((m) => m.threadHeapTotalBytes),
  };
}

/** One reading from the probe in the worker's process, after a full garbage collection. */
function memory(worker: ServiceProcess): Promise<WorkerMemory> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('the worker did not report its memory within 60 s')), 60_000);
    const onExit = () => done(new Error('the worker process exited'));
    const onReply = (reply: unknown) => done(undefined, reply as WorkerMemory);
    const done = (error?: Error, reply?: WorkerMemory) => {
      clearTimeout(timer);
      worker.child.off('exit', onExit);
      worker.child.off('message', onReply);
      if (error) reject(error);
      else resolve(reply!);
    };
    worker.child.once('exit', onExit);
    worker.child.once('message', onReply);
    worker.child.send('memory');
  });
}

async function main() {
  if (!process.env.DATABASE_URL) {
    // The embedded PGlite serves one process only; a separate worker process needs a server,
    // as in production (worker/main.ts refuses to start without DATABASE_URL for the same reason).
    throw new Error('set DATABASE_URL to a PostgreSQL server: the worker runs as a process of its own');
  }
  const deadline = performance.now() + timeoutMinutes * 60_000;
  // BENCH_TMPDIR=/dev/shm keeps the dev server's SQLite file off the disk: its size is the same,
  // but each write is not held up by the disk's flushes (the machine's disk is shared too).
  const dir = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'arrears-sleeping-'));
  const sqliteFile = path.join(dir, 'temporal.sqlite');
  const env = await startBenchTemporal({ dbFilename: sqliteFile });
  const database = await createTestDb();
  let worker: ServiceProcess | undefined;
  try {
    const taskQueue = `bench-sleeping-${randomUUID()}`;
    // WORKER_MAX_CACHED_WORKFLOWS from this environment reaches the worker, to compare cache sizes.
    const workerEnv = { DATABASE_URL: database.url!, TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: taskQueue };
    const maxCachedWorkflows = loadConfig({ ...process.env, ...workerEnv }).WORKER_MAX_CACHED_WORKFLOWS;
    worker = await startServiceProcess('worker', {
      code: 'built',
      env: workerEnv,
      // BENCH_WORKER_NODE_FLAGS: V8 or Node flags for the worker process, to compare settings.
      execArgv: [...(process.env.BENCH_WORKER_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), '--expose-gc', '--require', require.resolve('./support/memory-probe.cjs')],
      ipc: true,
    });
    const idle = await settledMemory(worker);
    const idleLoad = loadAverage();

    // postgres.js returns the rows as an array (this benchmark runs on PostgreSQL only).
    const dbBytes = async () => Number(((await database.db.execute(sql`select pg_database_size(current_database()) as bytes`)) as unknown as { bytes: string }[])[0]!.bytes);
    const sqliteBefore = fileBytes(sqliteFile);
    const dbBefore = await dbBytes();

    // One e-mail step 30 days after a due date 30 days ahead: each case writes its state twice
    // and then sleeps on a timer about 60 days long.
    const policy = await insertPolicy(database.db, {
      name: 'sleeping',
      version: 1,
      steps: [{ id: 'day-30', offsetDays: 30, action: 'email', template: 'firm_reminder', tone: 'firm' }],
    });
    // In chunks of 1,000 (rows, then their starts), so that a run out of creation time
    // (BENCH_CREATE_MINUTES) stops at a chunk's end and measures the cases it has.
    const createUntil = performance.now() + Number(process.env.BENCH_CREATE_MINUTES ?? timeoutMinutes / 2) * 60_000;
    let created = 0;
    let rowsSeconds = 0;
    const asleep = async () =>
      (
        await database.db
          .select({ n: count() })
          .from(collectionCases)
          .where(and(eq(collectionCases.stage, 'Scheduled'), gte(collectionCases.stateSeq, 2)))
      )[0]!.n;
    const t1 = performance.now();
    const progress = setInterval(() => {
      void asleep().then((n) => console.error(`  … ${created} started, ${n} asleep after ${fmt((performance.now() - t1) / 1000, 0)} s, load ${loadAverage()}`));
    }, 60_000);
    let startSeconds = 0;
    let retriedStarts = 0;
    try {
      while (created < cases && performance.now() < createUntil) {
        const t0 = performance.now();
        const chunk = Math.min(1000, cases - created);
        const stored = await insertCases(database.db, { count: chunk, policyId: policy.id, dueDate: isoDate(30), timeZone: 'Europe/Berlin' });
        rowsSeconds += (performance.now() - t0) / 1000;
        retriedStarts += await startCases({ db: database.db, temporal: env.client, taskQueue }, stored, 16);
        created += chunk;
        // Starts are cheaper than the worker's first task for each case: keep at most two
        // chunks ahead of it, so the cases made when creation time runs out are soon asleep.
        while (performance.now() < createUntil && (await asleep()) < created - 2000) await new Promise((r) => setTimeout(r, 1000));
      }
      startSeconds = (performance.now() - t1) / 1000;
      await until(async () => (await asleep()) >= created, deadline, `${created} cases asleep`, 2000);
    } finally {
      clearInterval(progress);
    }
    const asleepSeconds = (performance.now() - t1) / 1000;
    const createLoad = loadAverage();

    const after = await settledMemory(worker);
    const afterLoad = loadAverage();

    // The overdue sweep's check of open cases over this population: one run's batch.
    const checkStarted = performance.now();
    const check = await checkOpenCases({ db: database.db, temporal: env.client, taskQueue }, { asOf: new Date().toISOString(), limit: Math.min(500, created) });
    const checkSeconds = (performance.now() - checkStarted) / 1000;
    const sqliteAfter = fileBytes(sqliteFile);
    const dbAfter = await dbBytes();

    const ratio = after.rssBytes / idle.rssBytes;
    console.log(`Sleeping population, ${machine()}, ${created} cases${created < cases ? ` (of ${cases} asked: creation time ran out)` : ''}`);
    console.log(`  worker options               maxCachedWorkflows ${maxCachedWorkflows} (heap limit ${mib(idle.heapLimitBytes)})`);
    console.log(`  rows written (bulk SQL)      ${fmt(rowsSeconds)} s in all`);
    console.log(`  workflows started           ${fmt(startSeconds)} s (${fmt(created / startSeconds, 0)} /s through startCollection, 16 at a time; ${retriedStarts} retried by the client)`);
    console.log(`  all asleep (state written)   ${fmt(asleepSeconds)} s after the first start (${fmt(created / asleepSeconds, 0)} cases/s), load ${createLoad}`);
    const heaps = (m: WorkerMemory) =>
      `heaps used (committed): main ${mib(m.heapUsedBytes)} (${mib(m.heapTotalBytes)}), workflow thread ${mib(m.threadHeapUsedBytes)} (${mib(m.threadHeapTotalBytes)}) (${m.threadsAnswered} thread answered); main thread's buffers outside its heap ${mib(m.externalBytes)}`;
    console.log(`  worker idle                  RSS ${mib(idle.rssBytes)}, ${heaps(idle)}, load ${idleLoad}`);
    console.log(`  worker, ${created} asleep     RSS ${mib(after.rssBytes)}, ${heaps(after)}, load ${afterLoad}`);
    const kinds = (Object.keys(idle.rssByKind) as (keyof WorkerMemory['rssByKind'])[]).map(
      (kind) => `${kind} ${mib(idle.rssByKind[kind])} → ${mib(after.rssByKind[kind])} (${after.rssByKind[kind] >= idle.rssByKind[kind] ? '+' : ''}${mib(after.rssByKind[kind] - idle.rssByKind[kind])})`,
    );
    console.log(`  RSS by kind of mapping       ${kinds.join(', ')}`);
    console.log(`  memory ratio                 ${fmt(ratio, 2)}× idle RSS, ${fmt(after.heapUsedBytes / idle.heapUsedBytes, 2)}× idle heap (target ≤ 1.2×)`);
    console.log(`  Temporal SQLite per case     ${fmt((sqliteAfter - sqliteBefore) / created / 1024, 2)} KiB (${mib(sqliteAfter)} in all)`);
    console.log(`  PostgreSQL per case          ${fmt((dbAfter - dbBefore) / created / 1024, 2)} KiB (${mib(dbAfter)} in all)`);
    console.log(`  sweep's check of open cases  ${check.checked} checked in ${fmt(checkSeconds, 2)} s (${fmt(check.checked / checkSeconds, 0)} /s, 8 at a time), ${check.gone.length} gone, ${check.unanswered} unanswered`);
  } finally {
    await worker?.stop();
    await env.teardown();
    await database.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
