import type Stripe from 'stripe';
import type { IncomingEvent } from './payment-service';

/** The metadata key on a Stripe invoice or charge that names our invoice's external id. */
export const stripeInvoiceMetadataKey = 'arrears_invoice_id';

/**
 * Reads the Stripe events that carry money for an invoice:
 * - `invoice.paid` / `invoice.payment_succeeded` (Stripe Billing): the invoice named by its
 *   metadata, or else the Stripe invoice id itself as our external id. Both events name the same
 *   Stripe invoice, so they make one payment (its id is the money id).
 * - `charge.succeeded` (a one-off charge): only with the metadata key, since a charge without it
 *   is a sale, not the settlement of an invoice.
 * Everything else is stored and marked ignored.
 */
export function fromStripeEvent(event: Stripe.Event): IncomingEvent {
  const base = { source: 'stripe', eventId: event.id, type: event.type, payload: event };
  switch (event.type) {
    case 'invoice.paid':
    case 'invoice.payment_succeeded': {
      const invoice = event.data.object;
      if (!invoice.id) return { ...base, money: { ignored: 'A Stripe invoice without an id (a preview) carries no payment.' } };
      const paidAt = invoice.status_transitions?.paid_at ?? event.created;
      return {
        ...base,
        money: {
          moneyId: invoice.id,
          invoiceExternalId: invoice.metadata?.[stripeInvoiceMetadataKey] ?? invoice.id,
          amountMinor: invoice.amount_paid,
          currency: invoice.currency.toUpperCase(),
          receivedAt: new Date(paidAt * 1000),
        },
      };
    }
    case 'charge.succeeded': {
      const charge = event.data.object;
      const invoiceExternalId = charge.metadata?.[stripeInvoiceMetadataKey];
      if (!invoiceExternalId) {
        return { ...base, money: { ignored: `The charge has no ${stripeInvoiceMetadataKey} metadata; invoices paid through Stripe Billing arrive as invoice.paid.` } };
      }
      if (!charge.captured) return { ...base, money: { ignored: 'The charge is authorised but not captured.' } };
      return {
        ...base,
        money: {
          moneyId: charge.id,
          invoiceExternalId,
          amountMinor: charge.amount_captured,
          currency: charge.currency.toUpperCase(),
          receivedAt: new Date(charge.created * 1000),
        },
      };
    }
    default:
      return { ...base, money: { ignored: `Stripe event type ${event.type} carries no invoice payment.` } };
  }
}
