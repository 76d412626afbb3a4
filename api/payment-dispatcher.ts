import { performance } from 'node:perf_hooks';
import { defaultPaymentDispatchConcurrency } from '../config';
import type { ServiceDeps } from './invoice-service';
import { applyClaimedEvent, claimDueEvents, type EventClaim } from './payment-service';

export type PaymentDispatcherOptions = {
  /** Events applied at once (PAYMENT_DISPATCH_CONCURRENCY); each is a few statements and a signal to its case. */
  concurrency?: number;
  /**
   * Events applied at once while the process is busy (default 1): during a burst of webhooks,
   * applying yields the CPU to answering them, and catches up at `concurrency` once it eases.
   * Never 0, so a process that stays busy still applies.
   */
  busyConcurrency?: number;
  /**
   * Whether the process is busy answering webhooks now; default: webhooks arrived in the last
   * 250 ms and the event loop was more than half used meanwhile. With no webhooks arriving it
   * never counts as busy, so a backlog drains at full concurrency once they stop.
   */
  isBusy?: () => boolean;
  /**
   * The longest an event waits in this process because of a burst (default 5 s): once the
   * oldest queued event has waited longer, all of `concurrency` is used even while busy, so
   * sustained load delays payments by at most this, not by the whole backlog.
   */
  maxYieldMs?: number;
  /** How often events left unapplied (a failed attempt, a stopped process) are looked for. */
  pollIntervalMs?: number;
  /** Beyond this many waiting, a new event is left to the poll (after its lease) instead of held in memory. */
  maxQueued?: number;
  /** How long close() waits for attempts in flight; an unfinished one is retried later. */
  closeTimeoutMs?: number;
};

export type PaymentDispatcher = {
  /** Begins polling (the API calls this when it is ready). */
  start(): void;
  /** Apply this event, which this process has just stored and claimed. */
  wake(claim: EventClaim): void;
  /** Look for due events now, without waiting for the next poll; resolves with how many were claimed. */
  poll(): Promise<number>;
  close(): Promise<void>;
};

/**
 * The transactional outbox behind the payment webhooks. A webhook stores its event (claimed
 * by this process) and answers; this applies it (match the invoice, record the payment,
 * signal the case) right after. An event whose attempt failed (Temporal or the database
 * unavailable) stays `received` with a retry time, and the poll of any API process claims it
 * again then, as it claims events whose process stopped before applying them (their lease
 * ran out). Only the holder of an event's claim records its outcome.
 */
export function startPaymentDispatcher(deps: ServiceDeps, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  return startDispatcher(
    { what: 'stored payment event', apply: (claim) => applyClaimedEvent(deps, claim), claimDue: (limit) => claimDueEvents(deps, limit), log: deps.log },
    options,
  );
}

/** What a dispatcher does with the outbox rows it holds; startPaymentDispatcher's applies stored payments. */
export type DispatchWork = {
  /** What a row is, for the log ("stored payment event"). */
  what: string;
  apply(claim: EventClaim): Promise<unknown>;
  claimDue(limit: number): Promise<EventClaim[]>;
  log?: ServiceDeps['log'];
};

/** The scheduling of startPaymentDispatcher (how many at once, when to look for more), over any work. */
export function startDispatcher(work: DispatchWork, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  const fullConcurrency = options.concurrency ?? defaultPaymentDispatchConcurrency;
  const busyConcurrency = Math.max(1, Math.min(options.busyConcurrency ?? 1, fullConcurrency));
  /** Webhooks stored by this process since the load was last sampled. */
  let arrivals = 0;
  const anyArrived = () => {
    const any = arrivals > 0;
    arrivals = 0;
    return any;
  };
  const load = options.isBusy ? undefined : eventLoopLoad(0.5, 250, anyArrived);
  const isBusy = options.isBusy ?? load!.isBusy;
  const maxYieldMs = options.maxYieldMs ?? 5000;
  const maxQueued = options.maxQueued ?? 1000;
  /** Claims waiting to be applied, each with when it was queued. */
  const queue: { claim: EventClaim; since: number }[] = [];
  /** How many may run now: fewer while webhooks keep the process busy, unless an event has waited too long. */
  const limit = () => {
    const overdue = queue.length > 0 && performance.now() - queue[0]!.since > maxYieldMs;
    return isBusy() && !overdue ? busyConcurrency : fullConcurrency;
  };
  let running = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<number> | undefined;
  let drained: (() => void) | undefined;

  /** The last poll claimed all it asked for: more are due, so the next is not left to the timer. */
  let moreDue = false;

  const pump = () => {
    const concurrency = limit();
    if (!closed && moreDue && queue.length === 0 && running < concurrency && !polling) {
      moreDue = false;
      pollInBackground();
    }
    while (!closed && running < concurrency && queue.length > 0) {
      const { claim } = queue.shift()!;
      running++;
      work
        .apply(claim)
        .catch((err) => work.log?.error({ err, id: claim.id }, `applying a ${work.what} failed; it will be retried`))
        .finally(() => {
          running--;
          if (running === 0) drained?.();
          pump();
        });
    }
  };

  const poll = async (): Promise<number> => {
    // Claim only what can start soon: a claim waiting in memory past its lease is taken over.
    const wanted = limit() - running - queue.length;
    const claims = await work.claimDue(wanted);
    moreDue = wanted > 0 && claims.length === wanted;
    const since = performance.now();
    queue.push(...claims.map((claim) => ({ claim, since })));
    pump();
    return claims.length;
  };

  const pollInBackground = () => {
    polling = poll()
      .catch((err) => {
        work.log?.error({ err }, `looking for a ${work.what} to apply failed`);
        return 0;
      })
      .finally(() => {
        polling = undefined;
        pump();
      });
  };

  return {
    start() {
      if (timer || closed) return;
      timer = setInterval(() => {
        if (!polling) pollInBackground();
      }, options.pollIntervalMs ?? 2000);
      timer.unref();
    },
    wake(claim) {
      arrivals++;
      // Dropped when the queue is full: the claim's lease runs out and a poll picks the event up.
      if (closed || queue.length >= maxQueued) return;
      queue.push({ claim, since: performance.now() });
      pump();
    },
    poll,
    async close() {
      closed = true;
      clearInterval(timer);
      load?.stop();
      await polling;
      // What is only queued stays claimed until its lease ends, then any dispatcher takes it.
      queue.length = 0;
      if (running === 0) return;
      await Promise.race([
        new Promise<void>((resolve) => (drained = resolve)),
        new Promise((resolve) => setTimeout(resolve, options.closeTimeoutMs ?? 10_000).unref()),
      ]);
    },
  };
}

/**
 * Whether, over the last `windowMs`, requests arrived (`arrived()` says so, and starts counting
 * afresh) and this process's event loop was busier than `threshold` (0–1, the share of time it
 * spent running code rather than waiting). The loop is where the webhooks are answered, so
 * this is the signal that answering them is being held up.
 */
export function eventLoopLoad(threshold: number, windowMs: number, arrived: () => boolean): { isBusy(): boolean; stop(): void } {
  let last = performance.eventLoopUtilization();
  let busy = false;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const used = performance.eventLoopUtilization(now, last).utilization;
    busy = arrived() && used > threshold;
    last = now;
  }, windowMs);
  timer.unref();
  return { isBusy: () => busy, stop: () => clearInterval(timer) };
}
