-- Points follow profiles' merges: a merged customer's open lots are booked
-- out of their account (MOVE_OUT) and into the survivor's (MOVE_IN, the same
-- points and expiry), and on unmerge back again as far as the survivor has
-- not used them. A MOVE_IN is a lot like a grant; `merge_id` names the merge
-- and `moved_from` the lot it came from.
ALTER TABLE points_entries DROP CONSTRAINT points_entries_kind_check;
ALTER TABLE points_entries ADD CONSTRAINT points_entries_kind_check
    CHECK (kind IN ('GRANT', 'REDEEM', 'EXPIRE', 'MOVE_IN', 'MOVE_OUT'));
ALTER TABLE points_entries DROP CONSTRAINT points_entries_check;
ALTER TABLE points_entries ADD CONSTRAINT points_entries_lot_check CHECK (kind IN ('GRANT', 'MOVE_IN') OR remaining = 0);
ALTER TABLE points_entries DROP CONSTRAINT points_entries_check1;
ALTER TABLE points_entries ADD CONSTRAINT points_entries_sign_check CHECK ((kind IN ('GRANT', 'MOVE_IN')) = (points > 0));
ALTER TABLE points_entries ADD COLUMN merge_id uuid;
ALTER TABLE points_entries ADD COLUMN moved_from uuid;

-- An unmerge finds what its merge moved in.
CREATE INDEX points_entries_by_merge ON points_entries (tenant_id, merge_id) WHERE merge_id IS NOT NULL;
