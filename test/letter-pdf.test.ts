// The letter renderer: a German certified letter and an English one, read back from the PDF bytes.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { formatPostalAddress, renderLetterPdf, type LetterPdfInput } from '../activities/letter-pdf';
import { formatMoney } from '../domain/money';

const german: LetterPdfInput = {
  locale: 'de-DE',
  date: '2026-11-12',
  businessName: 'Beispiel Handels GmbH',
  businessAddress: ['Hauptstraße 1', '10115 Berlin'],
  recipientName: 'Muster GmbH',
  recipientAddress: { line1: 'Musterweg 7', line2: 'Hinterhaus', postalCode: '80331', city: 'München', country: 'DE' },
  subject: 'Letzte Mahnung',
  body:
    'Sehr geehrte Damen und Herren,\n\n' +
    'trotz unserer Erinnerungen ist die unten genannte Rechnung noch offen. Bitte überweisen Sie den ' +
    'Betrag innerhalb von 14 Tagen.\n\nMit freundlichen Grüßen\nBeispiel Handels GmbH',
  invoiceNumber: '2026-1001',
  amountOutstandingMinor: 123456,
  currency: 'EUR',
  dueDate: '2026-10-31',
  certified: true,
  compress: false,
};

const english: LetterPdfInput = {
  locale: 'en-GB',
  date: '2026-11-12',
  businessName: 'Example Trading Ltd',
  businessAddress: ['1 High Street', 'London', 'EC1A 1BB'],
  recipientName: 'Acme Widgets Ltd',
  recipientAddress: { line1: '22 Mill Lane', city: 'Leeds', postalCode: 'LS1 4AP', country: 'GB' },
  subject: 'Final reminder',
  body: 'Dear Sir or Madam,\n\nInvoice INV-77 is still unpaid. Please pay within 14 days.\n\nYours faithfully',
  invoiceNumber: 'INV-77',
  amountOutstandingMinor: 98000,
  currency: 'GBP',
  dueDate: '2026-10-01',
  certified: false,
  compress: false,
};

// WinAnsiEncoding bytes 0x80-0x9F that are not Latin-1 (the rest of the byte range is).
const winAnsiHigh: Record<number, string> = {
  0x80: '€', 0x82: '‚', 0x83: 'ƒ', 0x84: '„', 0x85: '…', 0x86: '†', 0x87: '‡', 0x88: 'ˆ', 0x89: '‰',
  0x8a: 'Š', 0x8b: '‹', 0x8c: 'Œ', 0x8e: 'Ž', 0x91: '‘', 0x92: '’', 0x93: '“', 0x94: '”', 0x95: '•',
  0x96: '–', 0x97: '—', 0x98: '˜', 0x99: '™', 0x9a: 'š', 0x9b: '›', 0x9c: 'œ', 0x9e: 'ž', 0x9f: 'Ÿ',
};

/**
 * The text drawn on the pages, one entry per show-text operator. pdfkit writes text as hex
 * glyph strings in `[<48656c6c6f> 10 <...>] TJ` arrays (split where kerning moves a glyph), so
 * a plain search of the bytes would not find it, and would wrongly find strings that appear
 * only in the metadata (the Title is the subject). No PDF text extractor (pdftotext, pdf.js)
 * is available here, so this reads the uncompressed content streams: only TJ operands count,
 * each hex string is decoded through the standard fonts' WinAnsiEncoding, and the pieces of
 * one TJ array are joined. pdfkit emits one TJ array per laid-out line.
 */
function pageText(pdf: Buffer): string[] {
  const raw = pdf.toString('latin1');
  const lines: string[] = [];
  for (const stream of raw.matchAll(/stream\n([\s\S]*?)\nendstream/g)) {
    for (const tj of stream[1]!.matchAll(/\[((?:\s*<[0-9a-fA-F]*>\s*-?[\d.]*)*)\s*\]\s*TJ/g)) {
      let line = '';
      for (const hex of tj[1]!.matchAll(/<([0-9a-fA-F]*)>/g)) {
        const bytes = Buffer.from(hex[1]!, 'hex');
        for (const byte of bytes) line += winAnsiHigh[byte] ?? String.fromCharCode(byte);
      }
      lines.push(line);
    }
  }
  return lines;
}

function pageCount(pdf: Buffer): number {
  const match = /\/Type \/Pages\s*\/Count (\d+)/.exec(pdf.toString('latin1'));
  return Number(match?.[1]);
}

