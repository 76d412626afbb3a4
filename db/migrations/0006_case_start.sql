ALTER TABLE "collection_cases" ALTER COLUMN "started_at" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "collection_cases" ALTER COLUMN "started_at" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "starts_at" timestamp with time zone;--> statement-breakpoint
-- Cases that already have a workflow were due to start when they did.
UPDATE "collection_cases" SET "starts_at" = "started_at";--> statement-breakpoint
-- A case whose workflow never reported a state had its start fail at registration: it waits
-- for the overdue sweep now, from this moment (whole milliseconds, like the times the code writes).
UPDATE "collection_cases" SET "stage" = 'NotStarted', "started_at" = NULL, "starts_at" = date_trunc('milliseconds', now())
  WHERE "stage" = 'Scheduled' AND "state_seq" = 0;--> statement-breakpoint
ALTER TABLE "collection_cases" ALTER COLUMN "starts_at" SET NOT NULL;--> statement-breakpoint
CREATE INDEX "collection_cases_not_started_idx" ON "collection_cases" USING btree ("starts_at","id") WHERE stage = 'NotStarted';
