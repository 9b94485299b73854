-- Sending at each recipient's local time: the minute of the day (0-1439) a
-- campaign's messages go at in each member's time zone (else the tenant's);
-- NULL sends as soon as the campaign runs. The instant computed for each
-- member at the snapshot is its delivery's next_attempt_time, which the
-- queue is released to.
ALTER TABLE campaigns ADD COLUMN local_send_minute integer CHECK (local_send_minute BETWEEN 0 AND 1439);
