ALTER TABLE "collection_cases" ADD COLUMN "workflow_checked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "workflow_gone" text;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "workflow_gone_since" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "collection_cases_workflow_check_idx" ON "collection_cases" USING btree ("workflow_checked_at" NULLS FIRST,"id") WHERE stage not in ('NotStarted', 'Closed');--> statement-breakpoint
CREATE INDEX "collection_cases_workflow_gone_idx" ON "collection_cases" USING btree ("workflow_gone_since") WHERE workflow_gone is not null;