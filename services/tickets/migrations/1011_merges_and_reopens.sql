-- Merged duplicates point at the ticket that stays; reopens are counted for
-- the reopen rate in service metrics.
ALTER TABLE tickets
    ADD COLUMN merged_into  uuid,
    ADD COLUMN reopen_count integer NOT NULL DEFAULT 0;
