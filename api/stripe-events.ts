import type Stripe from 'stripe';
import type { IncomingEvent } from './payment-service';

/** The metadata key on a Stripe invoice or charge that names our invoice's external id. */
export const stripeInvoiceMetadataKey = 'arrears_invoice_id';

/**
 * Stripe's amounts are in its "smallest unit", which is ISO 4217's minor unit except for a few
 * currencies Stripe keeps two-decimal for compatibility: of ours, ISK (5 kr arrives as 500).
 */
const stripeAmountDivisors: Record<string, number> = { ISK: 100 };

function money(currency: string, stripeAmount: number): { amountMinor: number; currency: string } | { ignored: string } {
  const code = currency.toUpperCase();
  const divisor = stripeAmountDivisors[code] ?? 1;
  if (stripeAmount <= 0) return { ignored: 'Nothing was paid through Stripe.' };
  if (stripeAmount % divisor !== 0) return { ignored: `Stripe amount ${stripeAmount} ${code} is not a whole number of ${code}.` };
  return { amountMinor: stripeAmount / divisor, currency: code };
}

/** Fields older Stripe API versions put on the objects; absent in newer ones. */
type Legacy = { payment_intent?: string | { id: string } | null; invoice?: string | { id: string } | null; paid_out_of_band?: boolean };
const idOf = (ref: string | { id: string } | null | undefined) => (typeof ref === 'string' ? ref : ref?.id);

/**
 * Reads the Stripe events that carry money for an invoice:
 * - `invoice.paid` (Stripe Billing; sent once, when the invoice is fully paid): the invoice named
 *   by its metadata, or else the Stripe invoice id itself as our external id. Money paid outside
 *   Stripe (marked paid out of band) is left out: it reaches us through the bank or by hand.
 * - `charge.succeeded` / `charge.captured` (a one-off payment): only with the metadata key, since
 *   a charge without it is a sale, not the settlement of an invoice; a charge of a Stripe invoice
 *   is counted by that invoice's `invoice.paid`.
 * The money's identity is the PaymentIntent where Stripe gives one, so an invoice and its charge
 * are one payment. Everything else is stored and marked ignored.
 */
export function fromStripeEvent(event: Stripe.Event): IncomingEvent {
  const base = { source: 'stripe', eventId: event.id, type: event.type, payload: event };
  switch (event.type) {
    case 'invoice.paid': {
      const invoice = event.data.object as Stripe.Invoice & Legacy;
      if (!invoice.id) return { ...base, money: { ignored: 'A Stripe invoice without an id (a preview) carries no payment.' } };
      if (invoice.paid_out_of_band) return { ...base, money: { ignored: 'Paid outside Stripe: that money is reported by the bank or by hand.' } };
      const amount = money(invoice.currency, invoice.amount_paid - (invoice.amount_paid_off_stripe ?? 0));
      if ('ignored' in amount) return { ...base, money: amount };
      const paidAt = invoice.status_transitions?.paid_at ?? event.created;
      return {
        ...base,
        money: {
          moneyId: idOf(invoice.payment_intent) ?? invoice.id,
          invoiceExternalId: invoice.metadata?.[stripeInvoiceMetadataKey] ?? invoice.id,
          ...amount,
          receivedAt: new Date(paidAt * 1000),
        },
      };
    }
    case 'charge.succeeded':
    case 'charge.captured': {
      const charge = event.data.object as Stripe.Charge & Legacy;
      const invoiceExternalId = charge.metadata?.[stripeInvoiceMetadataKey];
      if (!invoiceExternalId) {
        return { ...base, money: { ignored: `The charge has no ${stripeInvoiceMetadataKey} metadata; invoices paid through Stripe Billing arrive as invoice.paid.` } };
      }
      if (idOf(charge.invoice)) return { ...base, money: { ignored: `The charge pays Stripe invoice ${idOf(charge.invoice)}; it is counted by invoice.paid.` } };
      if (!charge.captured) return { ...base, money: { ignored: 'The charge is authorised but not captured yet (charge.captured follows).' } };
      const amount = money(charge.currency, charge.amount_captured - (charge.amount_refunded ?? 0));
      if ('ignored' in amount) return { ...base, money: amount };
      return {
        ...base,
        money: { moneyId: idOf(charge.payment_intent) ?? charge.id, invoiceExternalId, ...amount, receivedAt: new Date(charge.created * 1000) },
      };
    }
    default:
      return { ...base, money: { ignored: `Stripe event type ${event.type} carries no invoice payment.` } };
  }
}
