-- Notable things that happened to a customer (客户事件), by the tenant's categories.
CREATE TABLE occurrences (
    tenant_id   uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    id          uuid        NOT NULL,
    category    text        NOT NULL,
    occur_date  date        NOT NULL,
    premises_id uuid,
    handler     text        NOT NULL DEFAULT '',
    description text        NOT NULL DEFAULT '',
    revision    bigint      NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, premises_id) REFERENCES premises (tenant_id, id)
);

-- A customer's occurrences, oldest first (ids are UUIDv7); a category's, by date.
CREATE INDEX occurrences_by_customer ON occurrences (tenant_id, customer_id, id);
CREATE INDEX occurrences_by_category ON occurrences (tenant_id, category, occur_date);

ALTER TABLE occurrences ENABLE ROW LEVEL SECURITY;
ALTER TABLE occurrences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON occurrences
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
