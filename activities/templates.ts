import { z } from 'zod';
import { formatMoney } from '../domain/money';
import { currencySchema } from '../domain/schemas';
import { tones, type Tone } from '../domain/policy';

/**
 * The words of the collection ladder, in English and German. A policy step names a template
 * and a tone: the template decides what the message is about (the facts and the one next
 * step it may name), the tone decides the framing around it (greeting, the request to pay,
 * the "already paid?" line, the sign-off). Friendly never names consequences; firm is
 * direct; final is formal and names only the next step the policy has actually scheduled
 * (the referral date, when given). No message insults or threatens anything beyond that.
 *
 * Pure and deterministic: amounts and dates are formatted in the debtor's locale, and the
 * HTML part is the same text with every fact escaped.
 */

export const templateNames = [
  'pre_due',
  'courtesy_reminder',
  'reminder_letter',
  'firm_reminder',
  'final_notice',
  'agency_referral',
  'legal_action',
  'write_off',
  'payment_plan_reminder',
  'approval_request',
  'dispute_verification',
] as const;
export type TemplateName = (typeof templateNames)[number];

/** Templates addressed to the business's own people, never to the debtor. */
export const internalTemplates = ['write_off', 'approval_request'] as const satisfies readonly TemplateName[];

export const isTemplateName = (name: string): name is TemplateName => (templateNames as readonly string[]).includes(name);

const isoDate = z.iso.date({ error: 'must be a calendar date, YYYY-MM-DD' });

export const renderMessageInputSchema = z.object({
  template: z.string().min(1),
  tone: z.enum(tones),
  /** BCP 47 tag of the debtor, e.g. 'de-DE' or 'en'. German for any 'de*', else English. */
  locale: z.string().min(1),
  customerName: z.string().min(1),
  invoiceNumber: z.string().min(1),
  amountOutstandingMinor: z.number().int().nonnegative(),
  currency: currencySchema,
  dueDate: isoDate,
  /** Whole days past the due date; 0 or negative before it. */
  daysOverdue: z.number().int(),
  /** Bank details or a payment link, shown as given; may be empty. */
  paymentInstructions: z.string().default(''),
  businessName: z.string().min(1),
  /** final_notice: the day the account goes to a collection agency. */
  referralDate: isoDate.optional(),
  /** payment_plan_reminder: the instalment (defaults: the invoice's due date and balance). */
  instalmentDueDate: isoDate.optional(),
  instalmentAmountMinor: z.number().int().positive().optional(),
  /** approval_request: the gated action (e.g. 'agency_referral'), why, and by when. */
  action: z.string().min(1).optional(),
  reason: z.string().optional(),
  deadline: z.union([isoDate, z.iso.datetime({ offset: true })]).optional(),
});
export type RenderMessageInput = z.input<typeof renderMessageInputSchema>;

export type RenderedMessage = { subject: string; text: string; html: string };

type Language = 'en' | 'de';

/**
 * The language of the text and the locale to format numbers and dates in. A bare 'en' (and
 * any language without templates) formats the British way, "31 October 2026"; an English
 * text never carries another language's number format.
 */
export function resolveLocale(locale: string): { language: Language; formatLocale: string } {
  let canonical: string | undefined;
  try {
    canonical = Intl.getCanonicalLocales(locale.trim().replace(/_/g, '-'))[0];
  } catch {
    canonical = undefined;
  }
  const language = canonical?.split('-')[0]?.toLowerCase();
  if (canonical && language === 'de') return { language: 'de', formatLocale: canonical };
  if (canonical && language === 'en' && canonical.toLowerCase() !== 'en') return { language: 'en', formatLocale: canonical };
  return { language: 'en', formatLocale: 'en-GB' };
}

/** What a template sees: the input with amounts and dates formatted for the reader. */
type Facts = {
  tone: Tone;
  customer: string;
  invoice: string;
  amount: string;
  dueDate: string;
  daysOverdue: number;
  instructions: string;
  business: string;
  referralDate?: string;
  instalmentDate: string;
  instalmentAmount: string;
  action?: string;
  reason?: string;
  deadline?: string;
};

