-- The people around a customer (客户成员). Removing one deletes the row;
-- its customer must exist (a soft-deleted customer keeps its rows). A
-- related person who is a customer too links to that record.
CREATE TABLE related_persons (
    tenant_id          uuid        NOT NULL,
    customer_id        uuid        NOT NULL,
    id                 uuid        NOT NULL,
    relation           text        NOT NULL,
    display_name       text        NOT NULL,
    phones             jsonb       NOT NULL DEFAULT '[]',
    emails             jsonb       NOT NULL DEFAULT '[]',
    gender             text        NOT NULL DEFAULT '',
    birthday_year      integer,
    birthday_month     integer,
    birthday_day       integer,
    note               text        NOT NULL DEFAULT '',
    linked_customer_id uuid,
    revision           bigint      NOT NULL DEFAULT 1,
    create_time        timestamptz NOT NULL,
    update_time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, linked_customer_id) REFERENCES customers (tenant_id, id)
);

-- A customer's related persons, oldest first (ids are UUIDv7).
CREATE INDEX related_persons_by_customer ON related_persons (tenant_id, customer_id, id);
-- Who names a customer as related (the reverse link; erasure and merges follow it).
CREATE INDEX related_persons_by_linked ON related_persons (tenant_id, linked_customer_id) WHERE linked_customer_id IS NOT NULL;

ALTER TABLE related_persons ENABLE ROW LEVEL SECURITY;
ALTER TABLE related_persons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON related_persons
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
