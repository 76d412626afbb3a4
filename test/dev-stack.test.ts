// The README's first line, `npm run dev`, as a newcomer runs it: a real process with its own
// Temporal dev server (UI on), embedded database, worker and API; Ctrl-C; and a second start
// that continues where the first stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectionWorkflowId } from '../domain/collection';
import { invoicePayload, isoDate } from './support/fixtures';

const root = path.resolve(__dirname, '..');
const dataDir = mkdtempSync(path.join(tmpdir(), 'arrears-dev-'));
const running: ChildProcess[] = [];

afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * `count` distinct free ports: all held open at once before any is let go, since a port just
 * closed may be handed out again at once (a CI run got the same one for the API and Temporal).
 */
async function freePorts(count: number): Promise<number[]> {
  const listen = () =>
    new Promise<Server>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => resolve(server));
    });
  const servers = await Promise.all(Array.from({ length: count }, listen));
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

type Stack = { child: ChildProcess; output: () => string; exited: Promise<number | null> };

async function startDevStack(ports: { api: number; temporal: number; ui: number }): Promise<Stack> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, API_PORT: String(ports.api), DEV_TEMPORAL_PORT: String(ports.temporal), DEV_TEMPORAL_UI_PORT: String(ports.ui), LOG_LEVEL: 'warn' };
  delete env.TEMPORAL_ADDRESS; // the default path: it starts its own Temporal server
  delete env.DATABASE_URL; // and its own embedded database
  // As `npm run dev` runs it. Not through tsx's CLI: that relays Ctrl-C to a child process and
  // kills it outright if the child does not acknowledge within 60 ms, which a loaded machine
  // missed (exit 130 in CI).
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/dev.ts'], { cwd: root, env });
  running.push(child);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!output.includes('Press Ctrl-C to stop.')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`dev stack did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, output: () => output, exited };
}

describe('npm run dev', () => {
  it('runs the whole system, stops cleanly on Ctrl-C, and continues where it stopped', async () => {
    const [apiPort, temporalPort, uiPort] = (await freePorts(3)) as [number, number, number];
    const ports = { api: apiPort, temporal: temporalPort, ui: uiPort };
    const api = `http://127.0.0.1:${ports.api}`;
    const first = await startDevStack(ports);
    expect(first.output()).toContain(`${api}/docs`);
    expect(first.output()).toContain(`http://localhost:${ports.ui}`);

    expect((await fetch(`${api}/readyz`)).status).toBe(200);
    const keyFile = path.join(dataDir, 'dev-admin-api-key');
    expect(statSync(keyFile).mode & 0o077).toBe(0); // readable by its owner only
    const key = readFileSync(keyFile, 'utf8').trim();
    expect(first.output()).not.toContain(key); // never printed
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

    const payload = invoicePayload({ dueDate: isoDate(0) }); // due today: its case starts at registration
    const registered = await fetch(`${api}/invoices`, { method: 'POST', headers, body: JSON.stringify(payload) });
    expect(registered.status).toBe(201);

    // The Temporal UI is up and its API shows the invoice's workflow.
    const workflowId = collectionWorkflowId(payload.externalId);
    expect((await fetch(`http://localhost:${ports.ui}/`)).status).toBe(200);
    const uiView = await fetch(`http://localhost:${ports.ui}/api/v1/namespaces/default/workflows/${workflowId}`);
    expect(uiView.status).toBe(200);
    expect(JSON.stringify(await uiView.json())).toContain('invoiceCollection');
    // The worker created the overdue sweep's schedule (Temporal UI → Schedules).
    expect(first.output()).toContain('Overdue sweep    every 15 minutes');
    const schedule = await fetch(`http://localhost:${ports.ui}/api/v1/namespaces/default/schedules/overdue-sweep-arrears-collections`);
    expect(schedule.status).toBe(200);
    expect(JSON.stringify(await schedule.json())).toContain('overdueSweep');

    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('stopped.');

    // Second start: same data folder; the invoice, its running workflow and the key are still there.
    const second = await startDevStack(ports);
    // The live status needs the worker to answer a query: right after a start it may not yet.
    let body: { case: unknown; live: unknown } = { case: null, live: null };
    for (let attempt = 0; attempt < 30 && !body.live; attempt++) {
      const detail = await fetch(`${api}/invoices/${payload.externalId}`, { headers });
      expect(detail.status).toBe(200);
      body = (await detail.json()) as typeof body;
      if (!body.live) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(body.case).toMatchObject({ workflowId, stage: 'Scheduled' });
    expect(body.live).toMatchObject({ workflowId, stage: 'Scheduled', amountOutstandingMinor: payload.amountTotalMinor });
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 240_000);
});
