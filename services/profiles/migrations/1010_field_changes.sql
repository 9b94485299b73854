-- Field history of customers and their archive records: one row per field
-- changed, with the value before and after (and masked copies for callers
-- without `pii`), who changed it and through which request. Kept without a
-- foreign key so that it outlives what it describes.
CREATE TABLE field_changes (
    tenant_id   uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    id          uuid        NOT NULL,
    record      text        NOT NULL,
    operation   text        NOT NULL CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE')),
    field_path  text        NOT NULL,
    old_value   jsonb       NOT NULL,
    new_value   jsonb       NOT NULL,
    old_masked  jsonb       NOT NULL,
    new_masked  jsonb       NOT NULL,
    actor       text        NOT NULL,
    request_id  text        NOT NULL,
    change_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- A customer's history, newest first (ids are UUIDv7); and one record's.
CREATE INDEX field_changes_by_customer ON field_changes (tenant_id, customer_id, id DESC);
CREATE INDEX field_changes_by_record ON field_changes (tenant_id, record, id DESC);

ALTER TABLE field_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE field_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON field_changes
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