/** A paragraph is a string; a line break inside it stays a line break (<br> in HTML). */
type Body = { subject: string; paragraphs: string[] };
type Template = (f: Facts) => Body;
type LanguagePack = {
  templates: Record<TemplateName, Template>;
  actionLabels: Record<string, string>;
};

// ---------------------------------------------------------------------------------------
// English

const enDays = (n: number) => `${n} ${n === 1 ? 'day' : 'days'}`;

/** "was due on X and is now N days overdue" / "is due today (X)" / "falls due on X". */
function enDue(f: Facts): string {
  if (f.daysOverdue > 0) return `was due on ${f.dueDate} and is now ${enDays(f.daysOverdue)} overdue`;
  if (f.daysOverdue === 0) return `is due today (${f.dueDate})`;
  return `falls due on ${f.dueDate}`;
}

const en = {
  greeting: (f: Facts) => (f.tone === 'friendly' ? `Hello ${f.customer},` : `Dear ${f.customer},`),
  ask: (f: Facts, amount: string) =>
    ({
      friendly: `We would be grateful if you could arrange payment of ${amount} when you have a moment.`,
      firm: `Please arrange payment of ${amount} now.`,
      final: `Please pay ${amount} in full without further delay.`,
    })[f.tone],
  howToPay: (f: Facts) => (f.instructions.trim() ? [`Payment details:\n${f.instructions.trim()}`] : []),
  alreadyPaid: (f: Facts) =>
    ({
      friendly: 'If you have already paid, thank you, and please ignore this message.',
      firm:
        'If you have already paid, please disregard this message. If you believe the amount is not correct, ' +
        'reply and tell us why so that we can look into it.',
      final: 'If you have already paid, or if you dispute this amount, please contact us immediately by replying to this message.',
    })[f.tone],
  closing: (f: Facts) => `${{ friendly: 'Kind regards', firm: 'Regards', final: 'Yours sincerely' }[f.tone]},\n${f.business}`,
};

/** A message to the debtor: greeting, the template's paragraphs, then the tone's framing. */
function enLetter(f: Facts, subject: string, core: string[], opts: { ask?: string | false; instructions?: boolean; extra?: string[] } = {}): Body {
  const ask = opts.ask === undefined ? en.ask(f, f.amount) : opts.ask;
  return {
    subject,
    paragraphs: [
      en.greeting(f),
      ...core,
      ...(ask ? [ask] : []),
      ...(opts.instructions === false ? [] : en.howToPay(f)),
      ...(opts.extra ?? []),
      en.alreadyPaid(f),
      en.closing(f),
    ],
  };
}

