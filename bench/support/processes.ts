// Where each process's CPU time goes: on a shared two-core machine a rate says little until it
// is split by who did the work.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import type { BenchStack } from './env';

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return 0;
  }
}
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** This process's direct children whose command line contains `needle` (e.g. the Temporal dev server). */
export function childPids(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** CPU seconds spent by each part of a benchmark's stack. */
export type CpuSpent = { server: number; bench: number; api: number; worker: number; database: number };

/**
 * Measures where CPU goes while `stack` works: the Temporal dev server, this process (the load,
 * and in the dev shape the API and the worker), the API and worker processes of the production
 * shape, and the PostgreSQL backends serving the benchmark's database. `const spent = await
 * cpuMeter(stack)` starts; `await spent()` gives the seconds since.
 */
export async function cpuMeter(stack: BenchStack): Promise<() => Promise<CpuSpent>> {
  const serverPid = childPids('start-dev')[0];
  const databasePids = async () =>
    stack.db.kind === 'postgres'
      ? ((await stack.db.db.execute(sql`select pid from pg_stat_activity where datname = current_database()`)) as unknown as { pid: number }[]).map((r) => r.pid)
      : [];
  const read = async () => {
    const own = process.cpuUsage();
    return {
      server: serverPid ? cpuSeconds(serverPid) : 0,
      bench: (own.user + own.system) / 1e6,
      api: stack.processes.api ? cpuSeconds(stack.processes.api.pid) : 0,
      worker: stack.processes.worker ? cpuSeconds(stack.processes.worker.pid) : 0,
      database: new Map((await databasePids()).map((pid) => [pid, cpuSeconds(pid)])),
    };
  };
  const before = await read();
  return async () => {
    const after = await read();
    let database = 0;
    // A backend that started meanwhile counts from zero.
    for (const [pid, seconds] of after.database) database += seconds - (before.database.get(pid) ?? 0);
    return { server: after.server - before.server, bench: after.bench - before.bench, api: after.api - before.api, worker: after.worker - before.worker, database };
  };
}

/** CPU milliseconds per item, split by part, for the figures (`of` names what is divided). */
export function cpuPerItem(spent: CpuSpent, items: number, stack: BenchStack): string {
  const ms = (seconds: number) => ((seconds / items) * 1000).toFixed(1);
  const production = stack.shape === 'production';
  return [
    `Temporal server ${ms(spent.server)}`,
    `bench process (load${production ? '' : ' + API + worker'}${stack.db.kind === 'pglite' ? ' + PGlite' : ''}) ${ms(spent.bench)}`,
    ...(production ? [`API process ${ms(spent.api)}`, `worker process ${ms(spent.worker)}`] : []),
    ...(stack.db.kind === 'postgres' ? [`PostgreSQL backends ${ms(spent.database)}`] : []),
  ].join(', ');
}

export const totalCpu = (spent: CpuSpent) => spent.server + spent.bench + spent.api + spent.worker + spent.database;
