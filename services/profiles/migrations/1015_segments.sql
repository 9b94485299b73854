-- Segments and their members. A dynamic segment's members are the live
-- customers its filter matches, kept in the transaction of every customer
-- change; a static one's are added by name. member_count is kept with the
-- members, so reading it costs one row.
CREATE TABLE segments (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    display_name text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    kind         text        NOT NULL CHECK (kind IN ('DYNAMIC', 'STATIC')),
    filter       text        NOT NULL DEFAULT '',
    member_count bigint      NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    revision     bigint      NOT NULL DEFAULT 1,
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (kind = 'DYNAMIC' OR filter = '')
);

CREATE INDEX segments_by_name ON segments (tenant_id, display_name, id);

CREATE TABLE segment_members (
    tenant_id   uuid        NOT NULL,
    segment_id  uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    join_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id),
    FOREIGN KEY (tenant_id, segment_id) REFERENCES segments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- A customer's segments (CheckMembership, and every change's re-evaluation).
CREATE INDEX segment_members_by_customer ON segment_members (tenant_id, customer_id);

ALTER TABLE segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE segments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON segments
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE segment_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON segment_members
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
