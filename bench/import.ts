/**
 * Measures the CSV import end to end on real parts: a Temporal dev server, a worker, the API,
 * and PGlite (or PostgreSQL when DATABASE_URL is set).
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
    console.log(`${rows} rows, ${(file.length / 1024).toFixed(0)} KiB, database: ${h.db.kind}`);
    for (const run of ['first import', 'same file again']) {
      const started = performance.now();
      const res = await h.app.inject({
        method: 'POST',
        url: '/invoices/import',
        headers: { ...h.auth('collector'), 'content-type': 'text/csv' },
        payload: file,
      });
      const seconds = (performance.now() - started) / 1000;
      const { created, unchanged, failed } = res.json() as { created: number; unchanged: number; failed: number };
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
