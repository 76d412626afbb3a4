import { createHmac } from 'node:crypto';
import Stripe from 'stripe';
import { sameSecret } from './auth';
import { HttpProblem } from './problem';

/**
 * Generic signed webhooks: the sender puts the Unix time (seconds) in `Arrears-Timestamp` and
 * `v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` in `Arrears-Signature`. The timestamp is
 * signed too, so an old delivery cannot be replayed with a fresh time.
 */
export const timestampHeader = 'arrears-timestamp';
export const signatureHeader = 'arrears-signature';

export function signGenericPayload(secret: string, timestamp: number, rawBody: Buffer | string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex')}`;
}

/** The headers of a delivery signed with `secret` now (or at `timestamp`): what a sender does, and what tests and benchmarks send. */
export function signedHeaders(secret: string, rawBody: Buffer | string, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  return { 'content-type': 'application/json', [timestampHeader]: String(timestamp), [signatureHeader]: signGenericPayload(secret, timestamp, rawBody) };
}

function unauthenticated(slug: string, detail: string): HttpProblem {
  return new HttpProblem(401, slug, 'Webhook signature not accepted', detail);
}

export function verifyGenericSignature(input: {
  secrets: readonly string[];
  rawBody: Buffer;
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds: number;
  nowMs: number;
}): void {
  if (!input.timestamp || !input.signature) {
    throw unauthenticated('webhook-signature-missing', `Send the ${timestampHeader} and ${signatureHeader} headers.`);
  }
  if (!/^\d{1,12}$/.test(input.timestamp)) {
    throw unauthenticated('webhook-signature-invalid', `${timestampHeader} must be the Unix time in seconds.`);
  }
  const ageSeconds = Math.abs(input.nowMs / 1000 - Number(input.timestamp));
  if (ageSeconds > input.toleranceSeconds) {
    throw unauthenticated(
      'webhook-timestamp-stale',
      `The signed timestamp is ${Math.round(ageSeconds)} s away from our clock; at most ${input.toleranceSeconds} s is accepted. Sign each delivery afresh.`,
    );
  }
  // Several v1= values are allowed, so a sender can sign with the old and the new secret while rotating.
  const offered = input.signature.split(/[,\s]+/).filter((s) => s.startsWith('v1='));
  const accepted = input.secrets.some((secret) => {
    const expected = signGenericPayload(secret, Number(input.timestamp), input.rawBody);
    return offered.some((candidate) => sameSecret(candidate, expected));
  });
  if (!accepted) throw unauthenticated('webhook-signature-invalid', 'The signature does not match the body and timestamp.');
}

/** Stripe's own scheme (`Stripe-Signature`), checked by the official library against each configured secret. */
export function verifyStripeEvent(input: {
  secrets: readonly string[];
  rawBody: Buffer;
  signature: string | undefined;
  toleranceSeconds: number;
}): Stripe.Event {
  if (!input.signature) throw unauthenticated('webhook-signature-missing', 'Send the Stripe-Signature header.');
  let lastError: unknown;
  for (const secret of input.secrets) {
    try {
      return Stripe.webhooks.constructEvent(input.rawBody, input.signature, secret, input.toleranceSeconds);
    } catch (err) {
      lastError = err;
    }
  }
  const message = lastError instanceof Error ? lastError.message : 'no signing secret matched';
  throw unauthenticated(
    /tolerance/i.test(message) ? 'webhook-timestamp-stale' : 'webhook-signature-invalid',
    `Stripe signature rejected: ${message.split('\n')[0]}`,
  );
}
