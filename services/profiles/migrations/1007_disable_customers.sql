-- Disabled customers (禁用): distinct from soft deletion — readable by name,
-- left out of lists unless asked for, never a marketing target.
ALTER TABLE customers ADD COLUMN disable_time timestamptz, ADD COLUMN disable_reason text NOT NULL DEFAULT '';
