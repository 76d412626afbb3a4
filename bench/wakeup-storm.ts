// Wake-up storm: N cases whose first e-mail falls due at the same instant, against the local
// SendGrid-compatible server answering 429 (with X-RateLimit-Reset) above a per-second limit.
// Checks that every case's e-mail is delivered exactly once and measures the accepted send
// rate during the storm against the limit, and the time to drain.
//   npm run bench:storm -- 10000     (default 200 cases; BENCH_SENDGRID_PER_SECOND=20; 0: no limit)
//   DATABASE_URL=postgres://… BENCH_SHAPE=production npm run bench:storm -- 10000
//
// How the cases wake together: each case is registered two days after its day-1 e-mail, so it
// starts at that step at once (the late-start rule), and the step waits for the debtor's
// contact window. Every debtor is in one time zone whose window opens at the storm instant
// (the first whole minute after BENCH_LEAD_SECONDS), so all the timers fire at that minute,
// as on a Monday 09:00 after a weekend. Cases are made as in the sleeping-population benchmark:
// rows in bulk SQL, workflows started through startCollection; the worker and the API run in
// this process as in `npm run dev`, or each in a process of its own with BENCH_SHAPE=production.
import { and, count, eq, gte } from 'drizzle-orm';
import { collectionCases, communications } from '../db/schema';
import { isoDate } from '../test/support/fixtures';
import { insertCases, insertPolicy, startCases, until } from './support/cases';
import { loadAverage, machine, startBenchStack } from './support/env';
import { fmt } from './support/load';
import { cpuMeter, cpuPerItem, totalCpu } from './support/processes';

const cases = Number(process.argv[2] ?? process.env.BENCH_CASES ?? 200);
const limit = Number(process.env.BENCH_SENDGRID_PER_SECOND ?? 20);
/** Time to create every case before the storm; too short and the run stops with a message. */
const leadSeconds = Number(process.env.BENCH_LEAD_SECONDS ?? Math.max(60, Math.ceil(cases / 8)));
const timeoutMinutes = Number(process.env.BENCH_TIMEOUT_MINUTES ?? 90);

const MINUTE = 60_000;
const pad = (n: number) => String(n).padStart(2, '0');

/**
 * A fixed-offset zone in which `instant` is around midday, so a contact window can open exactly
 * then and still lie within 08:00–21:00 local time, as every policy's window must.
 */
