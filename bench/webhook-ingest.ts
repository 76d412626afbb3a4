// Webhook ingest: signed payment webhooks (verify, store once, signal the case) against a bare
// Fastify POST with the same body, on the same machine in the same run.
//   npm run bench:webhooks            (BENCH_SECONDS=10 by default per phase)
//   DATABASE_URL=postgres://… BENCH_SHAPE=production npm run bench:webhooks
// In the production shape the API and the worker run each in a process of its own, and so does
// the bare server, so that neither side of the ratio shares an event loop with the load.
import os from 'node:os';
import { count, eq } from 'drizzle-orm';
import { signedHeaders } from '../api/webhook-signatures';
import { webhookEvents } from '../db/schema';
import { invoicePayload } from '../test/support/fixtures';
import { spawnUntilReady } from '../test/support/service-process';
import { webhookSecrets } from '../test/support/stack';
import { startBareServer } from './support/bare-server';
import { machine, startBenchStack } from './support/env';
import { closedLoop, fmt, openLoop, type Request } from './support/load';
import { cpuMeter, cpuPerItem, totalCpu } from './support/processes';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const invoiceCount = 200;

async function main() {
  // BENCH_DISPATCH_CONCURRENCY: how many stored events the API applies at once (default 8).
  const dispatchConcurrency = process.env.BENCH_DISPATCH_CONCURRENCY ? Number(process.env.BENCH_DISPATCH_CONCURRENCY) : undefined;
  const stack = await startBenchStack({ settings: { rateLimitPerMinute: 10_000_000 }, paymentDispatch: { concurrency: dispatchConcurrency } });
  let bare: { url: string; close(): Promise<unknown> } | undefined;
  try {
    const started =
      stack.shape === 'production'
        ? await spawnUntilReady('bare server', ['--import', 'tsx', require.resolve('./support/bare-server')], /bare server listening on (\S+)\r?\n/, { env: {} }).then((p) => ({ url: p.url!, close: p.stop }))
        : await startBareServer();
    bare = started;
    const { apiUrl } = stack;
    const bareUrl = started.url;

    // Open cases the payments go to: one cent at a time, so every case stays open.
    const invoices: string[] = [];
    for (let i = 0; i < invoiceCount; i++) {
      const payload = invoicePayload({ amountTotalMinor: 10_000_000 });
      const res = await stack.post('/invoices', payload);
      if (res.status !== 201) throw new Error(`registration failed: ${await res.text()}`);
      invoices.push(payload.externalId);
    }

    let n = 0;
    const event = () => {
      n++;
      return JSON.stringify({ id: `bench-${process.pid}-${n}`, type: 'payment.succeeded', data: { invoiceExternalId: invoices[n % invoiceCount], amountMinor: 1, currency: 'EUR' } });
    };
    const signed = (): Request => {
      const body = event();
      return { path: '/webhooks/bank', headers: signedHeaders(webhookSecrets.bank, body), body };
    };
    const plain = (): Request => ({ path: '/bare', headers: { 'content-type': 'application/json' }, body: event() });
    const ok = (status: number) => status === 200;

    // Warm both up (JIT, connection pools, workflow caches) before measuring.
    await closedLoop(bareUrl, plain, { concurrency, seconds: 2, ok });
    await closedLoop(apiUrl, signed, { concurrency, seconds: 2, ok });
    const unapplied = async () => (await stack.db.db.select({ n: count() }).from(webhookEvents).where(eq(webhookEvents.status, 'received')))[0]!.n;
    const appliedSoFar = async () => (await stack.db.db.select({ n: count() }).from(webhookEvents).where(eq(webhookEvents.status, 'applied')))[0]!.n;
    /** Waits until every stored event is applied: bounded, so an event that keeps failing shows as left over instead of hanging the run. */
    const applyAll = async () => {
      const settled = performance.now() + 300_000;
      while ((await unapplied()) > 0 && performance.now() < settled) await new Promise((resolve) => setTimeout(resolve, 250));
    };
    // Each phase starts once the events before it are applied, so it has the machine to itself.
    await applyAll();

    const baseline = await closedLoop(bareUrl, plain, { concurrency, seconds, ok });
    const steady = await openLoop(apiUrl, signed, { perSecond: 200, seconds, ok });
    await applyAll();
    // Where the CPU goes while webhooks arrive as fast as they are answered (the applying included).
    const appliedBefore = await appliedSoFar();
    const spent = await cpuMeter(stack);
    const webhook = await closedLoop(apiUrl, signed, { concurrency, seconds, ok });
    const webhookCpu = await spent();

    // Answered is not applied: the dispatcher applies stored events after the answer. How far
    // behind it is when the load stops, and how fast it catches up.
    const appliedDuringBurst = (await appliedSoFar()) - appliedBefore;
    const backlog = await unapplied();
    const drainCpu = await cpuMeter(stack);
    const drainStart = performance.now();
    await applyAll();
    const drainSeconds = (performance.now() - drainStart) / 1000;
    const drainSpent = await drainCpu();

    console.log(`Webhook ingest, ${machine()}, ${stack.shape} shape, ${seconds} s per phase, ${concurrency} concurrent callers, dispatcher concurrency ${dispatchConcurrency ?? 8}`);
    console.log(`  bare Fastify POST      ${fmt(baseline.perSecond, 0)} req/s   p50 ${fmt(baseline.p50)} ms   p99 ${fmt(baseline.p99)} ms`);
    console.log(`  signed webhook         ${fmt(webhook.perSecond, 0)} req/s   p50 ${fmt(webhook.p50)} ms   p99 ${fmt(webhook.p99)} ms   errors ${webhook.errors}`);
    console.log(`  ratio                  ${fmt(webhook.perSecond / baseline.perSecond, 3)} × the bare route (target ≥ 0.3)`);
    console.log(`  CPU ms per webhook     ${cpuPerItem(webhookCpu, webhook.requests, stack)} (${fmt(totalCpu(webhookCpu), 1)} s in ${seconds} s on ${os.cpus().length} cores)`);
    console.log(`  at 200 req/s (open)    p50 ${fmt(steady.p50)} ms   p99 ${fmt(steady.p99)} ms   max ${fmt(steady.max)} ms   errors ${steady.errors}   (target p99 < 50 ms)`);
    const leftOver = await unapplied();
    console.log(`  applied during the burst: ${appliedDuringBurst}; still to apply when it stopped: ${backlog}, applied in ${fmt(drainSeconds, 1)} s (${fmt(backlog / Math.max(drainSeconds, 0.001), 0)} /s); left over: ${leftOver}`);
    console.log(`  CPU ms per event applied after the load: ${cpuPerItem(drainSpent, Math.max(1, backlog - leftOver), stack)} (${fmt(totalCpu(drainSpent), 1)} s in ${fmt(drainSeconds, 0)} s)`);
  } finally {
    await bare?.close();
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
