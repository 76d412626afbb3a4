// A local stand-in for SendGrid's v3 mail send, for tests only: the real @sendgrid/mail
// client talks to it over HTTP on 127.0.0.1. It checks the key and the body roughly the way
// SendGrid does, answers with SendGrid's status codes, headers and error shapes, records what
// it accepted, and can be told to fail (outages, rate limits).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The parts of SendGrid's mail-send body the tests look at (snake_case, as on the wire). */
export type SendGridMailBody = {
  personalizations: { to: { email: string; name?: string }[]; subject?: string }[];
  from: { email: string; name?: string };
  subject?: string;
  content: { type: string; value: string }[];
  custom_args?: Record<string, string>;
  headers?: Record<string, string>;
  categories?: string[];
  [key: string]: unknown;
};

/** `at`: when it was accepted (epoch ms), for send rates. */
export type RecordedMessage = { messageId: string; body: SendGridMailBody; headers: IncomingHttpHeaders; at: number };
/** `to`: the first recipient, when the body named one; `at`: when the answer went out (epoch ms). */
export type RecordedRequest = { method: string; url: string; status: number; at: number; to?: string };

type Fault = { status: number; headers: Record<string, string>; body: unknown; to?: string; delayMs?: number };

export type FakeSendGrid = {
  /** Base URL for SENDGRID_BASE_URL, e.g. http://127.0.0.1:41234 */
  url: string;
  apiKey: string;
  /** Accepted messages, in order. */
  messages: RecordedMessage[];
  /** Every request with the status it got, accepted or not. */
  requests: RecordedRequest[];
  /** The recipient of every request as it arrives, before it is answered (a slow answer is still pending). */
  arrivals: (string | undefined)[];
  /** Answers the next `count` requests with `status` (before any other check). */
  /**
   * Answers the next `count` requests with `status` (before any other check); with `to`, only
   * requests addressed to that recipient (other cases' mail on a shared server goes through);
   * with `delayMs`, each such answer comes that long after the request (a slow failure).
   */
  failNext(count: number, status: number, headers?: Record<string, string>, body?: unknown, to?: string, delayMs?: number): void;
  /** Answers 429 with X-RateLimit-* once more than `perSecond` requests arrive in a second; null lifts it. */
  rateLimit(limit: { perSecond: number } | null): void;
  /** Answers every request with `status` (an outage) until called with null. */
  outage(status: number | null): void;
  /**
   * Holds each accepted message's 202 for `ms` before answering. The message counts as
   * accepted when it arrives, as at SendGrid: a sender that dies meanwhile never learns it.
   */
  latency(ms: number): void;
  /** Forgets messages, requests, faults and the rate limit. */
  reset(): void;
  close(): Promise<void>;
};

const sendGridError = (message: string, field: string | null = null, help: string | null = null) => ({
  errors: [{ message, field, help }],
});

const looksLikeEmail = (value: unknown): value is string =>
  typeof value === 'string' && /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/.test(value);

/** SendGrid's 400 checks, the ones a sender is likely to trip over; null when the body passes. */
function validate(body: unknown): { message: string; field: string | null } | null {
  if (typeof body !== 'object' || body === null) return { message: 'Bad Request', field: null };
  const b = body as Partial<SendGridMailBody>;
  const first = Array.isArray(b.personalizations) ? b.personalizations[0] : undefined;
  if (!first) {
    return { message: 'The personalizations field is required and must have at least one personalization.', field: 'personalizations' };
  }
  if (!Array.isArray(first.to) || first.to.length === 0) {
    return { message: 'The to array is required for all personalization objects, and must have at least one email object with a valid email address.', field: 'personalizations.0.to' };
  }
  if (!looksLikeEmail(first.to[0]?.email)) return { message: 'Does not contain a valid address.', field: 'personalizations.0.to.0.email' };
  if (!looksLikeEmail(b.from?.email)) return { message: 'The from email does not contain a valid address.', field: 'from.email' };
  if (!b.subject && !first.subject) {
    return { message: 'The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.', field: 'subject' };
  }
  if (!Array.isArray(b.content) || b.content.length === 0 || b.content.some((c) => typeof c?.value !== 'string' || c.value === '')) {
    return { message: 'Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.', field: 'content' };
  }
  if (b.custom_args && Object.values(b.custom_args).some((v) => typeof v !== 'string')) {
    return { message: 'Invalid type. Expected: string, given: integer.', field: 'custom_args' };
  }
  return null;
}

