import type { ServiceDeps } from './invoice-service';
import { applyClaimedEvent, claimDueEvents, type EventClaim } from './payment-service';

export type PaymentDispatcherOptions = {
  /** Events applied at once (PAYMENT_DISPATCH_CONCURRENCY, default 8); each is a few statements and a signal to its case. */
  concurrency?: number;
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
  const concurrency = options.concurrency ?? 8;
  const maxQueued = options.maxQueued ?? 1000;
  const queue: EventClaim[] = [];
  let running = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<number> | undefined;
  let drained: (() => void) | undefined;

  /** The last poll claimed all it asked for: more are due, so the next is not left to the timer. */
  let moreDue = false;

  const pump = () => {
    if (!closed && moreDue && queue.length === 0 && running < concurrency && !polling) {
      moreDue = false;
      pollInBackground();
    }
    while (!closed && running < concurrency && queue.length > 0) {
      const claim = queue.shift()!;
      running++;
      applyClaimedEvent(deps, claim)
        .catch((err) => deps.log?.error({ err, webhookEventId: claim.id }, 'applying a stored payment event failed; it will be retried'))
        .finally(() => {
          running--;
          if (running === 0) drained?.();
          pump();
        });
    }
  };

  const poll = async (): Promise<number> => {
    // Claim only what can start soon: a claim waiting in memory past its lease is taken over.
    const wanted = concurrency - running - queue.length;
    const claims = await claimDueEvents(deps, wanted);
    moreDue = wanted > 0 && claims.length === wanted;
    queue.push(...claims);
    pump();
    return claims.length;
  };

  const pollInBackground = () => {
    polling = poll()
      .catch((err) => {
        deps.log?.error({ err }, 'looking for unapplied payment events failed');
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
      // Dropped when busy: the claim's lease runs out and a poll picks the event up.
      if (closed || queue.length >= maxQueued) return;
      queue.push(claim);
      pump();
    },
    poll,
    async close() {
      closed = true;
      clearInterval(timer);
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
