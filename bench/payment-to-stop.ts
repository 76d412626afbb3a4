// Payment-to-stop latency under load: from a full payment's webhook answering 200 to its case
// closed (the workflow's status query says Closed), while partial-payment webhooks keep the
// system busy in the background.
//   npm run bench:stop          (BENCH_CLOSES=50, BENCH_LOAD_PER_SECOND=20 by default)
//   DATABASE_URL=postgres://… BENCH_SHAPE=production npm run bench:stop
import { signedHeaders } from '../api/webhook-signatures';
import { invoicePayload } from '../test/support/fixtures';
import { webhookSecrets } from '../test/support/stack';
import { caseStatusQuery } from '../workflows/messages';
import { machine, startBenchStack } from './support/env';
import { client, fmt, type Request } from './support/load';

const closes = Number(process.env.BENCH_CLOSES ?? 50);
const loadPerSecond = Number(process.env.BENCH_LOAD_PER_SECOND ?? 20);

function signed(id: string, invoiceExternalId: string, amountMinor: number): Request {
  const body = JSON.stringify({ id, type: 'payment.succeeded', data: { invoiceExternalId, amountMinor, currency: 'EUR' } });
  return { path: '/webhooks/bank', headers: signedHeaders(webhookSecrets.bank, body), body };
}

async function main() {
  const stack = await startBenchStack({ settings: { rateLimitPerMinute: 1e9 } });
  try {
    const { apiUrl } = stack;
    const register = async (amountTotalMinor: number) => {
      const payload = invoicePayload({ amountTotalMinor });
      const res = await stack.post('/invoices', payload);
      if (res.status !== 201) throw new Error(await res.text());
      return payload.externalId;
    };
    const background = await Promise.all(Array.from({ length: 50 }, () => register(10_000_000)));
    const targets: string[] = [];
    for (let i = 0; i < closes; i++) targets.push(await register(50_000));

    // Background: one-cent payments at a steady rate, for as long as the measurement runs.
    const http = client(apiUrl, 64);
    let running = true;
    let sent = 0;
    const load = (async () => {
      const started = performance.now();
      while (running) {
        const due = started + (sent * 1000) / loadPerSecond;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const n = sent++;
        void http.post(signed(`load-${process.pid}-${n}`, background[n % background.length]!, 1)).catch(() => 0);
      }
    })();
    await new Promise((r) => setTimeout(r, 2000));

    // One full payment a second; for each, the time from its 200 to the case closed.
    const latencies: number[] = [];
    await Promise.all(
      targets.map(async (externalId, i) => {
        await new Promise((r) => setTimeout(r, i * 1000));
        const status = await http.post(signed(`close-${process.pid}-${i}`, externalId, 50_000));
        if (status !== 200) throw new Error(`webhook answered ${status}`);
        const answered = performance.now();
        const handle = stack.client.workflow.getHandle(`collection-${externalId}`);
        for (;;) {
          if ((await handle.query(caseStatusQuery)).stage === 'Closed') break;
          await new Promise((r) => setTimeout(r, 5));
        }
        latencies.push(performance.now() - answered);
      }),
    );
    running = false;
    await load;
    http.close();

    const sorted = latencies.sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
    console.log(`Payment to stop, ${machine()}, ${stack.shape} shape, ${closes} full payments one a second, background ${loadPerSecond} payments/s`);
    console.log(`  webhook 200 → case Closed   p50 ${fmt(at(50))} ms   p99 ${fmt(at(99))} ms   max ${fmt(sorted.at(-1)!)} ms   (target p99 < 1000 ms)`);
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
