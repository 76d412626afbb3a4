import { Client } from '@sendgrid/client';
import { MailService, type MailDataRequired } from '@sendgrid/mail';
import { ApplicationFailure } from '@temporalio/common';

/**
 * The e-mail channel: SendGrid's v3 mail send through the official client, with every
 * failure turned into a Temporal ApplicationFailure the retry policy understands.
 *
 *   429 whose window reopens soon       → waits for it and sends again, in the same attempt
 *   429, 5xx, network error, timeout  → retryable 'EmailTemporarilyUnavailable', with
 *                                       nextRetryDelay from X-RateLimit-Reset / Retry-After
 *   any other 4xx (bad key, bad address) → non-retryable 'EmailRejected'
 *   no API key configured              → non-retryable 'EmailDisabled'
 *
 * The API key never appears in a message: failures are built from the status, the
 * response headers and SendGrid's error body only, never from the raw HTTP error (whose
 * request config carries the Authorization header).
 */

export type MailerOptions = {
  /** SENDGRID_API_KEY; undefined disables e-mail (every send fails with EmailDisabled). */
  apiKey?: string | undefined;
  /** SENDGRID_BASE_URL, e.g. https://api.sendgrid.com (the client appends /v3/mail/send). */
  baseUrl: string;
  /** MAIL_FROM, or an address with a display name. */
  from: string | { email: string; name?: string };
  /** Per-request timeout; a timeout counts as temporarily unavailable. Default 20 s. */
  timeoutMs?: number;
  /** Clock for X-RateLimit-Reset arithmetic (tests). */
  now?: () => number;
  /**
   * How long one send may wait in-process, in all, for SendGrid's rate-limit window to reopen
   * (X-RateLimit-Reset) before it fails the attempt for Temporal to retry. Default 10 s.
   */
  rateLimitWaitMs?: number;
};

export type SendEmailInput = {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Ties SendGrid's event webhooks back to the communication: custom arg and mail header. */
  idempotencyKey: string;
  /**
   * Asked again when this send's turn comes after a wait for SendGrid's rate limit (seconds in
   * which a payment may land): throws to send nothing.
   */
  stillDue?: () => Promise<void>;
  categories?: string[];
};

export type SendEmailResult = { messageId: string | null };

export type Mailer = { send(input: SendEmailInput): Promise<SendEmailResult> };

export const IDEMPOTENCY_HEADER = 'X-Arrears-Idempotency-Key';

/** Bounds for a server-suggested retry delay: a garbled header must not park a case for years. */
const MIN_RETRY_DELAY_MS = 1_000;
const MAX_RETRY_DELAY_MS = 60 * 60 * 1_000;

/**
 * Why a 429 is waited for in-process: failing the attempt makes Temporal retry it after the
 * reset, but every retry counts against the activity's attempts (15), and the retries of a
 * storm come back in a herd, once a second after each one's own 429, not when the window
 * opens. Measured with 60 cases due at once and a limit of 2/s: 4 cases blocked with their
 * attempts used up, and 0.67× the limit sent (BENCHMARKS.md, wake-up storm). Waiting until the
 * reset, with the other sends of this worker held back until then too, keeps each window full
 * and the attempts for real outages. The wait is short (rateLimitWaitMs, well inside the
 * activity's 1-minute start-to-close timeout); a payment arriving meanwhile cannot stop the
 * attempt, just as it cannot stop a request already sent.
 */
const DEFAULT_RATE_LIMIT_WAIT_MS = 10_000;
const MAX_TRIES_PER_SEND = 50;
/** A reset that has just passed is still waited for a moment, so a skewed clock cannot make a busy loop. */
const MIN_RATE_LIMIT_WAIT_MS = 20;

export function createMailer(options: MailerOptions): Mailer {
  const { apiKey } = options;
  if (apiKey === undefined || apiKey === '') {
    return {
      async send() {
        throw ApplicationFailure.nonRetryable('SENDGRID_API_KEY is not set: e-mail is disabled', 'EmailDisabled');
      },
    };
  }
  const now = options.now ?? Date.now;

  // A client of our own (not the module's shared singleton), so the base URL and key stay
  // local to this mailer. Order matters: setApiKey() resets baseUrl to SendGrid's global
  // host, so the base URL is set after it.
  const client = new Client();
  client.setApiKey(apiKey);
  client.setDefaultRequest('baseUrl', options.baseUrl.replace(/\/+$/, '') + '/');
  const service = new MailService();
  service.setClient(client);
  service.setTimeout(options.timeoutMs ?? 20_000);
  const waitBudgetMs = options.rateLimitWaitMs ?? DEFAULT_RATE_LIMIT_WAIT_MS;
  const window = rateLimitWindow(now);

  return {
    async send(input) {
      const message: MailDataRequired = {
        to: input.to,
        from: options.from,
        subject: input.subject,
        text: input.text,
        html: input.html,
        customArgs: { idempotencyKey: input.idempotencyKey },
        headers: { [IDEMPOTENCY_HEADER]: input.idempotencyKey },
        ...(input.categories?.length ? { categories: input.categories } : {}),
      };
      // The budget runs on the monotonic clock: a wall clock stepped back cannot stretch it.
      const giveUpAt = performance.now() + waitBudgetMs;
      const budgetLeft = () => giveUpAt - performance.now();
      // The try cap guards against a reset that is always "now" (a skewed clock): no tight loop.
      for (let tries = 1; ; tries++) {
        const turn = await window.take(budgetLeft, input.stillDue);
        let response: { headers?: unknown };
        try {
          [response] = await service.send(message);
        } catch (error) {
          const reopensAt = rateLimitResetAt(error, now());
          // A reset within the wait budget holds back this worker's other sends too. One further
          // off fails only this attempt: a skewed clock or a garbled header must not stop every
          // e-mail until then.
          if (reopensAt !== undefined && reopensAt - now() <= waitBudgetMs) window.closedUntil(reopensAt, rateLimitOf(error));
          turn.done(false);
          if (reopensAt === undefined || reopensAt - now() > budgetLeft() || tries >= MAX_TRIES_PER_SEND) throw toFailure(error, now());
          continue;
        }
        turn.done(true);
        return { messageId: headerValue(response.headers, 'x-message-id') ?? null };
      }
    },
  };
}

