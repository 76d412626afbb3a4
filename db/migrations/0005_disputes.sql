CREATE TABLE "disputes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"case_id" uuid NOT NULL,
	"dispute_key" text NOT NULL,
	"reason" text NOT NULL,
	"opened_by" text NOT NULL,
	"opened_at" timestamp with time zone NOT NULL,
	"resolution" text,
	"resolution_note" text,
	"credit_minor" bigint,
	"resolved_by" text,
	"resolved_at" timestamp with time zone,
	CONSTRAINT "disputes_dispute_key_unique" UNIQUE("dispute_key")
);
--> statement-breakpoint
ALTER TABLE "disputes" ADD CONSTRAINT "disputes_case_id_collection_cases_id_fk" FOREIGN KEY ("case_id") REFERENCES "public"."collection_cases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "disputes_open_idx" ON "disputes" USING btree ("resolved_at");