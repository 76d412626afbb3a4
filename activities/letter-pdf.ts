import { ApplicationFailure } from '@temporalio/common';
import PDFDocument from 'pdfkit';
import type { PostalAddress } from '../db/schema/customers';
import { formatMoney, type Currency } from '../domain/money';

/**
 * Renders a collection letter (A4, DIN 5008 form B geometry so the address shows in a
 * standard left window envelope) to PDF. Pure apart from CPU: no clock, no randomness, no
 * I/O, so equal input gives byte-identical output on the same Node.js version (dates and
 * money are formatted with Intl, whose output follows the runtime's ICU data).
 *
 * Text is set in the PDF standard fonts (Helvetica), which cover WinAnsi (Latin-1 plus € and
 * typographic quotes and dashes). Characters outside it are printed as "?" rather than
 * producing broken glyphs; a letter to a non-Latin address needs an embedded font.
 */
export type LetterPdfInput = {
  /** BCP 47 locale of the letter, e.g. de-DE: the labels, the dates and the money format. */
  locale: string;
  /** The letter's date, ISO YYYY-MM-DD. Also the PDF's creation date, so output is deterministic. */
  date: string;
  /** The sender: the creditor business. */
  businessName: string;
  /** The sender's address, one line per entry. */
  businessAddress: readonly string[];
  recipientName: string;
  recipientAddress: PostalAddress;
  subject: string;
  /** Plain text; a blank line (\n\n) separates paragraphs, a single \n breaks the line. */
  body: string;
  invoiceNumber: string;
  /** Integer minor units, formatted with formatMoney in the letter's locale. */
  amountOutstandingMinor: number;
  currency: Currency;
  /** ISO YYYY-MM-DD. */
  dueDate: string;
  /** Certified (registered) mail: marks the letter CERTIFIED MAIL / EINSCHREIBEN above the address. */
  certified: boolean;
  /** Deflate the content streams (default true). Tests turn it off to read the page text. */
  compress?: boolean;
};

const mm = (value: number) => (value * 72) / 25.4;

// A4 and DIN 5008 form B: address field 45 mm from the top, 20 mm from the left, 85 × 45 mm;
// its top 17.7 mm hold the return address and notes such as "Einschreiben".
const page = { width: mm(210), height: mm(297) };
const margin = { top: mm(20), bottom: mm(25), left: mm(25), right: mm(20) };
const contentWidth = page.width - margin.left - margin.right;
const addressField = { top: mm(45), width: mm(80), noteZone: mm(17.7) };

const regular = 'Helvetica';
const bold = 'Helvetica-Bold';

type Labels = {
  certified: string;
  paymentDetails: string;
  invoiceNumber: string;
  amountOutstanding: string;
  dueDate: string;
};

const labels: Record<'de' | 'en', Labels> = {
  en: {
    certified: 'CERTIFIED MAIL',
    paymentDetails: 'Payment details',
    invoiceNumber: 'Invoice number',
    amountOutstanding: 'Amount outstanding',
    dueDate: 'Due date',
  },
  de: {
    certified: 'EINSCHREIBEN',
    paymentDetails: 'Zahlungsdetails',
    invoiceNumber: 'Rechnungsnummer',
    amountOutstanding: 'Offener Betrag',
    dueDate: 'Fällig am',
  },
};

function invalid(message: string): never {
  // The same input fails the same way on every attempt: retrying cannot help.
  throw ApplicationFailure.nonRetryable(message, 'InvalidLetterInput');
}

function parseIsoDate(value: string, field: string): Date {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = match ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))) : undefined;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value) {
    invalid(`${field} must be an ISO date (YYYY-MM-DD), got ${JSON.stringify(value)}`);
  }
  return date;
}

function canonicalLocale(locale: string): string {
  try {
    return Intl.getCanonicalLocales(locale)[0] ?? invalid(`locale is empty`);
  } catch {
    return invalid(`locale must be a BCP 47 tag such as de-DE, got ${JSON.stringify(locale)}`);
  }
}

function countryName(country: string, locale: string): string {
  const code = country.trim().toUpperCase();
  try {
    return new Intl.DisplayNames([locale], { type: 'region', fallback: 'code' }).of(code) ?? code;
  } catch {
    return code;
  }
}

