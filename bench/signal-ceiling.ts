// Where the webhook's time goes: the rate at which the Temporal dev server and the worker take
// payment signals on their own (no HTTP, no webhook bookkeeping), and the sequential cost of
// one signal, one trivial query and one whole signed webhook. The webhook cannot beat the
// first figure while it signals the case before it answers.
//   npx tsx bench/signal-ceiling.ts
import { sql } from 'drizzle-orm';
import { signedHeaders } from '../api/webhook-signatures';
import { invoicePayload } from '../test/support/fixtures';
import { webhookSecrets } from '../test/support/stack';
import { paymentReceivedSignal } from '../workflows/messages';
import { machine, startBenchStack } from './support/env';
import { fmt } from './support/load';

async function main() {
  const stack = await startBenchStack({ settings: { rateLimitPerMinute: 1e9 } });
  try {
    const invoices: string[] = [];
    for (let i = 0; i < 50; i++) {
      const payload = invoicePayload({ amountTotalMinor: 10_000_000 });
      await stack.app.inject({ method: 'POST', url: '/invoices', headers: stack.auth('collector'), payload });
      invoices.push(payload.externalId);
    }
    const payment = (id: string) => ({ paymentId: id, amountMinor: 1, currency: 'EUR' as const, receivedAt: new Date().toISOString() });
    const signal = (n: number) => stack.client.workflow.getHandle(`collection-${invoices[n % invoices.length]}`).signal(paymentReceivedSignal, payment(`ceiling-${n}`));

    let sent = 0;
    const started = performance.now();
    const deadline = started + 10_000;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (performance.now() < deadline) await signal(sent++);
    }));
    const signalsPerSecond = sent / ((performance.now() - started) / 1000);
    await new Promise((r) => setTimeout(r, 5000)); // let the worker catch up

    const each = async (n: number, fn: (i: number) => Promise<unknown>) => {
      const t = performance.now();
      for (let i = 0; i < n; i++) await fn(i);
      return (performance.now() - t) / n;
    };
    const query = await each(200, () => stack.db.db.execute(sql`select 1`));
    const oneSignal = await each(100, (i) => signal(100_000 + i));
    const webhook = await each(100, async (i) => {
      const body = JSON.stringify({ id: `ceiling-${i}`, type: 'payment.succeeded', data: { invoiceExternalId: invoices[i % invoices.length], amountMinor: 1, currency: 'EUR' } });
      // Over HTTP to the measured API (its own process with BENCH_SHAPE=production).
      const res = await fetch(`${stack.apiUrl}/webhooks/bank`, { method: 'POST', headers: signedHeaders(webhookSecrets.bank, body), body });
      if (res.status !== 200) throw new Error(await res.text());
    });
    console.log(`Signal ceiling, ${machine()}, ${stack.shape} shape`);
    console.log(`  payment signals, 16 concurrent, worker applying them   ${fmt(signalsPerSecond, 0)} /s`);
    console.log(`  one signal, sequential                                 ${fmt(oneSignal)} ms`);
    console.log(`  one trivial query, sequential                          ${fmt(query, 2)} ms`);
    console.log(`  one signed webhook over HTTP, sequential               ${fmt(webhook)} ms`);
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
