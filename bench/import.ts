/**
 * Measures the CSV import end to end on real parts: a Temporal dev server, a worker, the API
 * (over HTTP; each in a process of its own with BENCH_SHAPE=production), and PGlite (or
 * PostgreSQL when DATABASE_URL is set).
 *
 *   npx tsx bench/import.ts [rows=2000]
 *
 * Prints rows/s for a first import (every invoice created, every workflow started) and for the
 * same file again (every row unchanged). Invoices fall due in a year, so the workflows sleep
 * and the worker stays idle.
 */
import { randomUUID } from 'node:crypto';
import { csvInvoiceRow, toCsv } from '../test/support/fixtures';
import { startBenchStack } from './support/env';

async function main() {
  const rows = Number(process.argv[2] ?? 2000);
  if (!Number.isInteger(rows) || rows < 1) throw new Error('usage: npx tsx bench/import.ts [rows]');
  const h = await startBenchStack();
  try {
    const prefix = `BENCH${randomUUID().slice(0, 8)}`;
    const file = toCsv(Array.from({ length: rows }, (_, i) => csvInvoiceRow(prefix, i)));
    console.log(`${rows} rows, ${(file.length / 1024).toFixed(0)} KiB, database: ${h.db.kind}, ${h.shape} shape`);
    for (const run of ['first import', 'same file again']) {
      const started = performance.now();
      // Over HTTP to the measured API (its own process with BENCH_SHAPE=production).
      const res = await fetch(`${h.apiUrl}/invoices/import`, { method: 'POST', headers: { ...h.auth('collector'), 'content-type': 'text/csv' }, body: file });
      const seconds = (performance.now() - started) / 1000;
      if (!res.ok) throw new Error(`import answered ${res.status}: ${await res.text()}`);
      const { created, unchanged, failed } = (await res.json()) as { created: number; unchanged: number; failed: number };
      console.log(
        `${run}: ${seconds.toFixed(1)} s, ${(rows / seconds).toFixed(0)} rows/s (created ${created}, unchanged ${unchanged}, failed ${failed})`,
      );
    }
  } finally {
    await h.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
