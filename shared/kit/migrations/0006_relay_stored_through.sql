-- The relay (crm_kit::relay) after a partial failure: JetStream refused (or
-- did not acknowledge) the event after `position` but acknowledged the ones
-- right after it, up to `stored_through`. The next run publishes the failed
-- event alone first, then resumes after `stored_through`, instead of
-- publishing again, at every retry, events the stream already holds (past
-- its duplicate window it would store them twice). 0: none.
ALTER TABLE relay_cursors ADD COLUMN stored_through bigint NOT NULL DEFAULT 0;
