ALTER TABLE "invoice_adjustments" ADD COLUMN "forwarded_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "next_attempt_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "claim_token" uuid;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "invoice_adjustments" ADD COLUMN "last_error" text;--> statement-breakpoint
CREATE INDEX "invoice_adjustments_due_idx" ON "invoice_adjustments" USING btree ("next_attempt_at") WHERE next_attempt_at is not null;--> statement-breakpoint
-- Corrections stored before this outbox: those of running cases are forwarded once more (the
-- workflow counts each once), in case a failed forwarding left one behind; the rest count as forwarded.
UPDATE "invoice_adjustments" SET "next_attempt_at" = now() WHERE "invoice_id" IN (SELECT "invoice_id" FROM "collection_cases" WHERE "stage" NOT IN ('Closed', 'NotStarted'));--> statement-breakpoint
UPDATE "invoice_adjustments" SET "forwarded_at" = "created_at" WHERE "next_attempt_at" IS NULL;
