// The e-mail channel: the templates of the collection ladder, and the mailer driving the
// real @sendgrid/mail client against a local SendGrid stand-in.
import { createServer } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMailer, IDEMPOTENCY_HEADER, type Mailer } from '../activities/mailer';
import { renderMessage, templateNames, type RenderMessageInput } from '../activities/templates';
import { tones } from '../domain/policy';
import { startFakeSendGrid, type FakeSendGrid } from './support/fake-sendgrid';

const NBSP = '\u00a0';

const facts = (overrides: Partial<RenderMessageInput> = {}): RenderMessageInput => ({
  template: 'firm_reminder',
  tone: 'firm',
  locale: 'de-DE',
  customerName: 'Muster GmbH',
  invoiceNumber: '2026-0042',
  amountOutstandingMinor: 125_000,
  currency: 'EUR',
  dueDate: '2026-10-31',
  daysOverdue: 30,
  paymentInstructions: 'IBAN DE89 3704 0044 0532 0130 00\nVerwendungszweck: 2026-0042',
  businessName: 'Beispiel AG',
  ...overrides,
});

/** The failure a promise rejected with, asserted to be an ApplicationFailure. */
async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApplicationFailure);
  return error as ApplicationFailure;
}

describe('templates', () => {
  it('renders every template in English and German, in every tone', () => {
    for (const template of templateNames) {
      for (const locale of ['en', 'de-DE']) {
        for (const tone of tones) {
          const m = renderMessage(
            facts({ template, locale, tone, referralDate: '2026-12-15', action: 'agency_referral', reason: 'No answer', deadline: '2026-12-01' }),
          );
          expect(m.subject, `${template} ${locale} ${tone}`).not.toBe('');
          expect(m.subject).not.toMatch(/\n/);
          expect(m.text).toContain('2026-0042');
          expect(m.text).not.toMatch(/undefined|null|NaN|\[object/);
          expect(m.html).toContain('<p>');
        }
      }
    }
  });

  it('formats amounts and dates in the debtor locale', () => {
    const de = renderMessage(facts());
    expect(de.text).toContain(`1.250,00${NBSP}€`);
    expect(de.subject).toBe(`Mahnung: Rechnung 2026-0042, 1.250,00${NBSP}€ offen`);
    expect(de.text).toContain('31.10.2026');
    expect(de.text).toContain('seit 30 Tagen überfällig');
    expect(de.text).toMatch(/^Guten Tag Muster GmbH,/);

    const en = renderMessage(facts({ locale: 'en' }));
    expect(en.text).toContain('€1,250.00');
    expect(en.text).toContain('31 October 2026');
    expect(en.text).toContain('30 days overdue');
    expect(renderMessage(facts({ locale: 'en-US' })).text).toContain('October 31, 2026');
  });

  it('writes German for any de* locale and falls back to English for other languages', () => {
    expect(renderMessage(facts({ locale: 'de-AT' })).subject).toMatch(/^Mahnung/);
    expect(renderMessage(facts({ locale: 'de_DE' })).subject).toMatch(/^Mahnung/);
    expect(renderMessage(facts({ locale: 'de' })).text).toContain(`1.250,00${NBSP}€`);
    const fr = renderMessage(facts({ locale: 'fr-FR' }));
    expect(fr.subject).toMatch(/^Overdue/);
    expect(fr.text).toContain('€1,250.00');
    expect(renderMessage(facts({ locale: 'not a locale!' })).subject).toMatch(/^Overdue/);
  });

  it('names the referral date in a final notice, and no consequence without one', () => {
    const en = renderMessage(facts({ template: 'final_notice', tone: 'final', locale: 'en-GB', referralDate: '2026-12-15' }));
    expect(en.text).toContain('will be referred to a collection agency on 15 December 2026');
    const de = renderMessage(facts({ template: 'final_notice', tone: 'final', referralDate: '2026-12-15' }));
    expect(de.text).toContain('am 15.12.2026 an ein Inkassounternehmen übergeben');
    expect(renderMessage(facts({ template: 'final_notice', tone: 'final', locale: 'en' })).text).not.toMatch(/agency|legal/i);
  });

  it('keeps friendly messages free of consequences', () => {
    for (const template of ['pre_due', 'courtesy_reminder'] as const) {
      for (const locale of ['en', 'de']) {
        const { text } = renderMessage(facts({ template, tone: 'friendly', locale, daysOverdue: template === 'pre_due' ? -3 : 1 }));
        expect(text).not.toMatch(/agency|legal|court|Inkasso|rechtlich|Gericht|Mahnung/i);
      }
    }
    expect(renderMessage(facts({ template: 'pre_due', tone: 'friendly', locale: 'en', daysOverdue: -3 })).text).toContain(
      'falls due on 31 October 2026, in 3 days',
    );
  });

  it('renders instalments and approval requests from their own facts', () => {
    const plan = renderMessage(
      facts({ template: 'payment_plan_reminder', tone: 'friendly', locale: 'en', instalmentDueDate: '2026-11-15', instalmentAmountMinor: 25_000 }),
    );
    expect(plan.text).toContain('€250.00, falls due on 15 November 2026');
    expect(plan.text).toContain('remaining balance of the invoice is €1,250.00');
    const approval = renderMessage(
      facts({ template: 'approval_request', tone: 'final', locale: 'en', action: 'agency_referral', reason: 'No reply to the final notice', deadline: '2026-12-20T17:00:00Z' }),
    );
    expect(approval.subject).toBe('Approval needed: agency referral for invoice 2026-0042, €1,250.00');
    expect(approval.text).toContain('Reason: No reply to the final notice');
    expect(approval.text).toContain('Please decide by 20 December 2026, 17:00 UTC');
  });

  it('escapes every fact in the HTML part', () => {
    const m = renderMessage(
      facts({ customerName: '<script>alert("x")</script> & Co', paymentInstructions: '<a href="javascript:x">pay</a>', businessName: "O'Brien <Ltd>" }),
    );
    expect(m.text).toContain('<script>alert("x")</script> & Co');
    expect(m.html).not.toContain('<script>');
    expect(m.html).not.toContain('<a href');
    expect(m.html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; Co');
    expect(m.html).toContain('O&#39;Brien &#60;Ltd&#62;');
    // A subject is a mail header: no line breaks from the facts.
    expect(renderMessage(facts({ invoiceNumber: '42\r\nBcc: x@y.example' })).subject).toBe(`Mahnung: Rechnung 42 Bcc: x@y.example, 1.250,00${NBSP}€ offen`);
  });

  it('throws on an unknown template, naming it', () => {
    expect(() => renderMessage(facts({ template: 'dunning_haiku' }))).toThrow(/unknown e-mail template "dunning_haiku"/);
  });
});

describe('mailer (real @sendgrid/mail client against a fake SendGrid)', () => {
  let fake: FakeSendGrid;
  let mailer: Mailer;
  const from = 'collections@beispiel.example';
  const message = () => {
    const rendered = renderMessage(facts());
    return { to: 'ap@muster.example', ...rendered, idempotencyKey: 'collection-INV-1:day-30', categories: ['arrears', 'firm_reminder'] };
  };

  beforeAll(async () => {
    fake = await startFakeSendGrid();
    mailer = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from });
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.reset());

  it('sends a German firm reminder with its facts and the idempotency key', async () => {
    const result = await mailer.send(message());
    expect(fake.messages).toHaveLength(1);
    const [sent] = fake.messages;
    expect(result.messageId).toBe(sent!.messageId);

    const { body, headers } = sent!;
    expect(body.personalizations[0]!.to[0]!.email).toBe('ap@muster.example');
    expect(body.from.email).toBe(from);
    expect(body.subject).toBe(`Mahnung: Rechnung 2026-0042, 1.250,00${NBSP}€ offen`);
    const text = body.content.find((c) => c.type === 'text/plain')!.value;
    const html = body.content.find((c) => c.type === 'text/html')!.value;
    for (const part of [text, html]) {
      expect(part).toContain(`1.250,00${NBSP}€`);
      expect(part).toContain('31.10.2026');
      expect(part).toContain('Muster GmbH');
      expect(part).toContain('IBAN DE89 3704 0044 0532 0130 00');
    }
    expect(body.custom_args).toEqual({ idempotencyKey: 'collection-INV-1:day-30' });
    expect(body.headers).toEqual({ [IDEMPOTENCY_HEADER]: 'collection-INV-1:day-30' });
    expect(headers['x-arrears-idempotency-key']).toBe('collection-INV-1:day-30');
    expect(body.categories).toEqual(['arrears', 'firm_reminder']);
  });

  it('rejects for good on a wrong API key, without leaking either key', async () => {
    const wrongKey = 'SG.wrong-key.0123456789';
    const wrong = createMailer({ apiKey: wrongKey, baseUrl: fake.url, from });
    const failure = await failureOf(wrong.send(message()));
    expect(failure.type).toBe('EmailRejected');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toBe('401: The provided authorization grant is invalid, expired, or revoked');
    expect(JSON.stringify(failure)).not.toContain('wrong-key');
    expect(fake.messages).toHaveLength(0);
  });

  it('rejects for good on an invalid address', async () => {
    const failure = await failureOf(mailer.send({ ...message(), to: 'not-an-address' }));
    expect(failure.type).toBe('EmailRejected');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toBe('400: Does not contain a valid address. (personalizations.0.to.0.email)');
  });

  it('retries a 429 after the time X-RateLimit-Reset names', async () => {
    let now = Date.UTC(2026, 10, 30, 9, 0, 0);
    const clocked = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from, now: () => now });
    fake.failNext(1, 429, { 'X-RateLimit-Limit': '600', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(now / 1000 + 42) });
    const failure = await failureOf(clocked.send(message()));
    expect(failure.type).toBe('EmailTemporarilyUnavailable');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toBe('429: too many requests');
    expect(failure.nextRetryDelay).toBe(42_000);
    // A reset that far off fails that attempt only: other sends still go (a skewed clock or a
    // garbled header must not hold back every e-mail), and so does the retry.
    await clocked.send(message());
    expect(fake.messages).toHaveLength(1);
    now += 42_000;
    await clocked.send(message());
    expect(fake.messages).toHaveLength(2);
  });

  it('honours Retry-After and the fake rate limit', async () => {
    fake.failNext(1, 503, { 'Retry-After': '7' });
    expect((await failureOf(mailer.send(message()))).nextRetryDelay).toBe(7_000);

    // Without time to wait in-process, a rate-limited send fails the attempt with the reset as its delay.
    fake.reset();
    fake.rateLimit({ perSecond: 1 });
    const impatient = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from, rateLimitWaitMs: 0 });
    const results = await Promise.allSettled([impatient.send(message()), impatient.send(message())]);
    const rejected = results.filter((r) => r.status === 'rejected');
    // Two requests can straddle a second boundary; usually the second is limited.
    for (const r of rejected) {
      const failure = (r as PromiseRejectedResult).reason as ApplicationFailure;
      expect(failure.type).toBe('EmailTemporarilyUnavailable');
      expect(failure.nextRetryDelay).toBeGreaterThanOrEqual(1_000);
      expect(failure.nextRetryDelay).toBeLessThanOrEqual(2_000);
    }
    expect(fake.messages.length + rejected.length).toBe(2);
  });

  it('waits for a rate-limit window that reopens soon, and sends in the same attempt', async () => {
    fake.rateLimit({ perSecond: 1 });
    await Promise.all([mailer.send(message()), mailer.send(message()), mailer.send(message())]);
    expect(fake.messages).toHaveLength(3);
    // One a second: the three went out in three windows, and the 429s in between were waited out.
    const seconds = fake.messages.map((m) => Math.floor(m.at / 1000));
    expect(new Set(seconds).size).toBe(3);
    expect(fake.requests.filter((r) => r.status === 429).length).toBeGreaterThan(0);
  });

  it('sends only what each reopened window takes, instead of every waiting send racing into a 429', async () => {
    fake.rateLimit({ perSecond: 2 });
    // A mailer of its own: one that has met a limit before remembers it.
    const fresh = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from });
    await Promise.all(Array.from({ length: 10 }, () => fresh.send(message())));
    expect(fake.messages).toHaveLength(10);
    const limited = fake.requests.filter((r) => r.status === 429).length;
    // The first burst meets the limit blind: 8 of 10 refused. After that, each window takes its
    // two and one send goes ahead to learn the next reset: about 3 more. Racing, every waiting
    // send would go at every reopening: 8 + 6 + 4 + 2 = 20.
    expect(limited).toBeGreaterThanOrEqual(8);
    expect(limited).toBeLessThanOrEqual(13);
  });

  it('asks a send that waited for the rate limit whether it is still due, and sends nothing if not', async () => {
    fake.rateLimit({ perSecond: 1 });
    const fresh = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from });
    let asked = 0;
    const paidMeanwhile = async () => {
      asked += 1;
      throw new Error('paid meanwhile');
    };
    // Both at the start of one of the fake's one-second windows.
    await new Promise((resolve) => setTimeout(resolve, 1_010 - (Date.now() % 1_000)));
    const results = await Promise.allSettled([fresh.send({ ...message(), stillDue: paidMeanwhile }), fresh.send({ ...message(), stillDue: paidMeanwhile })]);
    // One went at once, without being asked; the other met the limit, waited, was asked, and stayed.
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { message: 'paid meanwhile' } });
    expect(asked).toBe(1);
    expect(fake.messages).toHaveLength(1);
    expect(fake.requests.map((r) => r.status).sort()).toEqual([202, 429]);
  });

  it('asks a send that gave up waiting behind the send ahead whether it is still due', async () => {
    fake.rateLimit({ perSecond: 1 });
    const fresh = createMailer({ apiKey: fake.apiKey, baseUrl: fake.url, from, rateLimitWaitMs: 1_200 });
    const nextSecond = () => new Promise((resolve) => setTimeout(resolve, 1_010 - (Date.now() % 1_000)));
    // Two at the start of a window teach the mailer SendGrid's limit (one a second): one 202,
    // one 429 and a wait for the next window.
    await nextSecond();
    await Promise.all([fresh.send(message()), fresh.send(message())]);
    expect(fake.messages).toHaveLength(2);
    // In a window of their own, with SendGrid answering slowly: the first send goes ahead to
    // learn whether there is room; the second waits behind it longer than it may, is asked
    // whether it is still due, and stays.
    fake.latency(2_500);
    await nextSecond();
    let asked = 0;
    const paidMeanwhile = async () => {
      asked += 1;
      throw new Error('paid meanwhile');
    };
    const results = await Promise.allSettled([fresh.send(message()), fresh.send({ ...message(), stillDue: paidMeanwhile })]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(results[1]).toMatchObject({ reason: { message: 'paid meanwhile' } });
    expect(asked).toBe(1);
    expect(fake.messages).toHaveLength(3);
  });

  it('retries a 500', async () => {
    fake.failNext(1, 500);
    const failure = await failureOf(mailer.send(message()));
    expect(failure.type).toBe('EmailTemporarilyUnavailable');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.nextRetryDelay).toBeUndefined();
    expect(failure.message).toBe('500: internal server error');
  });

  it('retries when SendGrid cannot be reached', async () => {
    const port = await closedPort();
    const unreachable = createMailer({ apiKey: fake.apiKey, baseUrl: `http://127.0.0.1:${port}`, from });
    const failure = await failureOf(unreachable.send(message()));
    expect(failure.type).toBe('EmailTemporarilyUnavailable');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toMatch(/^SendGrid unreachable: ECONNREFUSED/);
    expect(JSON.stringify(failure)).not.toContain(fake.apiKey);
  });

  it('is disabled without an API key', async () => {
    const disabled = createMailer({ apiKey: undefined, baseUrl: fake.url, from });
    const failure = await failureOf(disabled.send(message()));
    expect(failure.type).toBe('EmailDisabled');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toBe('SENDGRID_API_KEY is not set: e-mail is disabled');
    expect(fake.requests).toHaveLength(0);
  });
});

/** A port nothing listens on: bound, noted, released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
