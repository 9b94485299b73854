-- Member tiers judged again without a booking. A member's progress over
-- the programme's rolling window only falls when its oldest grant leaves
-- the window: `tier_review_time` is that moment (NULL: nothing in the
-- window), or now for everyone after the programme changed. The tier-review
-- job finds due ones across tenants (ids and instants only).
ALTER TABLE points_balances ADD COLUMN tier_review_time timestamptz;

CREATE INDEX points_balances_tier_review ON points_balances (tier_review_time) WHERE tier_review_time IS NOT NULL;

CREATE POLICY tier_review_scan ON points_balances FOR SELECT
    USING (current_setting('crm.scope', true) = 'tier-review-scan' AND tier_review_time IS NOT NULL);
