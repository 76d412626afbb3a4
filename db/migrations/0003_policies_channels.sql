CREATE TABLE "collection_policies" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"definition" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "collection_policies_name_version_uq" UNIQUE("name","version")
);
--> statement-breakpoint
CREATE TABLE "call_tasks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"case_id" uuid NOT NULL,
	"idempotency_key" text NOT NULL,
	"template" text NOT NULL,
	"brief" text NOT NULL,
	"phone" text,
	"due_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"assigned_to" text,
	"outcome" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "call_tasks_idempotency_key_unique" UNIQUE("idempotency_key")
);
--> statement-breakpoint
CREATE TABLE "letters" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"communication_id" uuid NOT NULL,
	"pdf" "bytea" NOT NULL,
	"address" text NOT NULL,
	"certified" text DEFAULT 'no' NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"printed_at" timestamp with time zone,
	CONSTRAINT "letters_communication_id_unique" UNIQUE("communication_id")
);
--> statement-breakpoint
ALTER TABLE "customers" ADD COLUMN "credit_hold_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "policy_id" uuid;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "blocked_reason" text;--> statement-breakpoint
ALTER TABLE "communications" ADD COLUMN "provider_message_id" text;--> statement-breakpoint
ALTER TABLE "communications" ADD COLUMN "failure_reason" text;--> statement-breakpoint
ALTER TABLE "communications" ADD COLUMN "tone" text;--> statement-breakpoint
ALTER TABLE "call_tasks" ADD CONSTRAINT "call_tasks_case_id_collection_cases_id_fk" FOREIGN KEY ("case_id") REFERENCES "public"."collection_cases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "letters" ADD CONSTRAINT "letters_communication_id_communications_id_fk" FOREIGN KEY ("communication_id") REFERENCES "public"."communications"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "call_tasks_status_due_idx" ON "call_tasks" USING btree ("status","due_at");--> statement-breakpoint
CREATE INDEX "letters_status_idx" ON "letters" USING btree ("status");--> statement-breakpoint
ALTER TABLE "collection_cases" ADD CONSTRAINT "collection_cases_policy_id_collection_policies_id_fk" FOREIGN KEY ("policy_id") REFERENCES "public"."collection_policies"("id") ON DELETE no action ON UPDATE no action;