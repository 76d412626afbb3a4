CREATE TABLE "invoice_adjustments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"invoice_id" uuid NOT NULL,
	"adjustment_id" text NOT NULL,
	"kind" text NOT NULL,
	"amount_minor" bigint,
	"currency" char(3),
	"reason" text NOT NULL,
	"recorded_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "invoice_adjustments_invoice_adjustment_uq" UNIQUE("invoice_id","adjustment_id")
);
--> statement-breakpoint
ALTER TABLE "invoices" ADD COLUMN "amount_credited_minor" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD CONSTRAINT "invoice_adjustments_invoice_id_invoices_id_fk" FOREIGN KEY ("invoice_id") REFERENCES "public"."invoices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "invoice_adjustments_one_cancellation_uq" ON "invoice_adjustments" USING btree ("invoice_id") WHERE kind = 'cancellation';