-- Etags (AIP-154) for the configuration resources: every update increments
-- the revision, and an update carrying a stale etag is refused.
ALTER TABLE teams ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE classification_rules ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE sla_policies ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE business_calendars ADD COLUMN revision bigint NOT NULL DEFAULT 1;