const english: LanguagePack = {
  actionLabels: {
    email: 'e-mail',
    letter: 'letter',
    call_task: 'call',
    credit_hold: 'credit hold',
    final_notice: 'final notice',
    agency_referral: 'agency referral',
    legal_action: 'legal action',
    write_off: 'write-off',
    sell_debt: 'debt sale',
  },
  templates: {
    dispute_verification: (f) =>
      enLetter(
        f,
        `Your query about invoice ${f.invoice}: our review`,
        [
          `Thank you for raising your concerns about invoice ${f.invoice}. We have looked into them carefully.`,
          ...(f.reason ? [`Our findings: ${f.reason}`] : []),
          `Having checked the delivery and the invoice, we confirm that the invoice is correct and that ${f.amount} remains due.`,
        ],
        { extra: ['If you have documents that change this picture, please send them to us and we will review them.'] },
      ),
    pre_due: (f) =>
      enLetter(
        f,
        `Upcoming payment: invoice ${f.invoice} is due on ${f.dueDate}`,
        [
          f.daysOverdue < 0
            ? `Just a friendly heads-up: invoice ${f.invoice} for ${f.amount} falls due on ${f.dueDate}, in ${enDays(-f.daysOverdue)}.`
            : `Just a friendly heads-up: invoice ${f.invoice} for ${f.amount} ${enDue(f)}.`,
        ],
        { ask: false, extra: ["If anything on the invoice doesn't look right, just reply to this e-mail and we'll sort it out."] },
      ),
    courtesy_reminder: (f) =>
      enLetter(
        f,
        `Friendly reminder: invoice ${f.invoice} (${f.amount})`,
        [`We noticed that invoice ${f.invoice} for ${f.amount} ${enDue(f)}. These things are easy to miss, so this is just a quick reminder.`],
        { extra: ["If there's a problem with the invoice or you have a question, just reply: we're happy to help."] },
      ),
    reminder_letter: (f) =>
      enLetter(f, `Payment reminder: invoice ${f.invoice}`, [
        `According to our records, invoice ${f.invoice} has not yet been paid. The outstanding amount of ${f.amount} ${enDue(f)}.`,
      ]),
    firm_reminder: (f) =>
      enLetter(
        f,
        `Overdue: invoice ${f.invoice}, ${f.amount} outstanding`,
        [`Invoice ${f.invoice} ${enDue(f)}. Despite our earlier reminders, ${f.amount} is still outstanding.`],
        { extra: ['If you cannot pay the full amount now, contact us today so that we can agree how it will be settled.'] },
      ),
    final_notice: (f) =>
      enLetter(f, `Final notice: invoice ${f.invoice}, ${f.amount} outstanding`, [
        `This is our final notice about invoice ${f.invoice}. The outstanding amount of ${f.amount} ${enDue(f)}.`,
        ...(f.referralDate
          ? [`If the balance has not been paid in full, this account will be referred to a collection agency on ${f.referralDate}.`]
          : []),
      ]),
    agency_referral: (f) =>
      enLetter(
        f,
        `Invoice ${f.invoice} has been referred to a collection agency`,
        [
          `Invoice ${f.invoice}, due on ${f.dueDate}, remains unpaid with ${f.amount} outstanding.`,
          'We have therefore referred this account to a collection agency, which will contact you about the outstanding balance.',
        ],
        { ask: false, instructions: false },
      ),
    legal_action: (f) =>
      enLetter(
        f,
        `Legal action initiated: invoice ${f.invoice}`,
        [
          `Invoice ${f.invoice}, due on ${f.dueDate}, remains unpaid with ${f.amount} outstanding.`,
          'We have therefore initiated legal action to recover this amount. Any court documents will reach you separately.',
        ],
        { ask: false, instructions: false },
      ),
    write_off: (f) => ({
      subject: `Written off: invoice ${f.invoice} (${f.amount})`,
      paragraphs: [
        `Invoice ${f.invoice} (customer: ${f.customer}), due on ${f.dueDate}, was written off with ${f.amount} outstanding` +
          (f.daysOverdue > 0 ? ` (${enDays(f.daysOverdue)} overdue).` : '.'),
        'Internal note: this is not sent to the customer.',
        f.business,
      ],
    }),
    payment_plan_reminder: (f) =>
      enLetter(
        f,
        `Payment plan: instalment of ${f.instalmentAmount} due on ${f.instalmentDate}`,
        [
          `This is a reminder that the next instalment of your payment plan for invoice ${f.invoice}, ${f.instalmentAmount}, falls due on ${f.instalmentDate}.`,
          `The remaining balance of the invoice is ${f.amount}.`,
        ],
        { ask: en.ask(f, f.instalmentAmount) },
      ),
    approval_request: (f) => {
      const action = f.action ?? 'an action';
      return {
        subject: `Approval needed: ${action} for invoice ${f.invoice}, ${f.amount}`,
        paragraphs: [
          'Hello,',
          `Approval needed: ${action} for invoice ${f.invoice}, ${f.amount}.`,
          `Customer: ${f.customer}\nDue date: ${f.dueDate}` + (f.daysOverdue > 0 ? ` (${enDays(f.daysOverdue)} overdue)` : ''),
          ...(f.reason?.trim() ? [`Reason: ${f.reason.trim()}`] : []),
          (f.deadline ? `Please decide by ${f.deadline}. ` : '') + 'Nothing happens until the request is decided.',
          f.business,
        ],
      };
    },
  },
};

// ---------------------------------------------------------------------------------------
// German. After the greeting's comma the first paragraph starts in lower case (DIN 5008).

/** "seit 1 Tag" / "seit 12 Tagen" (dative). */
const deDaysDative = (n: number) => `${n} ${n === 1 ? 'Tag' : 'Tagen'}`;
const deDays = (n: number) => `${n} ${n === 1 ? 'Tag' : 'Tage'}`;

