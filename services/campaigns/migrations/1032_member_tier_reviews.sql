-- Member tiers judged again without a booking. A member's progress over
-- the programme's rolling window only falls when its oldest grant leaves
-- the window: `tier_review_time` is that moment (NULL: nothing in the
-- window). After the programme's tiers, basis or window changed, a sweep
-- makes every member due, a batch per transaction, from
-- `tier_sweep_cursor` on (NULL: no sweep). The tier-review job finds due
-- members and pending sweeps across tenants (ids and instants only).
ALTER TABLE points_balances ADD COLUMN tier_review_time timestamptz;

CREATE INDEX points_balances_tier_review ON points_balances (tier_review_time) WHERE tier_review_time IS NOT NULL;

CREATE POLICY tier_review_scan ON points_balances FOR SELECT
    USING (current_setting('crm.scope', true) = 'tier-review-scan' AND tier_review_time IS NOT NULL);

ALTER TABLE loyalty_programs ADD COLUMN tier_sweep_cursor uuid;

CREATE POLICY tier_sweep_scan ON loyalty_programs FOR SELECT
    USING (current_setting('crm.scope', true) = 'tier-sweep-scan' AND tier_sweep_cursor IS NOT NULL);
