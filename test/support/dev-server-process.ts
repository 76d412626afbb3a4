import { spawn } from 'node:child_process';
import net from 'node:net';
import { Connection } from '@temporalio/client';
import { resolveServerExecutable } from '../../scripts/temporal-servers';
import { until } from './until';

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The Temporal dev server (the real CLI) as a process the test owns, persisting to `dbFile`
 * (SQLite), so it can be stopped with any signal and started again on the same file and
 * port. Resolves once it answers.
 */
export async function startDevServerProcess(options: { dbFile: string; port: number }) {
  const cli = resolveServerExecutable('cli');
  if (cli.type !== 'existing-path') {
    throw new Error('The fault tests start the Temporal CLI themselves: run `npm run temporal:servers -- ensure` or set TEMPORAL_CLI_PATH.');
  }
  const address = `127.0.0.1:${options.port}`;
  const startedAt = Date.now();
  const child = spawn(
    cli.path,
    ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(options.port), '--headless', '--db-filename', options.dbFile, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await until(
    `the Temporal dev server on ${address}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`the Temporal dev server exited (${child.exitCode}):\n${output}`);
      // A channel of its own: grpc-js shares subchannels between clients with the same options,
      // and a client that kept calling while the server was down backs off for up to 2 minutes;
      // sharing its subchannel would time that backoff, not the server's start.
      const connection = await Connection.connect({ address, connectTimeout: 1000, channelArgs: { 'grpc.use_local_subchannel_pool': 1 } }).catch(
        () => undefined,
      );
      if (!connection) return false;
      const answered = await connection.workflowService.getSystemInfo({}).then(() => true, () => false);
      await connection.close();
      return answered;
    },
    60_000,
  ).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}; its log (warnings and errors):\n${output || '(empty)'}`);
  });
  return {
    address,
    /** From spawn until it answered. */
    startMs: Date.now() - startedAt,
    /** Sends `signal` (SIGTERM: orderly stop; SIGKILL: none) and resolves when the process is gone. */
    async stop(signal: NodeJS.Signals): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