function deDue(f: Facts): string {
  if (f.daysOverdue > 0) return `war am ${f.dueDate} fällig und ist seit ${deDaysDative(f.daysOverdue)} überfällig`;
  if (f.daysOverdue === 0) return `ist heute (${f.dueDate}) fällig`;
  return `wird am ${f.dueDate} fällig`;
}

const de = {
  greeting: (f: Facts) => `Guten Tag ${f.customer},`,
  ask: (f: Facts, amount: string) =>
    ({
      friendly: `Wir wären Ihnen dankbar, wenn Sie die Zahlung von ${amount} in den nächsten Tagen veranlassen.`,
      firm: `Bitte überweisen Sie den offenen Betrag von ${amount} umgehend.`,
      final: `Bitte begleichen Sie den offenen Betrag von ${amount} ohne weitere Verzögerung vollständig.`,
    })[f.tone],
  howToPay: (f: Facts) => (f.instructions.trim() ? [`Zahlungsinformationen:\n${f.instructions.trim()}`] : []),
  alreadyPaid: (f: Facts) =>
    ({
      friendly: 'Falls Sie bereits bezahlt haben, vielen Dank. Betrachten Sie diese Nachricht dann bitte als gegenstandslos.',
      firm:
        'Sollten Sie bereits bezahlt haben, betrachten Sie dieses Schreiben bitte als gegenstandslos. Falls Sie den Betrag ' +
        'für unrichtig halten, teilen Sie uns bitte kurz mit, warum, damit wir das prüfen können.',
      final: 'Falls Sie bereits bezahlt haben oder den Betrag bestreiten, setzen Sie sich bitte umgehend mit uns in Verbindung.',
    })[f.tone],
  closing: (f: Facts) => `${f.tone === 'friendly' ? 'Viele Grüße' : 'Mit freundlichen Grüßen'}\n${f.business}`,
};

function deLetter(f: Facts, subject: string, core: string[], opts: { ask?: string | false; instructions?: boolean; extra?: string[] } = {}): Body {
  const ask = opts.ask === undefined ? de.ask(f, f.amount) : opts.ask;
  return {
    subject,
    paragraphs: [
      de.greeting(f),
      ...core,
      ...(ask ? [ask] : []),
      ...(opts.instructions === false ? [] : de.howToPay(f)),
      ...(opts.extra ?? []),
      de.alreadyPaid(f),
      de.closing(f),
    ],
  };
}

