// A production entry point (worker/main.ts or api/main.ts) in a child process of its own: the
// fault tests kill it (`kill -9`, as a crashed machine or an OOM kill would), and the
// benchmarks measure it without their own work in the figures.
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';

export type ServiceProcess = Awaited<ReturnType<typeof startServiceProcess>>;

export type ServiceProcessOptions = {
  /** The settings, as environment variables (over this process's own). */
  env: Record<string, string>;
  /**
   * "source": the TypeScript through tsx, the workflow code bundled at start (no build needed);
   * "built": `npm run build` once, then `node dist/<service>/main.js`, as deployed.
   */
  code?: 'source' | 'built';
  /** Extra Node options, e.g. `--import` of a probe module that answers over the IPC channel. */
  execArgv?: string[];
  /** Opens an IPC channel to the child (for such a probe); `child.send()` talks to it. */
  ipc?: boolean;
  startTimeoutMs?: number;
};

const root = path.resolve(__dirname, '..', '..');

/** What each entry point prints once it serves: the worker polls, the API listens. */
const readyLine = { worker: /worker polling task queue/, api: /API listening on (http:\/\/\S+)\r?\n/ };

let built = false;

/** Starts `service` and resolves once it serves; its output is shown only if it fails or exits unasked. */
export async function startServiceProcess(service: 'worker' | 'api', options: ServiceProcessOptions) {
  const code = options.code ?? 'source';
  if (code === 'built' && !built) {
    // Its output (webpack's report) is shown only if it fails: execFileSync's error carries it.
    // Under a lock on this checkout: two benchmarks started at once must not write dist/ together.
    execFileSync('flock', [path.join(root, 'node_modules', '.arrears-build.lock'), 'npm', 'run', 'build', '--silent'], { cwd: root, stdio: 'pipe' });
    built = true;
  }
  // The worker from source needs its workflow code bundled from source too (./worker-main.ts).
  const entry =
    code === 'built'
      ? [path.join(root, 'dist', service, 'main.js')]
      : ['--import', 'tsx', service === 'worker' ? path.join(__dirname, 'worker-main.ts') : path.join(root, 'api', 'main.ts')];
  // The built worker runs with the environment its image sets (Dockerfile), so that the
  // benchmarks measure what production runs.
  const env = code === 'built' && service === 'worker' ? { ...workerImageEnv, ...options.env } : options.env;
  return spawnUntilReady(service, [...(options.execArgv ?? []), ...entry], readyLine[service], { ...options, env });
}

/**
 * The worker image's ENV lines (Dockerfile), besides NODE_ENV. MALLOC_ARENA_MAX: the SDK's
 * native core allocates from many threads, and glibc gives each its own arena, which keeps
 * freed memory: with 2 arenas, 25 to 30 MiB less RSS (BENCHMARKS.md, sleeping population).
 */
const workerImageEnv = { MALLOC_ARENA_MAX: '2' };

/**
 * Runs `node args` and resolves once its output matches `ready` (the first group, if any, is
 * returned as `url`): for the services above and other servers a benchmark compares with.
 */
export async function spawnUntilReady(name: string, args: string[], ready: RegExp, options: Pick<ServiceProcessOptions, 'env' | 'ipc' | 'startTimeoutMs'>) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe', ...(options.ipc ? (['ipc'] as const) : [])],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-50_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let expectedExit = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      if (!expectedExit) console.error(`${name} process ${child.pid} exited unasked (code ${exitCode}, signal ${signal}):\n${output}`);
      resolve(exitCode);
    });
  });
  const startedAt = Date.now();
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind a failed start.
      expectedExit = true;
      child.kill('SIGKILL');
      reject(new Error(`${name} process not ready after ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = () => {
      const found = output.match(ready);
      if (!found) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve(found);
    };
    child.stdout!.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} process exited before it was ready:\n${output}`));
    });
  });
  const stop = (signal: NodeJS.Signals): Promise<number | null> => {
    expectedExit = true;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    pid: child.pid!,
    child,
    /** The address it printed when ready (the API's http://host:port); undefined for the worker. */
    url: match[1],
    /** How long it took from spawn to serving (for the worker from source, bundling is most of it). */
    startMs: Date.now() - startedAt,
    /** The last 50,000 characters it printed. */
    output: () => output,
    /** False once the process has exited (asked or not). */
    isRunning: () => child.exitCode === null && child.signalCode === null,
    /** Sends `signal` (SIGKILL: no cleanup at all) and resolves with the exit code when the process is gone. */
    kill: stop,
    /** Graceful shutdown, as on Ctrl-C in production: work in hand finishes first. */
    stop: () => stop('SIGINT'),
  };
}
