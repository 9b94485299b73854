-- A customer's timeline reads each kind of record newest first; these
-- indexes let every branch of its UNION stop after one page.
CREATE INDEX communications_timeline ON communications (tenant_id, customer_id, occur_time DESC, id DESC);
CREATE INDEX occurrences_timeline ON occurrences (tenant_id, customer_id, occur_date DESC, id DESC);
CREATE INDEX occupancies_moved_out ON occupancies (tenant_id, customer_id, move_out_date DESC, id DESC) WHERE move_out_date IS NOT NULL;
CREATE INDEX field_changes_timeline ON field_changes (tenant_id, customer_id, change_time DESC, id DESC);
