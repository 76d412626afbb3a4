import { and, asc, eq, inArray, lte, sql } from 'drizzle-orm';
import { webhookEvents } from '../db/schema';
import type { ServiceDeps } from './invoice-service';
import { applyReceivedEvent, dispatchLeaseMs } from './payment-service';

export type PaymentDispatcherOptions = {
  /** Events applied at once; each one is a few statements and a signal to its case. */
  concurrency?: number;
  /** How often stored events left unapplied (by a failure, or another process) are looked for. */
  pollIntervalMs?: number;
  /** Beyond this many queued, a new event waits for the poll instead of holding memory. */
  maxQueued?: number;
};

export type PaymentDispatcher = {
  /** Apply this stored event now (it was just stored by this process). */
  wake(id: string): void;
  /** Look for due events now, without waiting for the next poll. */
  poll(): Promise<number>;
  /** Resolves once nothing is queued or running. */
  idle(): Promise<void>;
  close(): Promise<void>;
};

/**
 * The transactional outbox behind the payment webhooks. A webhook stores its event and
 * answers; this applies it (match the invoice, record the payment, signal the case) right
 * after, in the same process. An event that could not be applied (Temporal or the database
 * unavailable) stays `received` with a next attempt time, and the poll picks it up again
 * with backoff, as it picks up events whose process stopped before applying them. Applying
 * is idempotent (one payment per money id, counted once by the case), so two dispatchers that
 * meet on one event do no harm; the lease on `next_attempt_at` keeps that rare.
 */
export function startPaymentDispatcher(deps: ServiceDeps, options: PaymentDispatcherOptions = {}): PaymentDispatcher {
  const concurrency = options.concurrency ?? 8;
  const maxQueued = options.maxQueued ?? 1000;
  const queue: string[] = [];
  const pending = new Set<string>();
  let running = 0;
  let closed = false;
  let idleWaiters: (() => void)[] = [];

  const settleIdle = () => {
    if (running > 0 || queue.length > 0) return;
    for (const resolve of idleWaiters) resolve();
    idleWaiters = [];
  };

  const enqueue = (id: string) => {
    if (closed || pending.has(id)) return;
    pending.add(id);
    queue.push(id);
    pump();
  };

  const pump = () => {
    while (!closed && running < concurrency && queue.length > 0) {
      const id = queue.shift()!;
      running++;
      void dispatch(id).finally(() => {
        running--;
        pending.delete(id);
        pump();
        settleIdle();
      });
    }
    settleIdle();
  };

  const dispatch = async (id: string) => {
    try {
      await applyReceivedEvent(deps, id);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      deps.log?.error({ err, webhookEventId: id }, 'applying a stored payment event failed; it will be retried');
      await deps.db
        .update(webhookEvents)
        .set({
          attempts: sql`${webhookEvents.attempts} + 1`,
          // 1 s, 2 s, 4 s … capped at 5 min: an outage is not hammered, and recovery is prompt.
          nextAttemptAt: sql`now() + make_interval(secs => least(power(2, ${webhookEvents.attempts}), 300))`,
          lastError: message.slice(0, 1000),
        })
        .where(and(eq(webhookEvents.id, id), eq(webhookEvents.status, 'received')))
        .catch(() => undefined); // The database is away too: the lease set at storing brings it back.
    }
  };

  /** Claims the due events (moving their lease ahead, so other dispatchers leave them) and queues them. */
  const poll = async (): Promise<number> => {
    if (closed || queue.length >= maxQueued) return 0;
    const now = new Date();
    const due = deps.db
      .select({ id: webhookEvents.id })
      .from(webhookEvents)
      .where(and(eq(webhookEvents.status, 'received'), lte(webhookEvents.nextAttemptAt, now)))
      .orderBy(asc(webhookEvents.nextAttemptAt))
      .limit(Math.min(200, maxQueued - queue.length));
    const claimed = await deps.db
      .update(webhookEvents)
      .set({ nextAttemptAt: new Date(now.getTime() + dispatchLeaseMs) })
      .where(and(inArray(webhookEvents.id, due), eq(webhookEvents.status, 'received'), lte(webhookEvents.nextAttemptAt, now)))
      .returning({ id: webhookEvents.id });
    for (const { id } of claimed) enqueue(id);
    return claimed.length;
  };

  const pollIntervalMs = options.pollIntervalMs ?? 2000;
  let polling: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    polling = poll().catch((err) => deps.log?.error({ err }, 'looking for unapplied payment events failed'));
  }, pollIntervalMs);
  timer.unref();

  return {
    wake(id) {
      if (queue.length < maxQueued) enqueue(id);
    },
    poll,
    idle: () => (running === 0 && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve))),
    async close() {
      clearInterval(timer);
      await polling;
      // Finish what is in hand; what is only queued stays `received` and is picked up later.
      queue.length = 0;
      closed = true;
      if (running > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
