-- Dynamic segments whose filter compares against the current time
-- (`last_purchase_time < now - 90d`) change as time passes, not only as
-- customers change: a job refills each one when it is due. The job finds
-- them across tenants through the read-only `segment_scan` policy.
ALTER TABLE segments
    ADD COLUMN time_relative   boolean NOT NULL DEFAULT false,
    ADD COLUMN next_sweep_time timestamptz;

CREATE INDEX segments_due_sweeps ON segments (next_sweep_time) WHERE time_relative;

CREATE POLICY segment_scan ON segments FOR SELECT
    USING (current_setting('crm.scope', true) = 'segment-scan');