/**
 * What this worker knows of SendGrid's rate-limit window, so that its sends wait their turn
 * instead of racing each other into 429s. A 429 says when the window reopens and how many
 * sends it takes (X-RateLimit-Reset, X-RateLimit-Limit). Until it reopens nobody sends; then
 * at most that many go; past them, one send at a time goes ahead to learn the next reset (a
 * 429) or that there is room (a 202, and the next `limit` go). Without this, every waiting
 * send fired at each reopening: 184,737 answers of 429 for 10,000 e-mails at 5/s
 * (BENCHMARKS.md, wake-up storm). It only orders this worker's sends; SendGrid still decides.
 */
function rateLimitWindow(now: () => number) {
  /** Until when the window is closed (epoch ms). */
  let opensAt = 0;
  /** Sends the window takes once it reopens; unknown (Infinity) until a 429 names it. */
  let limit = Infinity;
  /** Sends gone since it reopened (or since a send ahead found room). */
  let used = 0;
  /** Whether a send past the limit is out, learning what the window says now. */
  let scouting = false;
  /** Resolved whenever the state changes, so waiting sends look again. */
  let changed = promiseWithResolve();
  const notify = () => {
    changed.resolve();
    changed = promiseWithResolve();
  };
  return {
    /**
     * Waits for this send's turn. A window that reopens after `budgetLeft()` fails the attempt at
     * once, for Temporal to retry after the reset, without a request it knows SendGrid refuses.
     * Waiting behind the send ahead ends with the budget too: then it goes on its own.
     * `done(sent)` once the request is answered: whether SendGrid took it.
     */
    async take(budgetLeft: () => number, stillDue?: () => Promise<void>): Promise<{ done(sent: boolean): void }> {
      let waited = false;
      for (;;) {
        const closedFor = opensAt - now();
        if (closedFor > 0) {
          if (closedFor > budgetLeft()) throw windowClosedFailure(closedFor);
          waited = true;
          await Promise.race([changed.promise, sleep(closedFor)]);
          continue;
        }
        // After a wait, asked once a turn is free and before it is claimed: the claim and the
        // request stay adjacent (a request sent late spills into SendGrid's next second, and meets
        // a 429 there), and a send that is not free to go asks nothing.
        if (waited && stillDue && (used < limit || !scouting)) {
          waited = false;
          await stillDue();
          continue;
        }
        if (used < limit) {
          used++;
          return { done() {} };
        }
        if (!scouting) {
          scouting = true;
          return {
            done(sent) {
              scouting = false;
              // Taken, and no 429 reset the count meanwhile: the window has room again.
              if (sent && opensAt <= now()) used = 0;
              notify();
            },
          };
        }
        if (budgetLeft() <= 0) {
          // Out of patience behind the send ahead: it goes on its own, but only if still due.
          if (waited && stillDue) await stillDue();
          return { done() {} };
        }
        waited = true;
        await Promise.race([changed.promise, sleep(budgetLeft())]);
      }
    },
    /** A 429: closed until `reopensAt`, then `reopenLimit` sends (if SendGrid named it). */
    closedUntil(reopensAt: number, reopenLimit: number | undefined) {
      if (reopensAt > opensAt) {
        opensAt = reopensAt;
        used = 0;
        if (reopenLimit !== undefined) limit = reopenLimit;
        notify();
      }
    },
  };
}

/** The attempt's failure when SendGrid's window stays closed longer than the send may wait. */
function windowClosedFailure(closedForMs: number): ApplicationFailure {
  return ApplicationFailure.create({
    message: `429: SendGrid's rate-limit window reopens in ${Math.ceil(closedForMs / 1000)} s`,
    type: 'EmailTemporarilyUnavailable',
    nonRetryable: false,
    nextRetryDelay: Math.min(MAX_RETRY_DELAY_MS, Math.max(MIN_RETRY_DELAY_MS, Math.ceil(closedForMs))),
  });
}

