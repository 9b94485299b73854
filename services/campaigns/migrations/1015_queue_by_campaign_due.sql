-- Pause, resume and the start of sending hold or release a campaign's queued
-- messages in batches (a million do not fit in one request): each batch is
-- a range of this index — held rows are due at the end of time, waiting ones
-- before it.
CREATE INDEX delivery_queue_by_campaign_due ON delivery_queue (tenant_id, campaign_id, due_time) WHERE campaign_id IS NOT NULL;
DROP INDEX delivery_queue_by_campaign;
