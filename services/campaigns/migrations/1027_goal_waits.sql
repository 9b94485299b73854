-- Runs waiting for a goal (a purchase, a resolved ticket, a custom goal):
-- which goal, and since when. Recording a conversion wakes the customer's
-- runs waiting for its goal; a run woken after its timeout went on without it.
ALTER TABLE journey_runs ADD COLUMN awaiting_goal text;
ALTER TABLE journey_runs ADD COLUMN waiting_since timestamptz;

-- "Did the customer reach this goal since …" (branches, goal waits).
CREATE INDEX conversions_by_customer_goal ON conversions (tenant_id, customer_id, goal, occur_time);
