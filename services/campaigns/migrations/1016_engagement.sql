-- Opens and clicks of tracked emails: the first of each per delivery (later
-- ones change nothing, so the campaign counts stay unique per recipient).
ALTER TABLE deliveries ADD COLUMN open_time timestamptz, ADD COLUMN click_time timestamptz;
