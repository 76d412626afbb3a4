ALTER TABLE "collection_cases" ADD COLUMN "opening_amount_minor" bigint;--> statement-breakpoint
-- The balance each case opened with is in its invoice's registration event; a case without one
-- (none is known) has not had its balance changed by a workflow when it has not started.
UPDATE "collection_cases" c SET "opening_amount_minor" = coalesce(
  (SELECT (a."data"->>'amountOutstandingMinor')::bigint FROM "audit_events" a
    WHERE a."invoice_id" = c."invoice_id" AND a."type" = 'invoice.registered' ORDER BY a."occurred_at" LIMIT 1),
  c."amount_outstanding_minor");--> statement-breakpoint
ALTER TABLE "collection_cases" ALTER COLUMN "opening_amount_minor" SET NOT NULL;