describe('renderLetterPdf', () => {
  it('renders a German certified letter with the invoice, the amount and EINSCHREIBEN on the page', async () => {
    const pdf = await renderLetterPdf(german);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(pageCount(pdf)).toBe(1);
    const text = pageText(pdf);
    expect(text).toContain('EINSCHREIBEN');
    expect(text).toContain('2026-1001');
    expect(text).toContain(formatMoney(123456, 'EUR', 'de-DE')); // "1.234,56 €", with € from WinAnsi 0x80
    expect(text).toContain('1.234,56\u00a0€');
    expect(text).toEqual(expect.arrayContaining(['Offener Betrag', '31. Oktober 2026', '12. November 2026', 'Letzte Mahnung']));
    // The recipient block in the envelope window, in the order of the letters.address column.
    const address = formatPostalAddress(german.recipientName, german.recipientAddress, german.locale);
    expect(address).toBe('Muster GmbH\nMusterweg 7\nHinterhaus\n80331 München\nDEUTSCHLAND');
    const start = text.indexOf('Muster GmbH');
    expect(text.slice(start, start + 5)).toEqual(address.split('\n'));
    expect(text).toContain('Beispiel Handels GmbH · Hauptstraße 1 · 10115 Berlin'); // return address line
    expect(text).not.toContain('CERTIFIED MAIL');
  });

  it('renders an English letter, unmarked when not certified and CERTIFIED MAIL when it is', async () => {
    const pdf = await renderLetterPdf(english);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    const text = pageText(pdf);
    expect(text).toEqual(expect.arrayContaining(['INV-77', '£980.00', 'Amount outstanding', '1 October 2026', '12 November 2026']));
    expect(text.slice(text.indexOf('Acme Widgets Ltd'), text.indexOf('Acme Widgets Ltd') + 5)).toEqual([
      'Acme Widgets Ltd', '22 Mill Lane', 'Leeds', 'LS1 4AP', 'UNITED KINGDOM',
    ]);
    expect(text).not.toContain('CERTIFIED MAIL');
    expect(text).not.toContain('EINSCHREIBEN');

    expect(pageText(await renderLetterPdf({ ...english, certified: true }))).toContain('CERTIFIED MAIL');
  });

  it('gives byte-identical output for equal input, and a different file for another date', async () => {
    const first = await renderLetterPdf({ ...german, compress: true });
    const second = await renderLetterPdf({ ...german, compress: true });
    expect(first.equals(second)).toBe(true);
    const uncompressed = await renderLetterPdf(german);
    expect(uncompressed.equals(await renderLetterPdf(german))).toBe(true);
    const trailerId = (pdf: Buffer) => /\/ID \[<([0-9a-f]+)>/.exec(pdf.toString('latin1'))?.[1];
    expect(trailerId(first)).toMatch(/^[0-9a-f]{32}$/);
    const later = await renderLetterPdf({ ...german, compress: true, date: '2026-11-13' });
    expect(trailerId(later)).not.toBe(trailerId(first));
    expect(first.toString('latin1')).toContain('(D:20261112000000Z)'); // CreationDate, from the letter's date
  });

  it('compresses by default, so the page text is not in the raw bytes', async () => {
    const { compress: _compress, ...defaults } = german;
    const pdf = await renderLetterPdf(defaults);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(pdf.toString('latin1')).toContain('/Filter /FlateDecode');
    expect(pageText(pdf)).toEqual([]);
  });

  it('keeps a long body on further pages and the payment box whole', async () => {
    const body = Array.from({ length: 40 }, (_, i) => `Absatz ${i + 1}: ${'Lorem ipsum dolor sit amet. '.repeat(4)}`).join('\n\n');
    const pdf = await renderLetterPdf({ ...german, body });
    expect(pageCount(pdf)).toBeGreaterThan(1);
    const text = pageText(pdf);
    const lastParagraph = text.findIndex((line) => line.startsWith('Absatz 40:'));
    expect(lastParagraph).toBeGreaterThan(0);
    expect(text.indexOf('Zahlungsdetails')).toBeGreaterThan(lastParagraph);
    expect(text.slice(text.indexOf('Zahlungsdetails'))).toEqual(expect.arrayContaining(['2026-1001', '1.234,56\u00a0€']));
  });

  it('prints characters the standard fonts cannot draw as "?", never as broken glyphs', async () => {
    const pdf = await renderLetterPdf({ ...german, recipientName: 'Łukasz Nowak' });
    expect(pageText(pdf)).toContain('?ukasz Nowak');
  });

  it('refuses impossible dates and locales as non-retryable failures', async () => {
    for (const bad of [{ date: '2026-02-30' }, { dueDate: '31.10.2026' }, { locale: 'not a locale' }, { amountOutstandingMinor: 12.5 }]) {
      const error = await renderLetterPdf({ ...german, ...bad }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApplicationFailure);
      expect((error as ApplicationFailure).nonRetryable).toBe(true);
    }
  });
});

describe('formatPostalAddress', () => {
  it('puts one part per line, in the destination country order, ending with the country', () => {
    expect(formatPostalAddress('Acme Inc.', { line1: '1 Main St', line2: 'Suite 5', city: 'Springfield', region: 'IL', postalCode: '62701', country: 'us' }))
      .toBe('Acme Inc.\n1 Main St\nSuite 5\nSpringfield, IL 62701\nUNITED STATES');
    expect(formatPostalAddress('Muster GmbH', { line1: 'Musterweg 7', city: 'Wien', postalCode: '1010', country: 'AT' }, 'de-DE'))
      .toBe('Muster GmbH\nMusterweg 7\n1010 Wien\nÖSTERREICH');
  });
});
