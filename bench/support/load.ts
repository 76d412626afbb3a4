import http from 'node:http';

export type Request = { path: string; headers: Record<string, string>; body: string };
export type Result = { requests: number; errors: number; seconds: number; perSecond: number; p50: number; p99: number; max: number };

/** A keep-alive HTTP client for loopback benchmarks: small and predictable, so both sides of a ratio pay the same. */
export function client(baseUrl: string, sockets: number) {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  return {
    post(request: Request): Promise<number> {
      return new Promise((resolve, reject) => {
        const req = http.request(
          { host: url.hostname, port: url.port, path: request.path, method: 'POST', agent, headers: { ...request.headers, 'content-length': Buffer.byteLength(request.body) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(request.body);
      });
    },
    close: () => agent.destroy(),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarise(latencies: number[], errors: number, seconds: number): Result {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    seconds,
    perSecond: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? 0,
  };
}

/** As fast as `concurrency` callers can go, for `seconds` (closed loop): the throughput ceiling. */
export async function closedLoop(baseUrl: string, next: () => Request, options: { concurrency: number; seconds: number; ok: (status: number) => boolean }): Promise<Result> {
  const http = client(baseUrl, options.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        const status = await http.post(next()).catch(() => 0);
        latencies.push(performance.now() - sent);
        if (!options.ok(status)) errors++;
      }
    }),
  );
  http.close();
  return summarise(latencies, errors, (performance.now() - started) / 1000);
}

/**
 * A fixed arrival rate (open loop) for `seconds`: latency is measured from when each request
 * was due, so a slow server cannot hide its queueing (no coordinated omission).
 */
export async function openLoop(baseUrl: string, next: () => Request, options: { perSecond: number; seconds: number; ok: (status: number) => boolean }): Promise<Result> {
  const http = client(baseUrl, 256);
  const latencies: number[] = [];
  let errors = 0;
  const total = Math.round(options.perSecond * options.seconds);
  const interval = 1000 / options.perSecond;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      http
        .post(next())
        .catch(() => 0)
        .then((status) => {
          latencies.push(performance.now() - due);
          if (!options.ok(status)) errors++;
        }),
    );
  }
  await Promise.all(inFlight);
  http.close();
  return summarise(latencies, errors, (performance.now() - started) / 1000);
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);