/**
 * The address lines in the order the destination country's post expects them, ending with
 * the country name in capitals (UPU style) in the given language.
 */
function postalAddressLines(name: string, address: PostalAddress, locale: string): string[] {
  const parts = (...values: (string | undefined)[]) =>
    values.map((v) => v?.trim() ?? '').filter((v) => v !== '').join(' ');
  const country = address.country.trim().toUpperCase();
  const localityLines = (() => {
    switch (country) {
      case 'US':
      case 'CA':
      case 'AU':
        return [parts(address.city && address.region ? `${address.city.trim()},` : address.city, address.region, address.postalCode)];
      case 'GB':
      case 'IE':
        return [address.city.trim(), address.region?.trim(), address.postalCode.trim()];
      default:
        return [parts(address.postalCode, address.city), address.region?.trim()];
    }
  })();
  return [name.trim(), address.line1.trim(), address.line2?.trim(), ...localityLines, countryName(country, locale).toUpperCase()]
    .filter((line): line is string => line !== undefined && line !== '');
}

/**
 * The recipient block as stored in letters.address: one line per part (name, street lines,
 * locality, region, country), joined with \n. With the letter's locale it is exactly the text
 * printed in the envelope window; without one, the country is named in English.
 */
export function formatPostalAddress(name: string, address: PostalAddress, locale = 'en'): string {
  return postalAddressLines(name, address, canonicalLocale(locale)).join('\n');
}

// Unicode code points the standard fonts' WinAnsiEncoding holds outside Latin-1.
const winAnsiExtras = new Set([
  0x152, 0x153, 0x160, 0x161, 0x178, 0x17d, 0x17e, 0x192, 0x2c6, 0x2dc, 0x2013, 0x2014, 0x2018, 0x2019,
  0x201a, 0x201c, 0x201d, 0x201e, 0x2020, 0x2021, 0x2022, 0x2026, 0x2030, 0x2039, 0x203a, 0x20ac, 0x2122,
]);
const lookalikes: Record<string, string> = {
  '\u202f': '\u00a0', // narrow no-break space (fr-FR, de-CH number groups)
  '\u2009': ' ',
  '\u2007': '\u00a0',
  '\u2212': '-', // minus sign
  '\u2010': '-',
  '\u2011': '-',
  '\u2032': "'",
  '\t': ' ',
};