function promiseWithResolve() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** X-RateLimit-Limit of a 429: how many sends a window takes. */
function rateLimitOf(error: unknown): number | undefined {
  const headers = (error as { response?: { headers?: unknown } } | null)?.response?.headers;
  const value = headerValue(headers, 'x-ratelimit-limit');
  return value !== undefined && /^\d+$/.test(value.trim()) && Number(value) > 0 ? Number(value) : undefined;
}

/** Turns what the SendGrid client rejected with into the failure Temporal should see. */
export function toFailure(error: unknown, nowMs: number): ApplicationFailure {
  if (error instanceof ApplicationFailure) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
    isAxiosError?: unknown;
    response?: { headers?: unknown; body?: unknown };
  };

  // An HTTP answer: the client's ResponseError carries the status in `code`.
  if (typeof e.code === 'number' && e.response) {
    const status = e.code;
    const detail = sendGridErrors(e.response.body) ?? (typeof e.message === 'string' && e.message ? e.message : 'no error message');
    if (status === 429 || status >= 500) {
      const nextRetryDelay = retryDelayMs(e.response.headers, nowMs);
      return ApplicationFailure.create({
        message: `${status}: ${detail}`,
        type: 'EmailTemporarilyUnavailable',
        nonRetryable: false,
        ...(nextRetryDelay !== undefined ? { nextRetryDelay } : {}),
      });
    }
    if (status >= 400) return ApplicationFailure.nonRetryable(`${status}: ${detail}`, 'EmailRejected');
    return ApplicationFailure.retryable(`${status}: unexpected answer from SendGrid`, 'EmailTemporarilyUnavailable');
  }

  const message = typeof e.message === 'string' ? e.message : String(error);
  // No answer at all: refused, reset, DNS, timeout. The axios error's config holds the
  // Authorization header, so only its code and message are kept.
  if (e.isAxiosError === true) {
    const code = typeof e.code === 'string' ? `${e.code}: ` : '';
    return ApplicationFailure.retryable(`SendGrid unreachable: ${code}${message}`, 'EmailTemporarilyUnavailable');
  }
  // The client refused to build the request (e.g. no recipient): sending again cannot help.
  return ApplicationFailure.nonRetryable(`invalid e-mail: ${message}`, 'EmailRejected');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** For a 429 with a reset time: when the window reopens (epoch ms); otherwise undefined. */
function rateLimitResetAt(error: unknown, nowMs: number): number | undefined {
  const e = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; response?: { headers?: unknown } };
  if (e.code !== 429 || !e.response) return undefined;
  const delay = rawRetryDelayMs(e.response.headers, nowMs);
  return delay === undefined ? undefined : nowMs + Math.max(MIN_RATE_LIMIT_WAIT_MS, delay);
}

/** SendGrid's error body, {"errors":[{"message","field","help"}]}, as one line. */
function sendGridErrors(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim() ? body.trim().slice(0, 500) : undefined;
    }
  }
  const errors = (parsed as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors)) return undefined;
  const parts = errors
    .map((err: { message?: unknown; field?: unknown }) => {
      if (typeof err?.message !== 'string') return undefined;
      return typeof err.field === 'string' && err.field ? `${err.message} (${err.field})` : err.message;
    })
    .filter((m): m is string => Boolean(m));
  return parts.length ? parts.join('; ').slice(0, 500) : undefined;
}

/** How long SendGrid asks us to wait, bounded for Temporal's retry: X-RateLimit-Reset (epoch seconds) or Retry-After. */
function retryDelayMs(headers: unknown, nowMs: number): number | undefined {
  const delay = rawRetryDelayMs(headers, nowMs);
  if (delay === undefined) return undefined;
  return Math.min(MAX_RETRY_DELAY_MS, Math.max(MIN_RETRY_DELAY_MS, Math.ceil(delay)));
}

/** How long SendGrid asks us to wait, as it says it (may be negative: the reset has passed). */
function rawRetryDelayMs(headers: unknown, nowMs: number): number | undefined {
  let delay: number | undefined;
  const reset = headerValue(headers, 'x-ratelimit-reset');
  if (reset !== undefined && /^\d+(\.\d+)?$/.test(reset.trim())) {
    delay = Number(reset) * 1000 - nowMs;
  } else {
    const retryAfter = headerValue(headers, 'retry-after')?.trim();
    if (retryAfter && /^\d+(\.\d+)?$/.test(retryAfter)) delay = Number(retryAfter) * 1000;
    else if (retryAfter && !Number.isNaN(Date.parse(retryAfter))) delay = Date.parse(retryAfter) - nowMs;
  }
  return delay === undefined || !Number.isFinite(delay) ? undefined : delay;
}

/** A response header by name, whatever the headers object (plain, AxiosHeaders, arrays). */
function headerValue(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted) continue;
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (first === undefined || first === null) return undefined;
    return String(first);
  }
  return undefined;
}
