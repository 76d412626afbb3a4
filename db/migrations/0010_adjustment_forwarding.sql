ALTER TABLE "invoice_adjustments" ADD COLUMN "forwarded_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "next_attempt_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "claim_token" uuid;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "last_error" text;--> statement-breakpoint
CREATE INDEX "invoice_adjustments_due_idx" ON "invoice_adjustments" USING btree ("next_attempt_at") WHERE next_attempt_at is not null;