const german: LanguagePack = {
  actionLabels: {
    email: 'E-Mail',
    letter: 'Brief',
    call_task: 'Anruf',
    credit_hold: 'Liefersperre',
    final_notice: 'letzte Mahnung',
    agency_referral: 'Übergabe an ein Inkassounternehmen',
    legal_action: 'rechtliche Schritte',
    write_off: 'Ausbuchung',
    sell_debt: 'Forderungsverkauf',
  },
  templates: {
    dispute_verification: (f) =>
      deLetter(
        f,
        `Ihre Rückfrage zur Rechnung ${f.invoice}: unser Prüfergebnis`,
        [
          `vielen Dank für Ihre Rückmeldung zur Rechnung ${f.invoice}. Wir haben Ihre Einwände sorgfältig geprüft.`,
          ...(f.reason ? [`Unser Ergebnis: ${f.reason}`] : []),
          `Nach Prüfung von Lieferung und Rechnung bestätigen wir, dass die Rechnung korrekt ist und ${f.amount} weiterhin offen sind.`,
        ],
        { extra: ['Sollten Ihnen Unterlagen vorliegen, die etwas anderes zeigen, senden Sie sie uns bitte zu; wir prüfen sie gern.'] },
      ),
    pre_due: (f) =>
      deLetter(
        f,
        `Zahlungshinweis: Rechnung ${f.invoice} ist am ${f.dueDate} fällig`,
        [
          f.daysOverdue < 0
            ? `nur ein kurzer Hinweis: Die Rechnung ${f.invoice} über ${f.amount} wird am ${f.dueDate} fällig, also in ${deDaysDative(-f.daysOverdue)}.`
            : `nur ein kurzer Hinweis: Die Rechnung ${f.invoice} über ${f.amount} ${deDue(f)}.`,
        ],
        { ask: false, extra: ['Sollte auf der Rechnung etwas nicht stimmen, antworten Sie einfach auf diese E-Mail, dann klären wir das.'] },
      ),
    courtesy_reminder: (f) =>
      deLetter(
        f,
        `Freundliche Zahlungserinnerung: Rechnung ${f.invoice} (${f.amount})`,
        [`vielleicht ist es Ihnen entgangen: Die Rechnung ${f.invoice} über ${f.amount} ${deDue(f)}. Das kann leicht passieren, daher diese kurze Erinnerung.`],
        { extra: ['Bei Fragen zur Rechnung oder wenn etwas nicht stimmt, antworten Sie einfach auf diese E-Mail. Wir helfen gerne.'] },
      ),
    reminder_letter: (f) =>
      deLetter(f, `Zahlungserinnerung: Rechnung ${f.invoice}`, [
        `nach unseren Unterlagen ist die Rechnung ${f.invoice} noch nicht beglichen. Der offene Betrag von ${f.amount} ${deDue(f)}.`,
      ]),
    firm_reminder: (f) =>
      deLetter(
        f,
        `Mahnung: Rechnung ${f.invoice}, ${f.amount} offen`,
        [`die Rechnung ${f.invoice} ${deDue(f)}. Trotz unserer bisherigen Erinnerungen ist der Betrag von ${f.amount} weiterhin offen.`],
        { extra: ['Wenn Sie den vollen Betrag derzeit nicht zahlen können, melden Sie sich bitte noch heute bei uns, damit wir eine Regelung vereinbaren können.'] },
      ),
    final_notice: (f) =>
      deLetter(f, `Letzte Mahnung: Rechnung ${f.invoice}, ${f.amount} offen`, [
        `dies ist unsere letzte Mahnung zur Rechnung ${f.invoice}. Der offene Betrag von ${f.amount} ${deDue(f)}.`,
        ...(f.referralDate
          ? [`Bleibt der Betrag ganz oder teilweise offen, wird diese Forderung am ${f.referralDate} an ein Inkassounternehmen übergeben.`]
          : []),
      ]),
    agency_referral: (f) =>
      deLetter(
        f,
        `Rechnung ${f.invoice} wurde an ein Inkassounternehmen übergeben`,
        [
          `die Rechnung ${f.invoice}, fällig am ${f.dueDate}, ist weiterhin mit ${f.amount} offen.`,
          'Wir haben die Forderung daher an ein Inkassounternehmen übergeben, das sich wegen des offenen Betrags bei Ihnen melden wird.',
        ],
        { ask: false, instructions: false },
      ),
    legal_action: (f) =>
      deLetter(
        f,
        `Einleitung rechtlicher Schritte: Rechnung ${f.invoice}`,
        [
          `die Rechnung ${f.invoice}, fällig am ${f.dueDate}, ist weiterhin mit ${f.amount} offen.`,
          'Wir haben daher rechtliche Schritte zur Durchsetzung der Forderung eingeleitet. Gerichtliche Schriftstücke erhalten Sie gesondert.',
        ],
        { ask: false, instructions: false },
      ),
    write_off: (f) => ({
      subject: `Ausgebucht: Rechnung ${f.invoice} (${f.amount})`,
      paragraphs: [
        `Die Rechnung ${f.invoice} (Kunde: ${f.customer}), fällig am ${f.dueDate}, wurde mit einem offenen Betrag von ${f.amount} ausgebucht` +
          (f.daysOverdue > 0 ? ` (${deDays(f.daysOverdue)} überfällig).` : '.'),
        'Interne Notiz: Diese Nachricht geht nicht an den Kunden.',
        f.business,
      ],
    }),
    payment_plan_reminder: (f) =>
      deLetter(
        f,
        `Ratenzahlung: Rate von ${f.instalmentAmount} fällig am ${f.instalmentDate}`,
        [
          `zur Erinnerung: Die nächste Rate aus Ihrer Ratenvereinbarung zur Rechnung ${f.invoice} über ${f.instalmentAmount} wird am ${f.instalmentDate} fällig.`,
          `Der verbleibende Gesamtbetrag der Rechnung beträgt ${f.amount}.`,
        ],
        { ask: de.ask(f, f.instalmentAmount) },
      ),
    approval_request: (f) => {
      const action = f.action ?? 'eine Maßnahme';
      return {
        subject: `Freigabe erforderlich: ${action} für Rechnung ${f.invoice}, ${f.amount}`,
        paragraphs: [
          'Guten Tag,',
          `es ist eine Freigabe erforderlich: ${action} für Rechnung ${f.invoice}, ${f.amount}.`,
          `Kunde: ${f.customer}\nFällig am: ${f.dueDate}` + (f.daysOverdue > 0 ? ` (${deDays(f.daysOverdue)} überfällig)` : ''),
          ...(f.reason?.trim() ? [`Begründung: ${f.reason.trim()}`] : []),
          (f.deadline ? `Bitte entscheiden Sie bis ${f.deadline}. ` : '') + 'Bis zur Entscheidung geschieht nichts.',
          f.business,
        ],
      };
    },
  },
};