function zoneAtMidday(instant: Date): { timeZone: string; localStart: string } {
  let offset = 12 - instant.getUTCHours();
  if (offset < -12) offset += 24;
  if (offset > 14) offset -= 24;
  // IANA's Etc zones have the sign inverted: Etc/GMT-3 is three hours ahead of UTC.
  const timeZone = offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
  const local = new Date(instant.getTime() + offset * 3_600_000);
  return { timeZone, localStart: `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}` };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function main() {
  const deadline = performance.now() + timeoutMinutes * MINUTE;
  const stack = await startBenchStack();
  try {
    const { db } = stack.db;
    const stormAt = new Date(Math.ceil((Date.now() + leadSeconds * 1000) / MINUTE) * MINUTE);
    const { timeZone, localStart } = zoneAtMidday(stormAt);
    const policy = await insertPolicy(db, {
      name: 'storm',
      version: 1,
      contactWindow: { weekdays: [1, 2, 3, 4, 5, 6, 7], start: localStart, end: '21:00' },
      steps: [{ id: 'day-1', offsetDays: 1, action: 'email', template: 'courtesy_reminder', tone: 'friendly' }],
    });

    const t0 = performance.now();
    const stored = await insertCases(db, { count: cases, policyId: policy.id, dueDate: isoDate(-3), timeZone });
    await startCases({ db, temporal: stack.client, taskQueue: stack.taskQueue }, stored, 16);
    const scheduled = async () =>
      (await db.select({ n: count() }).from(collectionCases).where(and(gte(collectionCases.stateSeq, 2), eq(collectionCases.nextActionAt, stormAt))))[0]!.n;
    await until(async () => (await scheduled()) >= cases || Date.now() >= stormAt.getTime(), deadline, 'the cases to be scheduled');
    const createdSeconds = (performance.now() - t0) / 1000;
    const ready = await scheduled();
    if (ready < cases) {
      throw new Error(`only ${ready} of ${cases} cases were waiting for the storm instant in time: raise BENCH_LEAD_SECONDS (was ${leadSeconds})`);
    }
    console.error(`  ${cases} cases created in ${fmt(createdSeconds)} s; the storm starts at ${stormAt.toISOString()} (${timeZone} ${localStart}), in ${fmt((stormAt.getTime() - Date.now()) / 1000, 0)} s`);

    if (limit > 0) stack.sendgrid.rateLimit({ perSecond: limit });
    // Where the CPU goes from here to the end of the storm (this is just before the instant).
    const spent = await cpuMeter(stack);
    const sentInDb = async () => (await db.select({ n: count() }).from(communications).where(eq(communications.status, 'sent')))[0]!.n;
    const stages = async () => db.select({ stage: collectionCases.stage, n: count() }).from(collectionCases).groupBy(collectionCases.stage);
    /** Cases past the step: sent and moved on, or blocked because the send failed for good. */
    const afterStep = async () => (await stages()).reduce((sum, s) => sum + (s.stage === 'AwaitingPayment' || s.stage === 'Blocked' ? s.n : 0), 0);
    const progress = setInterval(() => {
      void stages().then((s) => console.error(`  … ${stack.sendgrid.messages.length} accepted, ${JSON.stringify(Object.fromEntries(s.map((r) => [r.stage, r.n])))}, load ${loadAverage()}`));
    }, 30_000);
    try {
      // Done when every case is past its step; then a short wait, so a late duplicate is counted.
      await until(async () => (await afterStep()) >= cases, deadline, 'the storm to drain', 1000);
      await new Promise((r) => setTimeout(r, 5000));
    } finally {
      clearInterval(progress);
    }
    const drainLoad = loadAverage();
    const stormCpu = await spent();

    const { messages, requests } = stack.sendgrid;
    const keys = new Set(messages.map((m) => m.body.custom_args?.idempotencyKey));
    const start = stormAt.getTime();
    const lastAccepted = Math.max(...messages.map((m) => m.at));
    const drainSeconds = (lastAccepted - start) / 1000;
    const refused = requests.filter((r) => r.status === 429).length;
    // Accepted per one-second window, from the storm instant to the last acceptance.
    const perSecond = Array.from({ length: Math.ceil(drainSeconds) }, () => 0);
    for (const m of messages) perSecond[Math.min(perSecond.length - 1, Math.floor((m.at - start) / 1000))]! += 1;
    const fullWindows = perSecond.slice(0, -1).sort((a, b) => a - b);
    const rate = messages.length / drainSeconds;
    const byStage = Object.fromEntries((await stages()).map((s) => [s.stage, s.n]));

    console.log(`Wake-up storm, ${machine()}, ${stack.shape} shape, ${cases} cases due at one instant, SendGrid limit ${limit > 0 ? `${limit}/s` : 'none'}`);
    console.log(`  cases created                ${fmt(createdSeconds)} s (rows in bulk SQL, workflows through startCollection)`);
    console.log(`  delivered                    ${keys.size} of ${cases} cases; ${messages.length} accepted, ${messages.length - keys.size} duplicates; ${await sentInDb()} marked sent in the database`);
    console.log(`  cases after the step         ${JSON.stringify(byStage)}`);
    console.log(`  refused with 429             ${refused}`);
    console.log(`  time to drain                ${fmt(drainSeconds)} s from the storm instant to the last acceptance, load ${drainLoad}`);
    console.log(`  accepted per second          ${fmt(rate)} on average; per one-second window p10 ${percentile(fullWindows, 10)}, p50 ${percentile(fullWindows, 50)}, max ${fullWindows.at(-1) ?? 0}`);
    console.log(`  CPU ms per case woken        ${cpuPerItem(stormCpu, cases, stack)} (${fmt(totalCpu(stormCpu), 0)} s)`);
    if (limit > 0) console.log(`  sustained rate vs the limit  ${fmt(rate / limit, 2)}× (target ≥ 0.9×)`);
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
