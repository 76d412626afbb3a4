// The production worker in a process of its own, and where each process's CPU time goes: on a
// shared two-core machine a rate says little until it is split by who did the work.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

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

/**
 * `npm run build`, then `node dist/worker/main.js` as in production (the prebuilt workflow
 * bundle, its own database pool), on the given server, database and task queue. Resolves once
 * the worker polls.
 */
export async function startWorkerProcess(options: { temporalAddress: string; databaseUrl: string; taskQueue: string; env?: Record<string, string> }) {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const child = spawn(process.execPath, [path.join(root, 'dist', 'worker', 'main.js')], {
    cwd: root,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: options.temporalAddress,
      TEMPORAL_TASK_QUEUE: options.taskQueue,
      DATABASE_URL: options.databaseUrl,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The worker's log stays out of the figures; its last lines are shown if it fails.
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => {
      if (out.includes('worker polling')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker process exited (${code}) before polling:\n${out}`)));
  });
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGINT') console.error(`worker process exited (${code ?? signal}):\n${out}`);
  });
  return {
    pid: child.pid!,
    async stop() {
      child.kill('SIGINT'); // main.ts drains in-flight work, then closes its connections
      await exited;
    },
  };
}
