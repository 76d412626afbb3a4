ALTER TABLE "collection_cases" ADD COLUMN "paused_reason" text;--> statement-breakpoint
ALTER TABLE "collection_cases" ADD COLUMN "paused_after_restart" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Cases paused now: the reason their workflow published with the pause, and whether it is the
-- pause a restart began with (its wording, written by the restart and by a message's start).
UPDATE "collection_cases" AS c SET "paused_reason" = (
  SELECT a."data"->>'reason' FROM "audit_events" AS a
  WHERE a."case_id" = c."id" AND a."type" = 'case.paused' AND a."actor" = 'workflow'
  ORDER BY a."id" DESC LIMIT 1
) WHERE c."stage" = 'Paused';--> statement-breakpoint
UPDATE "collection_cases" SET "paused_after_restart" = true
WHERE "stage" = 'Paused' AND ("paused_reason" LIKE 'restarted after its workflow was %' OR "paused_reason" LIKE 'started again by a % message after its workflow was lost or ended%');
