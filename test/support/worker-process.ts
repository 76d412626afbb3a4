import { spawn } from 'node:child_process';
import path from 'node:path';

export type WorkerProcess = Awaited<ReturnType<typeof startWorkerProcess>>;

/**
 * The collection worker (./worker-main.ts) in a child process of its own, so a test can
 * `kill -9` it the way a crashed machine or an OOM kill would. Resolves once it polls.
 * Its output is kept and shown only if it fails to start or exits unasked.
 */
export async function startWorkerProcess(env: Record<string, string>, startTimeoutMs = 120_000) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'worker-main.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let expectedExit = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      if (!expectedExit) console.error(`worker process ${child.pid} exited unasked (code ${code}, signal ${signal}):\n${output}`);
      resolve(code);
    });
  });
  const startedAt = Date.now();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker process not ready after ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
    const onData = () => {
      if (!output.includes('worker polling task queue')) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      resolve();
    };
    child.stdout.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`worker process exited before it was ready:\n${output}`));
    });
  });
  return {
    pid: child.pid!,
    /** How long it took from spawn to polling (bundling the workflow code is most of it). */
    startMs: Date.now() - startedAt,
    /** False once the process has exited (asked or not). */
    isRunning: () => child.exitCode === null && child.signalCode === null,
    /** Sends `signal` (SIGKILL: no cleanup at all) and resolves when the process is gone. */
    async kill(signal: NodeJS.Signals): Promise<void> {
      expectedExit = true;
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