/** Keeps what the standard fonts can draw; anything else becomes "?" (never a broken glyph). */
function winAnsi(text: string): string {
  let out = '';
  for (const char of text.normalize('NFC')) {
    const mapped = lookalikes[char] ?? char;
    const code = mapped.codePointAt(0) ?? 0;
    const drawable = mapped === '\n' || (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || winAnsiExtras.has(code);
    out += drawable ? mapped : code < 0x20 || (code >= 0x7f && code < 0xa0) ? '' : '?';
  }
  return out;
}

/** Renders the letter; see LetterPdfInput. Rejects invalid dates and locales as non-retryable. */
export async function renderLetterPdf(input: LetterPdfInput): Promise<Buffer> {
  const locale = canonicalLocale(input.locale);
  const letterDate = parseIsoDate(input.date, 'date');
  const dueDate = parseIsoDate(input.dueDate, 'dueDate');
  if (!Number.isSafeInteger(input.amountOutstandingMinor) || input.amountOutstandingMinor < 0) {
    invalid(`amountOutstandingMinor must be a non-negative whole number of minor units, got ${input.amountOutstandingMinor}`);
  }
  const text = labels[new Intl.Locale(locale).language === 'de' ? 'de' : 'en'];
  const longDate = new Intl.DateTimeFormat(locale, { dateStyle: 'long', timeZone: 'UTC' });
  const amount = formatMoney(input.amountOutstandingMinor, input.currency, locale);

  const doc = new PDFDocument({
    size: 'A4',
    margins: margin,
    compress: input.compress ?? true,
    lang: locale,
    displayTitle: true,
    // Fixing CreationDate makes the whole file deterministic: pdfkit's trailer ID is an MD5 of
    // the info dictionary, and it embeds no other clock or random value for standard fonts.
    info: {
      Title: input.subject,
      Author: input.businessName,
      Creator: 'Arrears',
      Producer: 'Arrears (PDFKit)',
      CreationDate: letterDate,
      ModDate: letterDate,
    },
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  // Fold marks (105 mm, 210 mm) and the punch mark (148.5 mm) on the left edge.
  doc.save().lineWidth(0.5).strokeColor('#888888');
  for (const y of [mm(105), mm(210)]) doc.moveTo(mm(4), y).lineTo(mm(9), y).stroke();
  doc.moveTo(mm(4), mm(148.5)).lineTo(mm(11), mm(148.5)).stroke();
  doc.restore();

  // Letterhead: the sender, top right.
  doc.font(bold).fontSize(14).text(winAnsi(input.businessName), margin.left, margin.top, { width: contentWidth, align: 'right' });
  doc.font(regular).fontSize(9).text(winAnsi(input.businessAddress.join('\n')), { width: contentWidth, align: 'right' });

  // Address field: return address, then the certified note, then the recipient.
  const returnLine = [input.businessName, ...input.businessAddress].map((s) => s.trim()).filter(Boolean).join(' · ');
  doc.font(regular).fontSize(7).fillColor('#444444')
    .text(winAnsi(returnLine), margin.left, addressField.top + mm(2), { width: addressField.width, height: 10, ellipsis: true })
    .fillColor('black');
  if (input.certified) {
    doc.font(bold).fontSize(10).text(text.certified, margin.left, addressField.top + mm(10), { width: addressField.width, lineBreak: false });
  }
  const recipientLines = postalAddressLines(input.recipientName, input.recipientAddress, locale);
  doc.font(regular).fontSize(10)
    .text(winAnsi(recipientLines.join('\n')), margin.left, addressField.top + addressField.noteZone, { width: addressField.width });

  // Date, right-aligned below the address field (or below a long address).
  const dateTop = Math.max(mm(98), doc.y + mm(6));
  doc.font(regular).fontSize(10).text(winAnsi(longDate.format(letterDate)), margin.left, dateTop, { width: contentWidth, align: 'right' });

  // Subject and body.
  doc.font(bold).fontSize(11).text(winAnsi(input.subject), margin.left, doc.y + mm(8), { width: contentWidth });
  doc.moveDown(1.2);
  const paragraphs = input.body.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/).map((p) => p.trim()).filter(Boolean);
  doc.font(regular).fontSize(10.5);
  for (const paragraph of paragraphs) {
    // pdfkit treats every \n as a paragraph end, so the gap between paragraphs is added here.
    doc.text(winAnsi(paragraph), margin.left, undefined, { width: contentWidth, lineGap: 2 });
    doc.y += 8;
  }

  // Payment box: kept whole, on a new page if it does not fit.
  const rows: [string, string][] = [
    [text.invoiceNumber, input.invoiceNumber],
    [text.amountOutstanding, amount],
    [text.dueDate, longDate.format(dueDate)],
  ];
  const rowHeight = 15;
  const padding = 8;
  const boxHeight = padding * 2 + rowHeight * (rows.length + 1);
  let boxTop = doc.y + mm(4);
  if (boxTop + boxHeight > page.height - margin.bottom) {
    doc.addPage();
    boxTop = margin.top;
  }
  doc.save().lineWidth(0.8).fillColor('#f2f2f2').strokeColor('#333333')
    .rect(margin.left, boxTop, contentWidth, boxHeight).fillAndStroke().restore();
  const labelWidth = mm(50);
  const innerLeft = margin.left + padding;
  const innerWidth = contentWidth - padding * 2;
  doc.fillColor('black').font(bold).fontSize(10)
    .text(winAnsi(text.paymentDetails), innerLeft, boxTop + padding, { width: innerWidth, lineBreak: false });
  rows.forEach(([label, value], i) => {
    const y = boxTop + padding + rowHeight * (i + 1);
    doc.font(regular).fontSize(10).text(winAnsi(label), innerLeft, y, { width: labelWidth, lineBreak: false });
    doc.font(bold).fontSize(10).text(winAnsi(value), innerLeft + labelWidth, y, { width: innerWidth - labelWidth, lineBreak: false });
  });
  doc.x = margin.left;
  doc.y = boxTop + boxHeight;

  doc.end();
  return done;
}