export async function startFakeSendGrid(options: { apiKey?: string } = {}): Promise<FakeSendGrid> {
  const apiKey = options.apiKey ?? `SG.fake-${randomBytes(8).toString('hex')}.${randomBytes(16).toString('hex')}`;
  const messages: RecordedMessage[] = [];
  const requests: RecordedRequest[] = [];
  const arrivals: (string | undefined)[] = [];
  let faults: Fault[] = [];
  let limit: { perSecond: number } | null = null;
  let outageStatus: number | null = null;
  let latencyMs = 0;
  let window = { second: 0, count: 0 };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recipient = (() => {
        try {
          return (JSON.parse(Buffer.concat(chunks).toString('utf8')) as SendGridMailBody).personalizations?.[0]?.to?.[0]?.email;
        } catch {
          return undefined;
        }
      })();
      arrivals.push(recipient);
      const answer = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
        requests.push({ method: req.method ?? '', url: req.url ?? '', status, at: Date.now(), ...(recipient ? { to: recipient } : {}) });
        reply(res, status, body, headers);
      };

      if (outageStatus !== null) return answer(outageStatus, sendGridError('internal server error'));
      const faultIndex = faults.findIndex((f) => f.to === undefined || f.to === recipient);
      if (faultIndex >= 0) {
        const [fault] = faults.splice(faultIndex, 1);
        if (fault!.delayMs) return void setTimeout(() => answer(fault!.status, fault!.body, fault!.headers), fault!.delayMs);
        return answer(fault!.status, fault!.body, fault!.headers);
      }

      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v3/mail/send') {
        return answer(404, { errors: [{ field: null, message: 'resource not found' }] });
      }
      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        return answer(401, sendGridError('The provided authorization grant is invalid, expired, or revoked'));
      }
      if (limit) {
        const second = Math.floor(Date.now() / 1000);
        if (window.second !== second) window = { second, count: 0 };
        if (window.count >= limit.perSecond) {
          return answer(429, { errors: [{ field: null, message: 'too many requests' }] }, {
            'X-RateLimit-Limit': String(limit.perSecond),
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': String(second + 1),
          });
        }
        window.count += 1;
      }

      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return answer(400, sendGridError('Bad Request'));
      }
      const problem = validate(body);
      if (problem) {
        return answer(400, sendGridError(problem.message, problem.field, 'http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html'));
      }

      const messageId = randomBytes(11).toString('base64url');
      messages.push({ messageId, body: body as SendGridMailBody, headers: req.headers, at: Date.now() });
      if (latencyMs > 0) {
        setTimeout(() => answer(202, undefined, { 'X-Message-Id': messageId }), latencyMs);
        return;
      }
      return answer(202, undefined, { 'X-Message-Id': messageId });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    messages,
    requests,
    arrivals,
    failNext(count, status, headers = {}, body, to, delayMs) {
      const defaultBody =
        status === 429
          ? { errors: [{ field: null, message: 'too many requests' }] }
          : sendGridError(status >= 500 ? 'internal server error' : 'Bad Request');
      for (let i = 0; i < count; i++) faults.push({ status, headers, body: body ?? defaultBody, to, delayMs });
    },
    rateLimit(next) {
      limit = next;
      window = { second: 0, count: 0 };
    },
    outage(status) {
      outageStatus = status;
    },
    latency(ms) {
      latencyMs = ms;
    },
    reset() {
      messages.length = 0;
      requests.length = 0;
      arrivals.length = 0;
      faults = [];
      limit = null;
      outageStatus = null;
      latencyMs = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(payload ? { 'Content-Type': 'application/json' } : {}),
    'Content-Length': String(Buffer.byteLength(payload)),
    ...headers,
  });
  res.end(payload);
}
