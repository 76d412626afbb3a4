// Case start rate: invoices registered over HTTP until each case has run its first step (a
// letter rendered and queued: no contact window to wait for), against starting the same
// number of empty workflows on the same server in the same run.
//   npm run bench:starts            (BENCH_CASES=200 by default)
import { randomUUID } from 'node:crypto';
import { count } from 'drizzle-orm';
import { collectionPolicies, communications } from '../db/schema';
import { policySchema } from '../domain/policy';
import { invoicePayload, isoDate } from '../test/support/fixtures';
import { machine, startBenchStack } from './support/env';
import { fmt } from './support/load';

const cases = Number(process.env.BENCH_CASES ?? 200);
const concurrency = 8;

async function inBatches(n: number, fn: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function main() {
  const stack = await startBenchStack({ settings: { rateLimitPerMinute: 1e9 } });
  try {
    await stack.db.db.insert(collectionPolicies).values({
      name: 'letter-first',
      version: 1,
      createdBy: 'bench',
      definition: policySchema.parse({
        name: 'letter-first',
        version: 1,
        steps: [{ id: 'day-1-letter', offsetDays: 1, action: 'letter', template: 'reminder_letter', tone: 'friendly' }],
      }),
    });

    // Baseline: workflow starts alone (a type no worker polls, so nothing else competes).
    const emptyQueue = `bench-empty-${randomUUID()}`;
    let t = performance.now();
    await inBatches(cases, async (i) => {
      await stack.client.workflow.start('emptyWorkflow', { taskQueue: emptyQueue, workflowId: `empty-${emptyQueue}-${i}` });
    });
    const emptyPerSecond = cases / ((performance.now() - t) / 1000);

    // Arrears: registration (database, then the workflow start) until the first step has run.
    t = performance.now();
    await inBatches(cases, async () => {
      const payload = { ...invoicePayload({ dueDate: isoDate(-3) }), policy: 'letter-first' };
      const res = await stack.app.inject({ method: 'POST', url: '/invoices', headers: stack.auth('collector'), payload });
      if (res.statusCode !== 201) throw new Error(res.body);
    });
    const registeredSeconds = (performance.now() - t) / 1000;
    for (;;) {
      const [row] = await stack.db.db.select({ n: count() }).from(communications);
      if (row!.n >= cases) break;
      if (performance.now() - t > 600_000) throw new Error(`only ${row!.n} of ${cases} first steps after 10 minutes`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const casesPerSecond = cases / ((performance.now() - t) / 1000);

    console.log(`Case start rate, ${machine()}, ${cases} cases, ${concurrency} at a time`);
    console.log(`  empty workflow starts          ${fmt(emptyPerSecond, 0)} /s`);
    console.log(`  registrations answered         ${fmt(cases / registeredSeconds, 0)} /s`);
    console.log(`  cases through their first step ${fmt(casesPerSecond, 0)} /s`);
    console.log(`  ratio                          ${fmt(casesPerSecond / emptyPerSecond, 3)} × empty starts (target ≥ 0.6)`);
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