const languages: Record<Language, LanguagePack> = { en: english, de: german };

// ---------------------------------------------------------------------------------------

function formatDate(isoDay: string, language: Language, locale: string): string {
  // A calendar date, not an instant: format it at UTC so no time zone moves it a day.
  const options: Intl.DateTimeFormatOptions =
    language === 'de'
      ? { day: '2-digit', month: '2-digit', year: 'numeric', timeZone: 'UTC' }
      : { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' };
  return new Intl.DateTimeFormat(locale, options).format(new Date(`${isoDay}T00:00:00Z`));
}

function formatDeadline(value: string, language: Language, locale: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return formatDate(value, language, locale);
  const at = new Date(value);
  const time = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: 'UTC' }).format(at);
  return `${formatDate(at.toISOString().slice(0, 10), language, locale)}, ${time} UTC`;
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One line, no control characters: a subject is a mail header. */
const oneLine = (s: string) => s.replace(/[\p{Cc}\u2028\u2029]+/gu, ' ').replace(/ {2,}/g, ' ').trim();

/** Renders a template in the debtor's language; throws on an unknown template or invalid facts. */
export function renderMessage(input: RenderMessageInput): RenderedMessage {
  if (!isTemplateName(input.template)) {
    throw new Error(`unknown e-mail template "${input.template}": known templates are ${templateNames.join(', ')}`);
  }
  const parsed = renderMessageInputSchema.parse(input);
  const { language, formatLocale } = resolveLocale(parsed.locale);
  const lang = languages[language];
  const money = (minor: number) => formatMoney(minor, parsed.currency, formatLocale);
  const date = (day: string) => formatDate(day, language, formatLocale);

  const facts: Facts = {
    tone: parsed.tone,
    customer: parsed.customerName.trim(),
    invoice: parsed.invoiceNumber.trim(),
    amount: money(parsed.amountOutstandingMinor),
    dueDate: date(parsed.dueDate),
    daysOverdue: parsed.daysOverdue,
    instructions: parsed.paymentInstructions,
    business: parsed.businessName.trim(),
    referralDate: parsed.referralDate ? date(parsed.referralDate) : undefined,
    instalmentDate: date(parsed.instalmentDueDate ?? parsed.dueDate),
    instalmentAmount: money(parsed.instalmentAmountMinor ?? parsed.amountOutstandingMinor),
    action: parsed.action ? (lang.actionLabels[parsed.action] ?? parsed.action.replace(/_/g, ' ')) : undefined,
    reason: parsed.reason,
    deadline: parsed.deadline ? formatDeadline(parsed.deadline, language, formatLocale) : undefined,
  };

  const body = lang.templates[input.template](facts);
  const subject = oneLine(body.subject);
  const text = body.paragraphs.join('\n\n') + '\n';
  const html =
    `<!DOCTYPE html>\n<html lang="${language}">\n<head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>\n<body>\n` +
    body.paragraphs.map((p) => `<p>${p.split('\n').map(escapeHtml).join('<br>\n')}</p>`).join('\n') +
    '\n</body>\n</html>\n';
  return { subject, text, html };
}
